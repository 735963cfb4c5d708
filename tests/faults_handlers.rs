//! Faults in user code and under a subscription, made loud: a panicking handler or
//! publisher is retried and dead-lettered like a failing one; `wait_for` never reports
//! success for an event that was dead-lettered; a closed store is `Failed`, not `Live`;
//! a recovered subscription clears its stale error.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    BoxError, CheckpointStore, DeadLetterStore, Error, InMemoryCheckpointStore,
    InMemoryDeadLetterStore, InMemoryEventBus, OutboxEntry, OutboxPublisher, OutboxRelay,
    OutboxStatus, OutboxStore, RetryPolicy, SqliteProjectionRunner, SubscriptionConfig,
    SubscriptionManager, SubscriptionState,
};
use sqlx::SqliteConnection;
use support::{created, TaskCreated};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

fn quick_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        multiplier: 2.0,
    }
}

/// Panics on the title "boom", records every other title.
#[derive(Debug, Default)]
struct Fragile {
    titles: Vec<String>,
}

#[projection]
impl Fragile {
    #[handles]
    async fn created(&mut self, event: &TaskCreated) {
        if event.title == "boom" {
            panic!("cannot handle {}", event.title);
        }
        self.titles.push(event.title.clone());
    }
}

async fn append(store: &dyn EventStore, title: &str) -> u64 {
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created(title)],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap()
        .global_position
}

