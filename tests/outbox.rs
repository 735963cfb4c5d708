//! The transactional outbox on memory, SQLite and PostgreSQL, and the relay.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    BoxError, BusFilter, BusOutboxPublisher, Error, EventBus, InMemoryEventBus, OutboxEntry,
    OutboxPublisher, OutboxRelay, OutboxStatus, OutboxStore, RelayRound, RetryPolicy,
    SqliteEventStore,
};
use support::{created, stores_with_outbox, TaskCompleted};
use uuid::Uuid;

#[tokio::test]
async fn appends_write_outbox_entries_atomically() {
    for (backend, store) in stores_with_outbox().await {
        let a = Uuid::new_v4();
        let tenant = Uuid::new_v4();
        store
            .append_events(
                a,
                "Task",
                vec![
                    created("a").with_tenant_id(tenant),
                    NewEvent::new(TaskCompleted {}),
                ],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created("b")],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        // A refused append writes no entry either.
        assert!(store
            .append_events(
                a,
                "Task",
                vec![created("conflict")],
                ExpectedVersion::NoStream
            )
            .await
            .is_err());
        let pending = store.get_pending_events(10).await.unwrap();
        let summary: Vec<(i64, u64, &str)> = pending
            .iter()
            .map(|e| (e.id, e.global_position, e.event_type.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, 1, "TaskCreated"),
                (2, 2, "TaskCompleted"),
                (3, 3, "TaskCreated")
            ],
            "{backend}"
        );
        assert_eq!(pending[0].aggregate_id, a);
        assert_eq!(pending[0].tenant_id, Some(tenant));
        assert_eq!(pending[0].event_data, serde_json::json!({"title": "a"}));
        assert_eq!(pending[0].status, OutboxStatus::Pending);
        assert_eq!(store.get_pending_events(2).await.unwrap().len(), 2);

        store.mark_published(1).await.unwrap();
        assert_eq!(store.increment_retry(2, "broker down").await.unwrap(), 1);
        assert_eq!(store.increment_retry(2, "still down").await.unwrap(), 2);
        let entries = store.get_entries(None, 10).await.unwrap();
        assert_eq!(entries[0].status, OutboxStatus::Published);
        assert!(entries[0].published_at.is_some());
        assert_eq!(
            (entries[1].retry_count, entries[1].last_error.as_deref()),
            (2, Some("still down"))
        );
        store.mark_failed(2).await.unwrap();
        assert_eq!(
            store
                .get_entries(Some(OutboxStatus::Failed), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.get_pending_events(10).await.unwrap().len(), 1);
        assert!(
            matches!(
                store.mark_published(99).await,
                Err(Error::OutboxEntryNotFound { id: 99 })
            ),
            "{backend}"
        );
        assert!(matches!(
            store.increment_retry(99, "x").await,
            Err(Error::OutboxEntryNotFound { id: 99 })
        ));
    }
}

#[tokio::test]
async fn a_store_without_outbox_writes_none() {
    let store = SqliteEventStore::open(":memory:").await.unwrap();
    store.initialize().await.unwrap();
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("a")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    assert!(store.get_pending_events(10).await.unwrap().is_empty());
    let memory = InMemoryEventStore::new();
    memory
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("a")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    assert!(memory.get_pending_events(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_batch_failing_in_the_database_leaves_no_outbox_entry() {
    let store = SqliteEventStore::options(":memory:")
        .outbox(true)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_type = 'TaskCompleted' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let result = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("a"), NewEvent::new(TaskCompleted {})],
            ExpectedVersion::Any,
        )
        .await;
    assert!(result.is_err());
    assert!(store.get_entries(None, 10).await.unwrap().is_empty());
}

/// Fails the first `failures` attempts on entries of type `fail_type`.
#[derive(Debug, Default)]
struct FlakyPublisher {
    fail_type: String,
    failures: Mutex<u32>,
    published: Mutex<Vec<i64>>,
}

#[eventsource::async_trait]
impl OutboxPublisher for FlakyPublisher {
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), BoxError> {
        if entry.event_type == self.fail_type {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err("broker unavailable".into());
            }
        }
        self.published.lock().unwrap().push(entry.id);
        Ok(())
    }
}

