//! SubscriptionManager: the seeds' full stack, catch-up racing appends, restarts from
//! checkpoints, retries and dead letters, start positions, graceful stop, and the bus.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    BoxError, BusFilter, BusRecvError, CheckpointStore, DeadLetterStatus, DeadLetterStore, Error,
    EventBus, InMemoryCheckpointStore, InMemoryDeadLetterStore, InMemoryEventBus, RetryPolicy,
    StartFrom, SubscriptionConfig, SubscriptionManager, SubscriptionState,
};
use support::bank::{AccountCommands, AccountOpened, AccountState, MoneyDeposited};
use support::{created, every_store, TaskCompleted, TaskCreated};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// Every event it sees, in order: (global position, event id).
#[derive(Debug, Default)]
struct Ledger {
    seen: Vec<(u64, Uuid)>,
    fail_titles: Vec<String>,
    attempts: HashMap<String, u32>,
}

#[projection(name = "ledger")]
impl Ledger {
    #[handles]
    async fn created(
        &mut self,
        event: &TaskCreated,
        ctx: &EventContext<'_>,
    ) -> Result<(), BoxError> {
        *self.attempts.entry(event.title.clone()).or_default() += 1;
        if self.fail_titles.contains(&event.title) {
            return Err(format!("refusing {}", event.title).into());
        }
        self.seen
            .push((ctx.global_position(), ctx.envelope().event_id));
        Ok(())
    }
}

/// A ledger that says its read model is durable (as one kept in a database would be): a
/// new process resumes it from its checkpoint.
#[derive(Debug, Default)]
struct DurableLedger {
    positions: Vec<u64>,
}

#[projection(name = "durable-ledger", durable = true)]
impl DurableLedger {
    #[handles]
    async fn created(&mut self, _event: &TaskCreated, ctx: &EventContext<'_>) {
        self.positions.push(ctx.global_position());
    }
}

impl Ledger {
    /// The global positions it has seen, in the order it saw them.
    fn positions(&self) -> Vec<u64> {
        self.seen.iter().map(|(p, _)| *p).collect()
    }
}

/// The seeds' account list read model.
#[derive(Debug, Default)]
struct Balances {
    balances: HashMap<Uuid, f64>,
}

#[projection]
impl Balances {
    #[handles]
    async fn opened(&mut self, event: &AccountOpened, ctx: &EventContext<'_>) {
        self.balances
            .insert(ctx.aggregate_id(), event.initial_balance);
    }

    #[handles]
    async fn deposited(&mut self, event: &MoneyDeposited, ctx: &EventContext<'_>) {
        *self.balances.entry(ctx.aggregate_id()).or_default() += event.amount;
    }
}

