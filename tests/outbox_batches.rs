//! The outbox relay publishes in batches (one read, one publish, one marking
//! transaction per batch), stops a batch at its first failure without losing the
//! entries before it, and keeps the table bounded by its retention policy; on memory,
//! SQLite and PostgreSQL.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    BusFilter, BusOutboxPublisher, Error, EventBus, InMemoryEventBus, OutboxEntry, OutboxPublisher,
    OutboxRelay, OutboxRetention, OutboxStatus, OutboxStore, PublishFailure, RelayRound,
};
use support::{created, stores_with_outbox, Both};
use uuid::Uuid;

/// Records each batch it is given; fails at the entry of `fail_at` (an event title)
/// while `failures` lasts.
#[derive(Debug, Default)]
struct BatchRecorder {
    batches: Mutex<Vec<Vec<i64>>>,
    fail_at: Option<String>,
    failures: Mutex<u32>,
}

#[eventsource::async_trait]
impl OutboxPublisher for BatchRecorder {
    async fn publish(&self, _entry: &OutboxEntry) -> Result<(), eventsource::BoxError> {
        Err("the relay publishes in batches".into())
    }

    async fn publish_batch(&self, entries: &[OutboxEntry]) -> Result<(), PublishFailure> {
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        self.batches.lock().unwrap().push(ids);
        let failing = entries.iter().position(|e| {
            Some(e.event_data["title"].as_str().unwrap_or_default()) == self.fail_at.as_deref()
        });
        let mut failures = self.failures.lock().unwrap();
        match failing {
            Some(published) if *failures > 0 => {
                *failures -= 1;
                Err(PublishFailure {
                    published,
                    error: "broker unavailable".into(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// `count` events, each its own outbox entry, titled by number.
async fn append(store: &dyn Both, count: usize) {
    let events: Vec<NewEvent> = (0..count).map(|i| created(&i.to_string())).collect();
    for chunk in events.chunks(500) {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                chunk.to_vec(),
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
}

async fn statuses(store: &dyn Both) -> Vec<(i64, OutboxStatus, u32)> {
    store
        .get_entries(None, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.id, e.status, e.retry_count))
        .collect()
}

#[tokio::test]
async fn a_round_publishes_one_batch_and_marks_it_at_once() {
    for (backend, store) in stores_with_outbox().await {
        append(&*store, 250).await;
        let publisher = Arc::new(BatchRecorder::default());
        let relay = OutboxRelay::new(store.clone(), publisher.clone()).batch_size(100);
        for expected in [100, 100, 50, 0] {
            let round = relay.run_once().await.unwrap();
            assert_eq!(round.published, expected, "{backend}");
        }
        let batches = publisher.batches.lock().unwrap().clone();
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50],
            "{backend}"
        );
        let ids: Vec<i64> = batches.concat();
        assert_eq!(ids, (1..=250).collect::<Vec<i64>>(), "{backend}: in order");
        assert!(store.get_pending_events(10).await.unwrap().is_empty());
        let published = store
            .get_entries(Some(OutboxStatus::Published), 1000)
            .await
            .unwrap();
        assert_eq!(published.len(), 250, "{backend}");
        assert!(published.iter().all(|e| e.published_at.is_some()));
    }
}

#[tokio::test]
async fn a_failure_inside_a_batch_keeps_what_went_out_before_it() {
    for (backend, store) in stores_with_outbox().await {
        append(&*store, 10).await;
        let publisher = Arc::new(BatchRecorder {
            fail_at: Some("4".into()),
            failures: Mutex::new(1),
            ..BatchRecorder::default()
        });
        let relay = OutboxRelay::new(store.clone(), publisher.clone());
        let round = relay.run_once().await.unwrap();
        assert_eq!(
            round,
            RelayRound {
                published: 4,
                given_up: 0,
                failed_retries: Some(1)
            },
            "{backend}"
        );
        let now = statuses(&*store).await;
        assert!(now[..4].iter().all(|e| e.1 == OutboxStatus::Published));
        assert_eq!(now[4], (5, OutboxStatus::Pending, 1), "{backend}");
        assert!(now[5..]
            .iter()
            .all(|e| e.1 == OutboxStatus::Pending && e.2 == 0));
        // The next round starts at the failed entry.
        assert_eq!(relay.run_once().await.unwrap().published, 6, "{backend}");
        assert_eq!(publisher.batches.lock().unwrap()[1][0], 5);
    }
}

#[tokio::test]
async fn a_batch_given_up_on_goes_on_with_the_rest_of_the_batch() {
    for (backend, store) in stores_with_outbox().await {
        append(&*store, 5).await;
        let publisher = Arc::new(BatchRecorder {
            fail_at: Some("2".into()),
            failures: Mutex::new(1),
            ..BatchRecorder::default()
        });
        let relay =
            OutboxRelay::new(store.clone(), publisher.clone()).retry(eventsource::RetryPolicy {
                max_attempts: 1,
                ..eventsource::RetryPolicy::default()
            });
        let round = relay.run_once().await.unwrap();
        assert_eq!((round.published, round.given_up), (4, 1), "{backend}");
        let now = statuses(&*store).await;
        assert_eq!(now[2], (3, OutboxStatus::Failed, 1), "{backend}");
        let batches = publisher.batches.lock().unwrap().clone();
        assert_eq!(batches, [vec![1, 2, 3, 4, 5], vec![4, 5]], "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_publisher_sends_a_batch_in_order_in_one_publish() {
    for (backend, store) in stores_with_outbox().await {
        append(&*store, 120).await;
        let bus = Arc::new(InMemoryEventBus::new());
        let mut subscriber = bus.subscribe(BusFilter::All);
        let events: Arc<dyn EventStore> = store.clone();
        let relay = OutboxRelay::new(
            store.clone(),
            Arc::new(BusOutboxPublisher::new(events, bus.clone())),
        )
        .batch_size(50);
        while relay.run_once().await.unwrap().published > 0 {}
        let expected: Vec<Uuid> = store
            .get_entries(None, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id)
            .collect();
        for id in expected {
            let received = tokio::time::timeout(Duration::from_secs(10), subscriber.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(received.event_id(), id, "{backend}");
        }
        assert!(store.get_pending_events(1).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn retention_deletes_on_publish_prunes_old_entries_or_keeps_them() {
    for (backend, store) in stores_with_outbox().await {
        append(&*store, 40).await;
        let publisher = Arc::new(BatchRecorder::default());
        // Published entries are kept by default (7 days).
        let relay = OutboxRelay::new(store.clone(), publisher.clone()).batch_size(10);
        relay.run_once().await.unwrap();
        assert_eq!(statuses(&*store).await.len(), 40, "{backend}");
        // Deleted as they are published.
        relay
            .clone()
            .retention(OutboxRetention::DeleteOnPublish)
            .run_once()
            .await
            .unwrap();
        let left = statuses(&*store).await;
        assert_eq!(left.len(), 30, "{backend}");
        assert_eq!(left[0].0, 1, "{backend}: the published ones of before stay");
        assert!(left[10..].iter().all(|e| e.1 == OutboxStatus::Pending));
        // Kept for no time: the next round prunes every published entry.
        let pruning = OutboxRelay::new(store.clone(), publisher.clone())
            .batch_size(10)
            .retention(OutboxRetention::KeepFor(Duration::ZERO));
        pruning.run_once().await.unwrap();
        let left = statuses(&*store).await;
        assert_eq!(left.len(), 10, "{backend}: {left:?}");
        assert!(left.iter().all(|e| e.1 == OutboxStatus::Pending));
        // Pruning leaves pending and failed entries, whatever their age.
        store.mark_failed(left[0].0).await.unwrap();
        let future = chrono::Utc::now() + chrono::Duration::days(1);
        assert_eq!(store.prune_published(future).await.unwrap(), 0);
        assert_eq!(statuses(&*store).await.len(), 10, "{backend}");
    }
}

#[tokio::test]
async fn marking_a_batch_is_all_or_nothing() {
    for (backend, store) in stores_with_outbox().await {
        append(&*store, 3).await;
        let error = store.mark_published_batch(&[1, 99, 2]).await.unwrap_err();
        assert!(
            matches!(error, Error::OutboxEntryNotFound { id: 99 }),
            "{backend}: {error}"
        );
        assert!(
            statuses(&*store)
                .await
                .iter()
                .all(|e| e.1 == OutboxStatus::Pending),
            "{backend}: none marked"
        );
        store.mark_published_batch(&[1, 2]).await.unwrap();
        assert_eq!(store.get_pending_events(10).await.unwrap().len(), 1);
        assert_eq!(store.delete_entries(&[1, 3, 42]).await.unwrap(), 2);
        assert_eq!(statuses(&*store).await.len(), 1, "{backend}");
    }
}

#[tokio::test]
async fn pruning_a_long_backlog_goes_in_chunks() {
    // More published entries than one pruning statement deletes (5,000).
    let store = eventsource::SqliteEventStore::options(":memory:")
        .outbox(true)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    append(&store, 12_000).await;
    let ids: Vec<i64> = (1..=12_000).collect();
    store.mark_published_batch(&ids).await.unwrap();
    append(&store, 3).await;
    let future = chrono::Utc::now() + chrono::Duration::days(1);
    assert_eq!(store.prune_published(future).await.unwrap(), 12_000);
    assert_eq!(store.get_pending_events(10).await.unwrap().len(), 3);
}

/// `stats` counts entries by status and dates the oldest pending one.
#[tokio::test]
async fn stats_count_the_backlog() {
    for (backend, store) in stores_with_outbox().await {
        let empty = store.stats().await.unwrap();
        assert_eq!(
            (empty.pending, empty.published, empty.failed),
            (0, 0, 0),
            "{backend}"
        );
        assert_eq!(empty.oldest_pending_at, None, "{backend}");
        let before = chrono::Utc::now() - chrono::Duration::seconds(5);
        append(&*store, 10).await;
        let relay =
            OutboxRelay::new(store.clone(), Arc::new(BatchRecorder::default())).batch_size(4);
        relay.run_once().await.unwrap();
        let entries = store.get_pending_events(1).await.unwrap();
        store.mark_failed(entries[0].id).await.unwrap();
        let stats = store.stats().await.unwrap();
        assert_eq!(
            (stats.pending, stats.published, stats.failed),
            (5, 4, 1),
            "{backend}"
        );
        let oldest = stats.oldest_pending_at.expect("a pending entry");
        let sixth = store.get_pending_events(1).await.unwrap()[0].created_at;
        assert_eq!(oldest, sixth, "{backend}");
        assert!(oldest > before, "{backend}");
    }
}

/// After the outbox is drained, entries added later (by an append, or by hand with
/// `add_event`) are still claimed and published: the relay's scans start above what is
/// published, never above what can still become pending.
#[tokio::test]
async fn entries_added_after_a_drain_are_published() {
    for (backend, store) in stores_with_outbox().await {
        append(&*store, 30).await;
        let publisher = Arc::new(BatchRecorder::default());
        let relay = OutboxRelay::new(store.clone(), publisher.clone()).batch_size(10);
        while relay.run_once().await.unwrap().published > 0 {}
        assert_eq!(relay.run_once().await.unwrap().published, 0, "{backend}");
        append(&*store, 5).await;
        let stored = store
            .read_all(ReadOptions::new().limit(1))
            .next()
            .await
            .unwrap()
            .unwrap();
        store.add_event(&stored).await.unwrap();
        let mut published = 0;
        loop {
            let round = relay.run_once().await.unwrap().published;
            if round == 0 {
                break;
            }
            published += round;
        }
        assert_eq!(published, 6, "{backend}");
        assert_eq!(store.stats().await.unwrap().pending, 0, "{backend}");
    }
}