#[tokio::test]
async fn the_relay_keeps_order_retries_and_gives_up() {
    for (backend, store) in stores_with_outbox().await {
        for title in ["1", "2"] {
            store
                .append_events(
                    Uuid::new_v4(),
                    "Task",
                    vec![created(title)],
                    ExpectedVersion::Any,
                )
                .await
                .unwrap();
        }
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![NewEvent::new(TaskCompleted {})],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created("4")],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
        let publisher = Arc::new(FlakyPublisher {
            fail_type: "TaskCompleted".into(),
            failures: Mutex::new(2),
            ..FlakyPublisher::default()
        });
        let relay = OutboxRelay::new(store.clone(), publisher.clone()).retry(RetryPolicy {
            max_attempts: 5,
            ..RetryPolicy::default()
        });
        let round = relay.run_once().await.unwrap();
        assert_eq!(
            round,
            RelayRound {
                published: 2,
                given_up: 0,
                failed_retries: Some(1)
            },
            "{backend}"
        );
        assert_eq!(
            *publisher.published.lock().unwrap(),
            [1, 2],
            "entry 4 waits for entry 3"
        );
        assert_eq!(relay.run_once().await.unwrap().failed_retries, Some(2));
        let round = relay.run_once().await.unwrap();
        assert_eq!(
            round,
            RelayRound {
                published: 2,
                given_up: 0,
                failed_retries: None
            }
        );
        assert_eq!(
            *publisher.published.lock().unwrap(),
            [1, 2, 3, 4],
            "{backend}: in order"
        );
        assert!(store.get_pending_events(10).await.unwrap().is_empty());

        // A poison entry is given up after the last attempt, and the relay moves on.
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![NewEvent::new(TaskCompleted {}), created("6")],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
        *publisher.failures.lock().unwrap() = 100;
        let relay = relay.retry(RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        });
        assert_eq!(relay.run_once().await.unwrap().failed_retries, Some(1));
        let round = relay.run_once().await.unwrap();
        assert_eq!(
            round,
            RelayRound {
                published: 1,
                given_up: 1,
                failed_retries: None
            },
            "{backend}"
        );
        let failed = store
            .get_entries(Some(OutboxStatus::Failed), 10)
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].last_error.as_deref(), Some("broker unavailable"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_relay_publishes_to_the_bus_and_stops() {
    for (backend, store) in stores_with_outbox().await {
        let bus = Arc::new(InMemoryEventBus::new());
        let mut subscriber = bus.subscribe(BusFilter::All);
        let events: Arc<dyn EventStore> = store.clone();
        let publisher = Arc::new(BusOutboxPublisher::new(events, bus.clone()));
        let handle = OutboxRelay::new(store.clone(), publisher)
            .poll_interval(Duration::from_millis(10))
            .spawn();
        let mut ids = Vec::new();
        for i in 0..5 {
            let event = created(&format!("{i}"));
            ids.push(event.event_id());
            store
                .append_events(Uuid::new_v4(), "Task", vec![event], ExpectedVersion::Any)
                .await
                .unwrap();
        }
        for id in &ids {
            let received = tokio::time::timeout(Duration::from_secs(10), subscriber.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(received.event_id(), *id, "{backend}: published in order");
        }
        handle.stop().await;
        assert!(store.get_pending_events(10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn failed_entries_go_back_to_the_end_of_the_queue() {
    for (backend, store) in stores_with_outbox().await {
        for title in ["a", "b", "c", "d"] {
            store
                .append_events(
                    Uuid::new_v4(),
                    "Task",
                    vec![created(title)],
                    ExpectedVersion::NoStream,
                )
                .await
                .unwrap();
        }
        store.increment_retry(1, "broker down").await.unwrap();
        store.mark_failed(1).await.unwrap();
        store.mark_failed(2).await.unwrap();
        store.mark_failed(3).await.unwrap();
        store.mark_published(4).await.unwrap();
        // Only failed ones, only those named.
        assert_eq!(
            store.retry_failed(Some(&[2, 4, 99])).await.unwrap(),
            1,
            "{backend}"
        );
        let pending = store.get_pending_events(10).await.unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|e| (e.id, e.global_position))
                .collect::<Vec<_>>(),
            [(5, 2)],
            "{backend}: entry 2 is back, as entry 5"
        );
        assert_eq!(store.retry_failed(None).await.unwrap(), 2, "{backend}");
        let pending = store.get_pending_events(10).await.unwrap();
        let ids: Vec<(i64, u64, u32, Option<&str>)> = pending
            .iter()
            .map(|e| {
                (
                    e.id,
                    e.global_position,
                    e.retry_count,
                    e.last_error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [(5, 2, 0, None), (6, 1, 0, None), (7, 3, 0, None)],
            "{backend}"
        );
        assert_eq!(pending[1].event_data, serde_json::json!({"title": "a"}));
        let stats = store.stats().await.unwrap();
        assert_eq!(
            (stats.pending, stats.published, stats.failed),
            (3, 1, 0),
            "{backend}"
        );
        assert_eq!(store.retry_failed(None).await.unwrap(), 0, "{backend}");
    }
}