async fn state_becomes(
    health: impl Fn() -> eventsource::SubscriptionHealth,
    want: SubscriptionState,
) -> eventsource::SubscriptionHealth {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = health();
        if now.state == want {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became {want:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_dead_lettered_and_the_subscription_goes_on() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let dead_letters = Arc::new(InMemoryDeadLetterStore::new());
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    )
    .with_dead_letters(dead_letters.clone());
    let fragile = manager
        .subscribe(
            Fragile::default(),
            SubscriptionConfig::new().retry(quick_retry(3)),
            "fragile",
        )
        .await
        .unwrap();
    let first = append(store.as_ref(), "first").await;
    let boom = append(store.as_ref(), "boom").await;
    manager.start().await.unwrap();
    fragile.wait_for(first, WAIT).await.unwrap();
    match fragile.wait_for(boom, WAIT).await {
        Err(Error::DeadLettered {
            subscription,
            position,
            event_type,
            error,
        }) => {
            assert_eq!((subscription.as_str(), position), ("fragile", boom));
            assert_eq!(event_type, "TaskCreated");
            assert!(error.contains("panicked: cannot handle boom"), "{error}");
        }
        other => panic!("wait_for must report the dead letter, got {other:?}"),
    }
    // Live events after the panic are handled.
    let live = append(store.as_ref(), "live").await;
    fragile.wait_for(live, WAIT).await.unwrap();
    assert_eq!(fragile.projection().lock().await.titles, ["first", "live"]);

    let letters = dead_letters
        .get_failed_events(Some("fragile"), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].failed.global_position, boom);
    assert_eq!(letters[0].failed.retry_count, 3, "retried by the policy");
    assert!(letters[0].failed.error.contains("cannot handle boom"));
    let health = fragile.health();
    assert_eq!(health.state, SubscriptionState::Live);
    assert_eq!((health.events_processed, health.events_failed), (2, 1));
    assert!(health
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("panicked")));
    assert!(health.last_error_at.is_some());
    manager.stop().await;
    assert!(matches!(
        fragile.wait_for(live + 1, WAIT).await,
        Err(Error::SubscriptionStopped {
            state: SubscriptionState::Stopped,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_fails_the_subscription_loudly() {
    let dir = support::TempDir::new();
    let store = Arc::new(SqliteEventStore::open(dir.file("events.db")).await.unwrap());
    store.initialize().await.unwrap();
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    );
    let fragile = manager
        .subscribe(
            Fragile::default(),
            SubscriptionConfig::new().poll_interval(Duration::from_millis(10)),
            "fragile",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    let first = append(store.as_ref(), "first").await;
    fragile.wait_for(first, WAIT).await.unwrap();
    store.close().await;
    let health = state_becomes(|| fragile.health(), SubscriptionState::Failed).await;
    assert!(
        health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("closed")),
        "{health:?}"
    );
    match fragile.wait_for(first + 1, WAIT).await {
        Err(Error::SubscriptionStopped {
            state: SubscriptionState::Failed,
            reached,
            ..
        }) => assert_eq!(reached, first),
        other => panic!("expected SubscriptionStopped, got {other:?}"),
    }
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_subscription_clears_its_stale_error() {
    let dir = support::TempDir::new();
    let store = Arc::new(SqliteEventStore::open(dir.file("events.db")).await.unwrap());
    store.initialize().await.unwrap();
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    );
    let fragile = manager
        .subscribe(
            Fragile::default(),
            SubscriptionConfig::new()
                .poll_interval(Duration::from_millis(10))
                .retry(quick_retry(3)),
            "fragile",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    let first = append(store.as_ref(), "first").await;
    fragile.wait_for(first, WAIT).await.unwrap();
    // The events table goes away under the subscription (another tool, a restore):
    // every batch fails until it is back.
    sqlx::query("ALTER TABLE events RENAME TO events_away")
        .execute(store.pool())
        .await
        .unwrap();
    let failing = state_becomes(|| fragile.health(), SubscriptionState::Retrying).await;
    assert!(failing.last_error.is_some(), "{failing:?}");
    match fragile
        .wait_for(first + 1, Duration::from_millis(100))
        .await
    {
        Err(Error::WaitTimeout {
            state: SubscriptionState::Retrying,
            last_error: Some(_),
            ..
        }) => {}
        other => panic!("expected a timeout naming the failure, got {other:?}"),
    }
    sqlx::query("ALTER TABLE events_away RENAME TO events")
        .execute(store.pool())
        .await
        .unwrap();
    let second = append(store.as_ref(), "second").await;
    fragile.wait_for(second, WAIT).await.unwrap();
    let health = state_becomes(|| fragile.health(), SubscriptionState::Live).await;
    assert_eq!(health.last_error, None, "the store's failure is over");
    assert_eq!(health.last_error_at, None);
    manager.stop().await;
}

/// Writes each title to `titles`; panics on "boom" after its write.
#[derive(Debug)]
struct FragileTable;

#[eventsource::async_trait]
impl eventsource::TransactionalProjection<sqlx::SqliteConnection> for FragileTable {
    fn name(&self) -> &str {
        "fragile_table"
    }

    fn handled_event_types(&self) -> &'static [&'static str] {
        &["TaskCreated"]
    }

    async fn handle(
        &mut self,
        event: &StoredEvent,
        conn: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        let task: &TaskCreated = event.event()?;
        sqlx::query("INSERT INTO titles (title) VALUES (?)")
            .bind(&task.title)
            .execute(&mut *conn)
            .await?;
        if task.title == "boom" {
            panic!("cannot handle boom");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sqlite_projection_rolls_back_its_writes_and_goes_on() {
    let dir = support::TempDir::new();
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    sqlx::query("CREATE TABLE titles (title TEXT NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    for title in ["first", "boom", "last"] {
        append(&store, title).await;
    }
    let mut runner = SqliteProjectionRunner::new(store.clone(), FragileTable, "fragile_table")
        .retry(quick_retry(2));
    let applied = runner.catch_up().await.unwrap();
    assert_eq!(applied, 2);
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM titles ORDER BY rowid")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(
        titles,
        ["first", "last"],
        "the panicking attempt's write is rolled back"
    );
    let letters = store
        .get_failed_events(Some("fragile_table"), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].failed.global_position, 2);
    assert!(letters[0]
        .failed
        .error
        .contains("panicked: cannot handle boom"));
}

/// Panics the first `panics` times it is called.
#[derive(Debug)]
struct PanickyPublisher {
    calls: AtomicU32,
    panics: u32,
    published: std::sync::Mutex<Vec<i64>>,
}

#[eventsource::async_trait]
impl OutboxPublisher for PanickyPublisher {
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), BoxError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.panics {
            panic!("broker client bug");
        }
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(entry.id);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_outbox_publisher_is_a_failed_publish() {
    let dir = support::TempDir::new();
    let store = Arc::new(
        SqliteEventStore::options(dir.file("events.db"))
            .outbox(true)
            .open()
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    append(store.as_ref(), "a").await;
    append(store.as_ref(), "b").await;
    let publisher = Arc::new(PanickyPublisher {
        calls: AtomicU32::new(0),
        panics: 1,
        published: std::sync::Mutex::new(Vec::new()),
    });
    let relay = OutboxRelay::new(store.clone(), publisher.clone()).retry(quick_retry(3));
    let round = relay.run_once().await.unwrap();
    assert_eq!(round.published, 0);
    assert_eq!(round.failed_retries, Some(1));
    let pending = store.get_pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].retry_count, 1);
    assert!(pending[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("publisher panicked: broker client bug")));
    let round = relay.run_once().await.unwrap();
    assert_eq!(round.published, 2);
    assert_eq!(store.get_pending_events(10).await.unwrap().len(), 0);
    let ids = publisher.published.lock().unwrap().clone();
    assert_eq!(ids.len(), 2);
    let published = store
        .get_entries(Some(OutboxStatus::Published), 10)
        .await
        .unwrap();
    assert_eq!(published.len(), 2);
}

/// How the checkpoint store of the next test misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Misbehave {
    No,
    Fail,
    Panic,
}

/// A checkpoint store of the user's that fails or panics on demand.
#[derive(Debug)]
struct FlakyCheckpoints {
    inner: InMemoryCheckpointStore,
    mode: std::sync::Mutex<Misbehave>,
}

impl FlakyCheckpoints {
    fn set(&self, mode: Misbehave) {
        *self.mode.lock().unwrap() = mode;
    }
}

#[eventsource::async_trait]
impl CheckpointStore for FlakyCheckpoints {
    async fn get_checkpoint(
        &self,
        projection_name: &str,
    ) -> eventsource::Result<Option<eventsource::Checkpoint>> {
        self.inner.get_checkpoint(projection_name).await
    }

    async fn save_progress(
        &self,
        projection_name: &str,
        global_position: u64,
        last_event: Option<(Uuid, &str)>,
        handled: u64,
    ) -> eventsource::Result<()> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Misbehave::No => {
                self.inner
                    .save_progress(projection_name, global_position, last_event, handled)
                    .await
            }
            Misbehave::Fail => Err(Error::Database {
                operation: "save_progress",
                kind: eventsource::DatabaseErrorKind::Busy,
                source: "checkpoint database busy".into(),
            }),
            Misbehave::Panic => panic!("checkpoint store bug"),
        }
    }

    async fn get_all_checkpoints(&self) -> eventsource::Result<Vec<eventsource::Checkpoint>> {
        self.inner.get_all_checkpoints().await
    }

    async fn reset(&self, projection_name: &str) -> eventsource::Result<()> {
        self.inner.reset(projection_name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_keeps_running_subscriptions_running() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    );
    let fragile = manager
        .subscribe(Fragile::default(), SubscriptionConfig::new(), "fragile")
        .await
        .unwrap();
    manager.start().await.unwrap();
    let first = append(store.as_ref(), "first").await;
    fragile.wait_for(first, WAIT).await.unwrap();
    // Starting again (e.g. after subscribing more) must not stop what runs.
    manager.start().await.unwrap();
    let second = append(store.as_ref(), "second").await;
    fragile.wait_for(second, WAIT).await.unwrap();
    assert_eq!(fragile.health().state, SubscriptionState::Live);
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_then_panicking_checkpoint_store_is_loud_and_nothing_is_applied_twice() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let checkpoints = Arc::new(FlakyCheckpoints {
        inner: InMemoryCheckpointStore::new(),
        mode: std::sync::Mutex::new(Misbehave::No),
    });
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        checkpoints.clone(),
    );
    let fragile = manager
        .subscribe(
            Fragile::default(),
            SubscriptionConfig::new()
                .poll_interval(Duration::from_millis(10))
                .retry(quick_retry(3)),
            "fragile",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    let first = append(store.as_ref(), "first").await;
    fragile.wait_for(first, WAIT).await.unwrap();

    // The checkpoint cannot be saved: what was handled is still reported as handled.
    checkpoints.set(Misbehave::Fail);
    let second = append(store.as_ref(), "second").await;
    fragile.wait_for(second, WAIT).await.unwrap();
    let failing = state_becomes(|| fragile.health(), SubscriptionState::Retrying).await;
    assert!(failing
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("checkpoint database busy")));
    // And stays so while the checkpoint cannot be saved: a poll that finds nothing new
    // is no recovery, the handled position is still unsaved.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = fragile.health();
    assert_eq!(still.state, SubscriptionState::Retrying, "{still:?}");
    assert!(still.last_error.is_some(), "{still:?}");
    checkpoints.set(Misbehave::No);
    state_becomes(|| fragile.health(), SubscriptionState::Live).await;
    assert_eq!(
        checkpoints.inner.get_position("fragile").await.unwrap(),
        Some(second),
        "saved once the store recovered"
    );
    checkpoints.set(Misbehave::Fail);
    // A restart in this process goes on after what the read model has.
    manager.stop().await;
    checkpoints.set(Misbehave::No);
    manager.start().await.unwrap();
    let third = append(store.as_ref(), "third").await;
    fragile.wait_for(third, WAIT).await.unwrap();
    assert_eq!(
        fragile.projection().lock().await.titles,
        ["first", "second", "third"],
        "nothing applied twice"
    );

    // A panic in the user's checkpoint store ends the subscription loudly.
    checkpoints.set(Misbehave::Panic);
    let fourth = append(store.as_ref(), "fourth").await;
    let failed = state_becomes(|| fragile.health(), SubscriptionState::Failed).await;
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("checkpoint store bug")),
        "{failed:?}"
    );
    assert!(matches!(
        fragile.wait_for(fourth + 1, WAIT).await,
        Err(Error::SubscriptionStopped {
            state: SubscriptionState::Failed,
            ..
        })
    ));
    // And `start` runs it again, from where it was.
    checkpoints.set(Misbehave::No);
    manager.start().await.unwrap();
    let fifth = append(store.as_ref(), "fifth").await;
    fragile.wait_for(fifth, WAIT).await.unwrap();
    assert_eq!(
        fragile.projection().lock().await.titles,
        ["first", "second", "third", "fourth", "fifth"]
    );
    manager.stop().await;
}
