//! Rows another tool wrote at no position: a global position or version below 1, a
//! version stored as text, a fraction or a BLOB, and envelope columns holding U+001F
//! (the separator of SQLite's packed rows). Each is reported as its own `CorruptEvent`,
//! on every read path and in both directions, and every other row is delivered.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{DeadLetterStore, InMemoryEventBus, SubscriptionConfig, SubscriptionManager};
use support::hostile::{assert_the_bad_row_hides_nothing, nine_tasks};
use support::{TaskCreated, TempDir};

/// A store of nine events whose row at position 5 was changed by `update` (SQL run
/// against `events`, `WHERE global_position = 5` appended).
async fn spoiled(dir: &TempDir, update: &str) -> (SqliteEventStore, uuid::Uuid) {
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    let id = nine_tasks(&store).await;
    sqlx::query(&format!(
        "UPDATE events SET {update} WHERE global_position = 5"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    (store, id)
}

#[tokio::test]
async fn versions_that_are_not_versions_are_reported_in_every_read() {
    for version in ["0", "-1", "'five'", "2.5", "X'35'"] {
        let dir = TempDir::new();
        let update = format!("version = {version}");
        let (store, id) = spoiled(&dir, &update).await;
        assert_the_bad_row_hides_nothing(&store, id, &update, 5, true, true).await;
        // The stream's version is the greatest integer one, and appends go on.
        assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 9);
        store
            .append_events(
                id,
                "Task",
                vec![support::created("t10")],
                ExpectedVersion::Exact(9),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_row_at_a_position_below_one_is_reported_at_zero() {
    for position in ["-5", "0"] {
        let dir = TempDir::new();
        let update = format!("global_position = {position}");
        let (store, id) = spoiled(&dir, &update).await;
        assert_the_bad_row_hides_nothing(&store, id, &update, 0, false, true).await;
        // Reads resuming from a position do not report it again.
        let items: Vec<_> = store
            .read_all(ReadOptions::new().from_position(2))
            .collect::<Vec<_>>()
            .await;
        assert!(items.iter().all(Result::is_ok), "{update}: {items:?}");
        assert_eq!(items.len(), 6, "{update}");
    }
}

#[tokio::test]
async fn the_row_separator_inside_a_column_spoils_its_row_only() {
    for column in ["event_id", "event_type", "tenant_id", "actor_id"] {
        let dir = TempDir::new();
        let update = format!("{column} = 'a' || char(31) || 'b'");
        let (store, id) = spoiled(&dir, &update).await;
        // replay_stream reads the event type, not the ids or the actor.
        let replayed = column == "event_type";
        assert_the_bad_row_hides_nothing(&store, id, &update, 5, false, replayed).await;
    }
}

#[tokio::test]
async fn a_name_holding_nul_is_reported_not_read_back_cut_short() {
    // printf's %s would end the value at the NUL: "TaskCreated\0evil" as "TaskCreated".
    for column in ["aggregate_type", "event_type", "actor_id"] {
        let dir = TempDir::new();
        let value = if column == "aggregate_type" {
            "'Task' || char(0) || 'evil'"
        } else {
            "'TaskCreated' || char(0) || 'evil'"
        };
        let update = format!("{column} = {value}");
        let (store, id) = spoiled(&dir, &update).await;
        if column == "aggregate_type" {
            // The row left the stream: read_all reports it.
            let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
            assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 8);
            let error = items.iter().find_map(|i| i.as_ref().err()).unwrap();
            assert!(error.to_string().contains("NUL"), "{error}");
            continue;
        }
        let replayed = column == "event_type";
        assert_the_bad_row_hides_nothing(&store, id, &update, 5, false, replayed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_dead_letters_rows_at_no_position_once() {
    let dir = TempDir::new();
    let (store, _id) = spoiled(&dir, "global_position = -5").await;
    sqlx::query("UPDATE events SET version = 'x' WHERE global_position = 7")
        .execute(store.pool())
        .await
        .unwrap();
    let store = Arc::new(store);

    #[derive(Debug, Default)]
    struct Titles(Vec<String>);

    #[projection]
    impl Titles {
        #[handles]
        async fn created(&mut self, event: &TaskCreated) {
            self.0.push(event.title.clone());
        }
    }

    for run in 0..2 {
        let manager = SubscriptionManager::new(
            store.clone(),
            Arc::new(InMemoryEventBus::new()),
            store.clone(),
        )
        .with_dead_letters(store.clone());
        let titles = manager
            .subscribe(
                Titles::default(),
                SubscriptionConfig::new().batch_size(2),
                "titles",
            )
            .await
            .unwrap();
        manager.start().await.unwrap();
        let _ = titles.wait_for(9, Duration::from_secs(10)).await;
        if run == 0 {
            // Both bad rows are in read_all: -5 (no position) and 7 (its version is
            // not one, but read_all orders by global position and decodes it as corrupt).
            assert_eq!(titles.projection().lock().await.0.len(), 7);
        }
        manager.stop().await;
    }
    // Dead-lettered once each, although the second run started again.
    let letters = store
        .get_failed_events(Some("titles"), None, 10)
        .await
        .unwrap();
    let mut positions: Vec<u64> = letters.iter().map(|l| l.failed.global_position).collect();
    positions.sort_unstable();
    assert_eq!(positions, [0, 7], "{letters:?}");
}

#[tokio::test]
async fn the_exactly_once_runner_moves_past_rows_at_no_position() {
    use eventsource::{BoxError, SqliteProjectionRunner};

    #[derive(Debug, Default)]
    struct Count(u64);

    #[eventsource::async_trait]
    impl eventsource::TransactionalProjection<sqlx::SqliteConnection> for Count {
        fn name(&self) -> &str {
            "count"
        }

        fn handled_event_types(&self) -> &'static [&'static str] {
            &["TaskCreated"]
        }

        async fn handle(
            &mut self,
            _event: &StoredEvent,
            _conn: &mut sqlx::SqliteConnection,
        ) -> Result<(), BoxError> {
            self.0 += 1;
            Ok(())
        }
    }

    let dir = TempDir::new();
    let (store, _id) = spoiled(&dir, "global_position = -5").await;
    // Batches of one: the row at no position comes on top of the first one, and the
    // runner does not read it again and again.
    let mut runner =
        SqliteProjectionRunner::new(store.clone(), Count::default(), "count").batch_size(1);
    let applied = tokio::time::timeout(Duration::from_secs(10), runner.catch_up())
        .await
        .expect("the runner catches up")
        .unwrap();
    assert_eq!(applied, 8);
    let letters = store
        .get_failed_events(Some("count"), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].failed.global_position, 0);
}

#[tokio::test]
async fn a_row_at_no_version_fails_a_load_whichever_replay_page_it_is_on() {
    // 2,500 events: the repository replays them in pages of 1,000 by version.
    for (at, version) in [
        (1500, "1499.5"),
        (1001, "1000.5"),
        (2500, "'late'"),
        (10, "0"),
        (2000, "X'35'"),
    ] {
        let dir = TempDir::new();
        let store =
            std::sync::Arc::new(SqliteEventStore::open(dir.file("events.db")).await.unwrap());
        store.initialize().await.unwrap();
        let id = uuid::Uuid::new_v4();
        for batch in 0..5u64 {
            let events = (0..500)
                .map(|i| support::created(&format!("t{batch}-{i}")))
                .collect();
            store
                .append_events(id, "Task", events, ExpectedVersion::from(batch * 500))
                .await
                .unwrap();
        }
        sqlx::query(&format!(
            "UPDATE events SET version = {version} WHERE aggregate_id = ? AND version = {at}"
        ))
        .bind(id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
        let repo = eventsource::AggregateRepository::<Tasks>::new(store.clone());
        let loaded = repo.load(id).await;
        assert!(
            matches!(loaded, Err(eventsource::Error::CorruptEvent { .. })),
            "version {version} at {at}: {loaded:?}"
        );
        store.close().await;
    }
}

/// The `Task` stream as an aggregate: how many were created.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Tasks {
    created: u64,
}

#[aggregate(name = "Task")]
impl Tasks {
    #[apply]
    fn created(&mut self, _event: &TaskCreated) {
        self.created += 1;
    }
}