fn manager(
    store: Arc<dyn EventStore>,
    bus: Arc<InMemoryEventBus>,
    checkpoints: Arc<dyn CheckpointStore>,
) -> SubscriptionManager {
    SubscriptionManager::new(store, bus, checkpoints)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stack_sees_history_and_live_events() {
    for (backend, fixture) in every_store().await {
        let bus = Arc::new(InMemoryEventBus::new());
        let repo = AggregateRepository::<AccountState>::new(fixture.store.clone())
            .with_publisher(bus.clone());
        // History before the manager starts.
        let alice = Uuid::new_v4();
        let mut account = repo.create_new(alice);
        account.open("Alice", 10.0).unwrap();
        repo.save(&mut account).await.unwrap();

        let manager = manager(
            fixture.store.clone(),
            bus.clone(),
            Arc::new(InMemoryCheckpointStore::new()),
        );
        let balances = manager
            .subscribe(
                Balances::default(),
                SubscriptionConfig::new().start_from(StartFrom::Beginning),
                "balances",
            )
            .await
            .unwrap();
        manager.start().await.unwrap();

        // Live events, read back through the read model (read-your-writes).
        let mut account = repo.load(alice).await.unwrap();
        account.deposit(5.0).unwrap();
        let saved = repo.save(&mut account).await.unwrap();
        balances
            .wait_for(saved.global_position, WAIT)
            .await
            .unwrap();
        assert_eq!(
            balances.projection().lock().await.balances.get(&alice),
            Some(&15.0),
            "{backend}"
        );
        let health = balances.health();
        assert_eq!(health.state, SubscriptionState::Live, "{backend}");
        assert_eq!(health.events_processed, 2);
        assert_eq!(health.position, 2);
        manager.stop().await;
        assert_eq!(balances.health().state, SubscriptionState::Stopped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_racing_appends_misses_and_doubles_nothing() {
    for (backend, fixture) in every_store().await {
        let store = fixture.store.clone();
        // History to catch up on.
        for _ in 0..300 {
            store
                .append_events(
                    Uuid::new_v4(),
                    "Task",
                    vec![created("old")],
                    ExpectedVersion::NoStream,
                )
                .await
                .unwrap();
        }
        let bus = Arc::new(InMemoryEventBus::new());
        let checkpoints = Arc::new(InMemoryCheckpointStore::new());
        let manager = manager(store.clone(), bus.clone(), checkpoints.clone());
        let ledger = manager
            .subscribe(
                Ledger::default(),
                SubscriptionConfig::new().batch_size(64),
                "ledger",
            )
            .await
            .unwrap();
        // Writers keep appending (and publishing) while the subscription starts, catches
        // up and switches to live.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (store, bus) = (store.clone(), bus.clone());
                tokio::spawn(async move {
                    for i in 0..60 {
                        let id = Uuid::new_v4();
                        let events = if i % 5 == 0 {
                            vec![
                                created(&format!("w{w}-{i}")),
                                NewEvent::new(TaskCompleted {}),
                            ]
                        } else {
                            vec![created(&format!("w{w}-{i}"))]
                        };
                        store
                            .append_events(id, "Task", events, ExpectedVersion::NoStream)
                            .await
                            .unwrap();
                        // Publish only some: a lost wake-up must not lose events.
                        if i % 3 != 0 {
                            let stored = store
                                .get_events(id, "Task", GetEventsOptions::default())
                                .await
                                .unwrap();
                            EventBus::publish(bus.as_ref(), &stored.events)
                                .await
                                .unwrap();
                        }
                        if i % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        manager.start().await.unwrap();
        for writer in writers {
            writer.await.unwrap();
        }
        let head = store.get_global_position().await.unwrap();
        ledger.wait_for(head, WAIT).await.unwrap();
        manager.stop().await;

        let expected: Vec<(u64, Uuid)> =
            support::collect(store.read_all(ReadOptions::new().event_types(["TaskCreated"])))
                .await
                .iter()
                .map(|e| (e.global_position, e.event_id()))
                .collect();
        assert_eq!(expected.len(), 300 + 240, "{backend}");
        let seen = ledger.projection().lock().await.seen.clone();
        assert_eq!(
            seen.len(),
            expected.len(),
            "{backend}: nothing missed or doubled"
        );
        assert_eq!(seen, expected, "{backend}: in global order");
        assert_eq!(
            checkpoints.get_position("ledger").await.unwrap(),
            Some(head)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_checkpoint() {
    let dir = support::TempDir::new();
    let store = Arc::new(
        eventsource::SqliteEventStore::open(dir.file("events.db"))
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    for i in 0..10 {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(&format!("first {i}"))],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
    }
    let bus = Arc::new(InMemoryEventBus::new());
    {
        let manager = manager(store.clone(), bus.clone(), store.clone());
        let ledger = manager
            .subscribe(Ledger::default(), SubscriptionConfig::new(), "ledger")
            .await
            .unwrap();
        manager.start().await.unwrap();
        ledger.wait_for(10, WAIT).await.unwrap();
        manager.stop().await;
        assert_eq!(ledger.projection().lock().await.seen.len(), 10);
    }
    assert_eq!(
        CheckpointStore::get_position(store.as_ref(), "ledger")
            .await
            .unwrap(),
        Some(10)
    );
    for i in 0..5 {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(&format!("second {i}"))],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
    }
    // A durable read model with a checkpoint at 10 as well.
    store.save_progress("durable", 10, None, 10).await.unwrap();
    // A new process: a fresh projection, the same checkpoint table.
    let manager = manager(store.clone(), bus, store.clone());
    let ledger = manager
        .subscribe(Ledger::default(), SubscriptionConfig::new(), "ledger")
        .await
        .unwrap();
    let durable = manager
        .subscribe(
            DurableLedger::default(),
            SubscriptionConfig::new(),
            "durable",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    ledger.wait_for(15, WAIT).await.unwrap();
    durable.wait_for(15, WAIT).await.unwrap();
    manager.stop().await;
    assert_eq!(
        ledger.projection().lock().await.positions(),
        (1..=15).collect::<Vec<_>>(),
        "an in-memory read model starts empty in a new process: it is rebuilt, not resumed"
    );
    assert_eq!(
        durable.projection().lock().await.positions,
        (11..=15).collect::<Vec<_>>(),
        "a durable read model resumes after its checkpoint"
    );
    let lag = manager.lag("ledger").await.unwrap().unwrap();
    assert_eq!((lag.events_behind, lag.global_position), (0, 15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_handlers_are_retried_then_dead_lettered() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let dlq = Arc::new(InMemoryDeadLetterStore::new());
    let manager = manager(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    )
    .with_dead_letters(dlq.clone());
    let projection = Ledger {
        fail_titles: vec!["bad".into()],
        ..Ledger::default()
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let ledger = manager
        .subscribe(projection, SubscriptionConfig::new().retry(retry), "ledger")
        .await
        .unwrap();
    manager.start().await.unwrap();
    for title in ["good 1", "bad", "good 2"] {
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
    ledger.wait_for(3, WAIT).await.unwrap();
    manager.stop().await;
    {
        let projection = ledger.projection().lock().await;
        assert_eq!(projection.seen.len(), 2, "the subscription moved on");
        assert_eq!(projection.attempts["bad"], 3, "tried by the policy");
    }
    let letters = dlq
        .get_failed_events(Some("ledger"), Some(DeadLetterStatus::Failed), 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].failed.global_position, 2);
    assert_eq!(letters[0].failed.retry_count, 3);
    assert_eq!(letters[0].failed.error, "refusing bad");
    assert_eq!(
        letters[0].failed.event_data,
        serde_json::json!({"title": "bad"})
    );
    let health = ledger.health();
    assert_eq!((health.events_processed, health.events_failed), (2, 1));
    assert!(health.last_error.unwrap().contains("refusing bad"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_positions_and_timeouts() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    for i in 0..4 {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(&format!("{i}"))],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
    }
    let checkpoints = Arc::new(InMemoryCheckpointStore::new());
    checkpoints
        .save_progress("from-checkpoint", 3, None, 3)
        .await
        .unwrap();
    let manager = manager(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        checkpoints,
    );
    let poll = SubscriptionConfig::new().poll_interval(Duration::from_millis(20));
    let end = manager
        .subscribe(
            Ledger::default(),
            poll.clone().start_from(StartFrom::End),
            "from-end",
        )
        .await
        .unwrap();
    let two = manager
        .subscribe(
            Ledger::default(),
            poll.clone().start_from(StartFrom::Position(2)),
            "from-two",
        )
        .await
        .unwrap();
    let resumed = manager
        .subscribe(DurableLedger::default(), poll.clone(), "from-checkpoint")
        .await
        .unwrap();
    assert!(matches!(
        manager
            .subscribe(Ledger::default(), poll.clone(), "from-two")
            .await,
        Err(Error::InvalidConfiguration { .. })
    ));
    assert!(matches!(
        manager
            .subscribe(Ledger::default(), poll.clone().batch_size(0), "zero")
            .await,
        Err(Error::InvalidConfiguration { .. })
    ));
    manager.start().await.unwrap();
    let result = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("new")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    manager
        .wait_for(result.global_position, WAIT)
        .await
        .unwrap();
    assert_eq!(end.projection().lock().await.positions(), [5]);
    assert_eq!(two.projection().lock().await.positions(), [3, 4, 5]);
    assert_eq!(resumed.projection().lock().await.positions, [4, 5]);
    match end.wait_for(99, Duration::from_millis(50)).await {
        Err(Error::WaitTimeout {
            subscription,
            position: 99,
            reached: 5,
            state: SubscriptionState::Live,
            head: 5,
            last_error: None,
        }) => assert_eq!(subscription, "from-end"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(manager.health().len(), 3);
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_finds_events_nobody_published() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let manager = manager(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    );
    let ledger = manager
        .subscribe(
            Ledger::default(),
            SubscriptionConfig::new().poll_interval(Duration::from_millis(10)),
            "ledger",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    // Live (caught up on the empty store) before the append, so only polling can find it.
    while ledger.health().state != SubscriptionState::Live {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("quiet")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    ledger.wait_for(1, WAIT).await.unwrap();
    manager.stop().await;
}

#[tokio::test]
async fn the_bus_filters_and_reports_lag() {
    let bus = InMemoryEventBus::with_capacity(2);
    let mut all = bus.subscribe(BusFilter::All);
    let mut completed = bus.subscribe(BusFilter::EventTypes(vec!["TaskCompleted".into()]));
    assert_eq!(bus.subscriber_count(), 2);
    let store = InMemoryEventStore::new();
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![created("a"), NewEvent::new(TaskCompleted {})],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let events = store.get_all_events();
    EventBus::publish(&bus, &events).await.unwrap();
    assert_eq!(all.recv().await.unwrap().event_type(), "TaskCreated");
    assert_eq!(all.recv().await.unwrap().event_type(), "TaskCompleted");
    assert_eq!(
        completed.recv().await.unwrap().event_type(),
        "TaskCompleted"
    );
    // A slow subscriber is told it lagged; the publisher never waited.
    for _ in 0..3 {
        EventBus::publish(&bus, &events).await.unwrap();
    }
    assert_eq!(
        all.recv().await.err(),
        Some(BusRecvError::Lagged { missed: 4 })
    );
    assert_eq!(all.missed(), 4);
    assert!(
        all.recv().await.is_ok(),
        "then it goes on with what is held"
    );
    drop(bus);
    while all.recv().await.is_ok() {}
    assert_eq!(all.recv().await.err(), Some(BusRecvError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_dead_lettered_one_by_one_and_passed_over() {
    let dir = support::TempDir::new();
    let store = Arc::new(
        eventsource::SqliteEventStore::open(dir.file("events.db"))
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    for title in ["first", "broken 1", "broken 2", "last"] {
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
    // Two rows whose payload no longer decodes, one with an unreadable event id as well.
    sqlx::query("UPDATE events SET payload = '{broken' WHERE global_position IN (2, 3)")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE events SET event_id = 'not-a-uuid' WHERE global_position = 3")
        .execute(store.pool())
        .await
        .unwrap();
    // Batches of one to three put the corrupt rows at every place in a batch, and make
    // the subscription go on from a corrupt row to the next batch.
    for batch_size in [1, 2, 3, 100] {
        let name = format!("ledger-{batch_size}");
        let manager = manager(
            store.clone(),
            Arc::new(InMemoryEventBus::new()),
            store.clone(),
        )
        .with_dead_letters(store.clone());
        let ledger = manager
            .subscribe(
                Ledger::default(),
                SubscriptionConfig::new().batch_size(batch_size),
                &name,
            )
            .await
            .unwrap();
        manager.start().await.unwrap();
        ledger.wait_for(4, WAIT).await.unwrap();
        manager.stop().await;
        let seen = ledger.projection().lock().await.positions();
        assert_eq!(seen, [1, 4], "batches of {batch_size}");
        let letters = store
            .get_failed_events(Some(&name), None, 10)
            .await
            .unwrap();
        let positions: Vec<u64> = letters.iter().map(|l| l.failed.global_position).collect();
        assert_eq!(positions, [2, 3], "one dead letter per corrupt row");
        assert_eq!(ledger.health().events_failed, 2);
        assert_eq!(
            ledger.health().events_processed,
            2,
            "batches of {batch_size}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_then_start_resumes_without_doubling() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let manager = manager(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    );
    let ledger = manager
        .subscribe(
            Ledger::default(),
            SubscriptionConfig::new().start_from(StartFrom::Beginning),
            "ledger",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("a")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    ledger.wait_for(1, WAIT).await.unwrap();
    manager.stop().await;
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("b")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    manager.start().await.unwrap();
    ledger.wait_for(2, WAIT).await.unwrap();
    // A subscription added to a running manager starts at once.
    let late = manager
        .subscribe(Ledger::default(), SubscriptionConfig::new(), "late")
        .await
        .unwrap();
    late.wait_for(2, WAIT).await.unwrap();
    manager.stop().await;
    let seen = ledger.projection().lock().await.positions();
    assert_eq!(
        seen,
        [1, 2],
        "resumed where it stopped, not from the beginning again"
    );
    assert_eq!(late.projection().lock().await.seen.len(), 2);
}
