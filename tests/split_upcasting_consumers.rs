//! Split upcasters and the consumers of reads: subscriptions read every event of a row
//! once, past rows that make none, and exactly-once SQLite projections apply a row's
//! events in one savepoint.

#[path = "split_upcasting/orders.rs"]
mod orders;
mod support;

use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    BoxError, RetryPolicy, SqliteEventStore, SqliteProjectionRunner, SubscriptionConfig,
};
use orders::{placed_v1, ItemAdded};
use sqlx::SqliteConnection;
use support::{every_store, TempDir};
use uuid::Uuid;

#[derive(Debug, Default)]
struct Items(Vec<String>);

#[projection]
impl Items {
    #[handles]
    async fn added(&mut self, e: &ItemAdded) {
        self.0.push(e.sku.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_read_every_event_of_a_row_once_past_rows_that_make_none() {
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        // Orders without items make no ItemAdded: whole batches of rows read as nothing.
        for i in 0..5 {
            let customer = format!("c{i}");
            store
                .append_events(
                    Uuid::new_v4(),
                    "Order",
                    vec![placed_v1(&customer, &[])],
                    ExpectedVersion::NoStream,
                )
                .await
                .unwrap();
        }
        store
            .append_events(
                Uuid::new_v4(),
                "Order",
                vec![placed_v1("ada", &["a", "b", "c"])],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        store
            .append_events(
                Uuid::new_v4(),
                "Order",
                vec![NewEvent::new(ItemAdded { sku: "d".into() })],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let (manager, items) = support::started_subscription(
            store.clone(),
            Items::default(),
            SubscriptionConfig::new().batch_size(2),
            "items",
        )
        .await;
        items.wait_for(7, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            items.projection().lock().await.0,
            ["a", "b", "c", "d"],
            "{name}"
        );
        manager.stop().await;
    }
}

/// Applies items to a table of the store's database; fails once at `fail_once`.
#[derive(Debug, Default)]
struct ItemTable {
    fail_once: Option<String>,
}

#[eventsource::async_trait]
impl eventsource::TransactionalProjection<sqlx::SqliteConnection> for ItemTable {
    fn name(&self) -> &str {
        "items"
    }

    fn handled_event_types(&self) -> &'static [&'static str] {
        &["ItemAdded"]
    }

    async fn handle(
        &mut self,
        event: &StoredEvent,
        conn: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        let sku = &event.event::<ItemAdded>()?.sku;
        sqlx::query(
            "INSERT INTO items (sku, times) VALUES (?, 1) ON CONFLICT (sku) DO UPDATE SET times = times + 1",
        )
        .bind(sku)
        .execute(&mut *conn)
        .await?;
        if self.fail_once.as_deref() == Some(sku.as_str()) {
            self.fail_once = None;
            return Err(format!("{sku} fails once").into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn an_event_failing_for_good_inside_a_row_is_dead_lettered() {
    #[derive(Debug)]
    struct Poisoned;

    #[eventsource::async_trait]
    impl eventsource::TransactionalProjection<sqlx::SqliteConnection> for Poisoned {
        fn name(&self) -> &str {
            "poisoned"
        }

        fn handled_event_types(&self) -> &'static [&'static str] {
            &["ItemAdded"]
        }

        async fn handle(
            &mut self,
            event: &StoredEvent,
            _conn: &mut SqliteConnection,
        ) -> Result<(), BoxError> {
            match event.event::<ItemAdded>()?.sku.as_str() {
                "poison" => Err("never applies".into()),
                _ => Ok(()),
            }
        }
    }

    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    store
        .append_events(
            Uuid::new_v4(),
            "Order",
            vec![placed_v1("a", &["ok", "poison", "also-ok"])],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let mut runner = SqliteProjectionRunner::new(store.clone(), Poisoned, "poisoned").retry(retry);
    runner.catch_up().await.unwrap();
    let letters =
        eventsource::DeadLetterStore::get_failed_events(&store, Some("poisoned"), None, 10)
            .await
            .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].failed.retry_count, 3);
    assert_eq!(
        eventsource::CheckpointStore::get_position(&store, "poisoned")
            .await
            .unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn an_exactly_once_projection_retrying_inside_a_row_applies_its_events_once() {
    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    sqlx::raw_sql("CREATE TABLE items (sku TEXT PRIMARY KEY, times INTEGER NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    for (customer, items) in [
        ("a", &["a-1"][..]),
        ("b", &[][..]),
        ("c", &["c-1", "c-2", "c-3"][..]),
    ] {
        store
            .append_events(
                Uuid::new_v4(),
                "Order",
                vec![placed_v1(customer, items)],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    let projection = ItemTable {
        fail_once: Some("c-2".into()),
    };
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let mut runner = SqliteProjectionRunner::new(store.clone(), projection, "items")
        .batch_size(2)
        .retry(retry);
    // c-2 fails inside its row: the batch ends before the row, c-1's write undone.
    let first = runner.run_batch().await.unwrap();
    assert_eq!((first.applied, first.position), (1, 1), "{first:?}");
    assert!(first.retry_after.is_some());
    runner.catch_up().await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sku, times FROM items ORDER BY sku")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let expected: Vec<(String, i64)> = ["a-1", "c-1", "c-2", "c-3"]
        .iter()
        .map(|s| ((*s).to_owned(), 1))
        .collect();
    assert_eq!(rows, expected, "every item applied exactly once");
    assert_eq!(
        eventsource::CheckpointStore::get_position(&store, "items")
            .await
            .unwrap(),
        Some(3)
    );
}
