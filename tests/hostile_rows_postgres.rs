//! Rows another tool wrote into PostgreSQL that do not read back: a position or version
//! below 1, a payload or metadata of the wrong JSON shape, a timestamp chrono cannot
//! hold, a schema version of 0. Each is reported as its own `CorruptEvent` on every read
//! path and in both directions, and every other row is delivered. (PostgreSQL's typed
//! columns keep out what SQLite lets in: bytes that are not UTF-8, NUL, text versions.)
#![cfg(feature = "postgres")]

mod support;

use eventsource::prelude::*;
use eventsource::{DeadLetterStore, OutboxStore, PostgresEventStore};
use support::hostile::{assert_the_bad_row_hides_nothing, nine_tasks};

async fn store() -> Option<PostgresEventStore> {
    Some(support::postgres::server()?.store().await)
}

async fn run(store: &PostgresEventStore, sql: &str) {
    let sql = sql.replace("__S__", &format!("\"{}\"", store.schema()));
    sqlx::raw_sql(&sql).execute(store.pool()).await.unwrap();
}

#[tokio::test]
async fn a_bad_column_spoils_its_row_only() {
    for (update, bad_version) in [
        ("version = 0", true),
        ("version = -1", true),
        ("payload = '\"garbage\"'::jsonb", false),
        ("payload = '{\"title\": 5}'::jsonb", false),
        ("metadata = '[1]'::jsonb", false),
        ("timestamp = 'infinity'", false),
        ("timestamp = '-infinity'", false),
        ("created_at = '294000-01-01'", false),
        ("event_version = 0", false),
    ] {
        let Some(store) = store().await else { return };
        let id = nine_tasks(&store).await;
        run(
            &store,
            &format!("UPDATE __S__.events SET {update} WHERE global_position = 5"),
        )
        .await;
        assert_the_bad_row_hides_nothing(&store, id, update, 5, bad_version, true).await;
    }
}

#[tokio::test]
async fn a_row_at_a_position_below_one_is_reported_at_zero() {
    for position in [-5, 0] {
        let Some(store) = store().await else { return };
        let id = nine_tasks(&store).await;
        // The identity column takes another value only on INSERT.
        run(
            &store,
            &format!(
                "CREATE TEMP TABLE moved AS SELECT * FROM __S__.events WHERE global_position = 5;
                 DELETE FROM __S__.events WHERE global_position = 5;
                 UPDATE moved SET global_position = {position};
                 INSERT INTO __S__.events OVERRIDING SYSTEM VALUE SELECT * FROM moved;
                 DROP TABLE moved;"
            ),
        )
        .await;
        let case = format!("global_position = {position}");
        assert_the_bad_row_hides_nothing(&store, id, &case, 0, false, true).await;
        let resumed: Vec<_> = store
            .read_all(ReadOptions::new().from_position(2))
            .collect::<Vec<_>>()
            .await;
        assert_eq!(resumed.len(), 6, "{case}: {resumed:?}");
        assert!(resumed.iter().all(Result::is_ok), "{case}");
    }
}

#[tokio::test]
async fn side_table_rows_with_times_chrono_cannot_hold_do_not_hide_the_others() {
    let Some(store) = store().await else { return };
    store.enable_outbox().await.unwrap();
    nine_tasks(&store).await;
    run(
        &store,
        "UPDATE __S__.event_outbox SET created_at = 'infinity' WHERE global_position = 5",
    )
    .await;
    // The relay's listing passes over the unreadable entry (and marks it failed).
    let pending = store.get_pending_events(100).await.unwrap();
    assert_eq!(pending.len(), 8, "{pending:?}");
    assert!(pending.iter().all(|e| e.global_position != 5));

    for i in 0..3 {
        store
            .add_failed_event(eventsource::FailedEvent {
                event_id: uuid::Uuid::new_v4(),
                projection_name: "p".into(),
                event_type: "TaskCreated".into(),
                global_position: i + 1,
                event_data: serde_json::json!({}),
                error: "boom".into(),
                retry_count: 1,
            })
            .await
            .unwrap();
    }
    run(
        &store,
        "UPDATE __S__.dead_letter_queue SET first_failed_at = 'infinity' WHERE global_position = 2",
    )
    .await;
    let letters = store.get_failed_events(Some("p"), None, 10).await.unwrap();
    let mut positions: Vec<u64> = letters.iter().map(|l| l.failed.global_position).collect();
    positions.sort_unstable();
    assert_eq!(positions, [1, 3]);
}

#[tokio::test]
async fn a_bad_checkpoint_does_not_hide_the_others() {
    use eventsource::CheckpointStore;
    let Some(store) = store().await else { return };
    for name in ["a", "b", "c"] {
        store.save_progress(name, 1, None, 1).await.unwrap();
    }
    run(
        &store,
        "UPDATE __S__.projection_checkpoints SET global_position = -1 WHERE projection_name = 'b';
         UPDATE __S__.projection_checkpoints SET last_processed_at = 'infinity' WHERE projection_name = 'c'",
    )
    .await;
    let names: Vec<String> = store
        .get_all_checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.projection_name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert!(
        store.get_checkpoint("b").await.is_err(),
        "a lookup names the problem"
    );
}
