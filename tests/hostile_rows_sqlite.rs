//! Rows written by another tool that do not read back (bytes that are not UTF-8 in a text
//! column, a version stored as text): each is reported as its own `CorruptEvent` naming
//! its position, and every other row is delivered, on every read path and in both
//! directions.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    DeadLetterStore, Error, InMemoryEventBus, SubscriptionConfig, SubscriptionManager,
};
use futures::StreamExt;
use support::{created, TaskCreated, TempDir};
use uuid::Uuid;

/// The text columns of `events` another tool may fill with bytes that are not UTF-8.
const COLUMNS: [&str; 7] = [
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "actor_id",
    "payload",
    "metadata",
];

/// A store with one stream of 9 good events and, at position 5, one whose `column` holds
/// the bytes FF FE.
async fn store_with_a_bad(column: &str) -> (TempDir, SqliteEventStore, Uuid) {
    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    let id = Uuid::new_v4();
    for i in 1..=9 {
        store
            .append_events(
                id,
                "Task",
                vec![created(&format!("t{i}")).with_actor_id("ops")],
                ExpectedVersion::Exact(i - 1),
            )
            .await
            .unwrap();
    }
    // A BLOB cast to text keeps its bytes: SQLite does not check UTF-8.
    sqlx::query(&format!(
        "UPDATE events SET {column} = CAST(X'FFFE' AS TEXT) WHERE global_position = 5"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    (dir, store, id)
}

fn titles(items: &[eventsource::Result<StoredEvent>]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|e| e.event::<TaskCreated>().unwrap().title.clone())
        .collect()
}

fn assert_reported(items: &[eventsource::Result<StoredEvent>], column: &str) {
    let errors: Vec<&Error> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{column}: {errors:?}");
    match errors[0] {
        Error::CorruptEvent {
            global_position,
            reason,
            ..
        } => {
            assert_eq!(*global_position, 5, "{column}");
            assert!(reason.contains("not UTF-8"), "{column}: {reason}");
        }
        other => panic!("{column}: expected CorruptEvent, got {other:?}"),
    }
}

#[tokio::test]
async fn bytes_that_are_not_utf8_spoil_only_their_row() {
    let good: Vec<String> = [1, 2, 3, 4, 6, 7, 8, 9]
        .iter()
        .map(|i| format!("t{i}"))
        .collect();
    let mut backward = good.clone();
    backward.reverse();
    for column in COLUMNS {
        let (_dir, store, id) = store_with_a_bad(column).await;
        let forward: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
        assert_eq!(titles(&forward), good, "{column}: read_all forward");
        assert_reported(&forward, column);
        let back: Vec<_> = store
            .read_all(ReadOptions::new().backward())
            .collect()
            .await;
        assert_eq!(titles(&back), backward, "{column}: read_all backward");
        assert_reported(&back, column);
        let filtered: Vec<_> = store
            .read_all(ReadOptions::new().event_types(["TaskCreated"]))
            .collect()
            .await;
        // A bad event_type no longer matches the filter: the rest is all there.
        assert_eq!(titles(&filtered), good, "{column}: filtered");

        // read_stream (by version) reports it too, in both directions, unless the row
        // no longer belongs to the stream (its aggregate id or type is the bad column).
        if column != "aggregate_id" && column != "aggregate_type" {
            let stream = StreamId::new(id, "Task");
            let items: Vec<_> = store
                .read_stream(&stream, ReadOptions::new())
                .collect()
                .await;
            assert_eq!(titles(&items), good, "{column}: read_stream");
            assert_reported(&items, column);
            let items: Vec<_> = store
                .read_stream(&stream, ReadOptions::new().backward())
                .collect()
                .await;
            assert_eq!(titles(&items), backward, "{column}: read_stream backward");
            // get_events cannot return part of a stream: it names the row.
            match store
                .get_events(id, "Task", GetEventsOptions::default())
                .await
            {
                Err(Error::CorruptEvent {
                    global_position: 5, ..
                }) => {}
                other => panic!("{column}: get_events: {other:?}"),
            }
            assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 9);
        }
        // The counts list every row, the bad name shown with U+FFFD.
        let counts = store.event_type_counts().await.unwrap();
        assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 9, "{column}");
    }
}

#[tokio::test]
async fn a_version_stored_as_text_is_reported_and_appends_go_on() {
    let (_dir, store, id) = store_with_a_bad("actor_id").await;
    sqlx::query("UPDATE events SET actor_id = 'ops', version = 'five' WHERE global_position = 5")
        .execute(store.pool())
        .await
        .unwrap();
    // The greatest integer version is the stream's version.
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 9);
    store
        .append_events(id, "Task", vec![created("t10")], ExpectedVersion::Exact(9))
        .await
        .unwrap();
    let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
    assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 9);
    assert!(matches!(
        items.iter().find_map(|i| i.as_ref().err()),
        Some(Error::CorruptEvent {
            global_position: 5,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_dead_letters_the_unreadable_row_and_goes_on() {
    let (_dir, store, _id) = store_with_a_bad("payload").await;
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

    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        store.clone(),
    )
    .with_dead_letters(store.clone());
    let titles = manager
        .subscribe(
            Titles::default(),
            SubscriptionConfig::new().batch_size(3),
            "titles",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    titles.wait_for(9, Duration::from_secs(10)).await.unwrap();
    assert_eq!(titles.projection().lock().await.0.len(), 8);
    let letters = store
        .get_failed_events(Some("titles"), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].failed.global_position, 5);
    manager.stop().await;
}

#[tokio::test]
async fn a_corrupt_outbox_entry_is_passed_over_and_reported() {
    use eventsource::{BusOutboxPublisher, OutboxRelay, OutboxStatus, OutboxStore};
    let dir = TempDir::new();
    let store = Arc::new(
        SqliteEventStore::options(dir.file("events.db"))
            .outbox(true)
            .open()
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    for i in 1..=5 {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(&format!("t{i}"))],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    sqlx::query("UPDATE event_outbox SET event_data = 'garbage' WHERE id = 2")
        .execute(store.pool())
        .await
        .unwrap();
    let bus = Arc::new(InMemoryEventBus::new());
    let relay = OutboxRelay::new(
        store.clone(),
        Arc::new(BusOutboxPublisher::new(store.clone(), bus)),
    );
    let round = relay.run_once().await.unwrap();
    assert_eq!(round.published, 4, "every readable entry is published");
    assert!(store.get_pending_events(10).await.unwrap().is_empty());
    // The bad one is failed, with the reason, for an operator to find.
    let failed = sqlx::query_as::<_, (i64, String, String)>(
        "SELECT id, status, last_error FROM event_outbox WHERE status = 'failed'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, 2);
    assert!(failed[0].2.contains("unreadable entry"), "{:?}", failed[0]);
    // Listings list the rest.
    assert_eq!(
        store
            .get_entries(Some(OutboxStatus::Published), 10)
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn corrupt_checkpoints_and_dead_letters_do_not_hide_the_others() {
    use eventsource::{CheckpointStore, FailedEvent};
    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    for name in ["a", "b", "c"] {
        store.save_progress(name, 1, None, 1).await.unwrap();
    }
    sqlx::query(
        "UPDATE projection_checkpoints SET global_position = 'x' WHERE projection_name = 'b'",
    )
    .execute(store.pool())
    .await
    .unwrap();
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

    for title in ["x", "y", "z"] {
        let saved = store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(title)],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let event = store
            .read_all(
                ReadOptions::new()
                    .from_position(saved.global_position - 1)
                    .limit(1),
            )
            .next()
            .await
            .unwrap()
            .unwrap();
        store
            .add_failed_event(FailedEvent::for_event("p", &event, "boom", 1))
            .await
            .unwrap();
    }
    sqlx::query(
        "UPDATE dead_letter_queue SET first_failed_at = 'not a time' WHERE global_position = 2",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let letters = store.get_failed_events(Some("p"), None, 10).await.unwrap();
    let positions: Vec<u64> = letters.iter().map(|l| l.failed.global_position).collect();
    assert_eq!(positions, [1, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_beyond_the_head_is_not_trusted() {
    let (_dir, store, _id) = store_with_a_bad("actor_id").await;
    sqlx::query("UPDATE events SET actor_id = 'ops' WHERE global_position = 5")
        .execute(store.pool())
        .await
        .unwrap();
    let store = Arc::new(store);
    eventsource::CheckpointStore::save_progress(store.as_ref(), "titles", 1000, None, 1000)
        .await
        .unwrap();

    #[derive(Debug, Default)]
    struct Titles(Vec<String>);

    #[projection]
    impl Titles {
        #[handles]
        async fn created(&mut self, event: &TaskCreated) {
            self.0.push(event.title.clone());
        }
    }

    #[derive(Debug, Default)]
    struct DurableTitles;

    #[projection(durable = true)]
    impl DurableTitles {
        #[handles]
        async fn created(&mut self, _event: &TaskCreated) {}
    }

    // In memory: rebuilt from the beginning, all 9 events.
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        store.clone(),
    );
    let titles = manager
        .subscribe(Titles::default(), SubscriptionConfig::new(), "titles")
        .await
        .unwrap();
    manager.start().await.unwrap();
    titles.wait_for(9, Duration::from_secs(10)).await.unwrap();
    assert_eq!(titles.projection().lock().await.0.len(), 9);
    manager.stop().await;

    // Durable: refused, with what to do.
    eventsource::CheckpointStore::save_progress(store.as_ref(), "durable", 1000, None, 1000)
        .await
        .unwrap();
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        store.clone(),
    );
    manager
        .subscribe(DurableTitles, SubscriptionConfig::new(), "durable")
        .await
        .unwrap();
    match manager.start().await {
        Err(Error::InvalidCheckpoint { projection, detail }) => {
            assert_eq!(projection, "durable");
            assert!(detail.contains("beyond the store's head 9"), "{detail}");
        }
        other => panic!("expected InvalidCheckpoint, got {other:?}"),
    }
    manager.stop().await;
}
