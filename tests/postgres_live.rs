//! PostgreSQL under concurrent writers and across processes: every committed event is
//! delivered exactly once in global-position order, subscriptions go live on
//! `LISTEN/NOTIFY` (not polling), and survive a server restart.
#![cfg(feature = "postgres")]

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    BusFilter, EventBus, PostgresEventBus, PostgresEventStore, StartFrom, SubscriptionConfig,
    SubscriptionManager,
};
use futures::TryStreamExt;
use support::postgres::{dedicated_server, server, PgServer};
use support::{created, TaskCreated};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);
/// A poll interval no test waits out: delivery within the test must come from NOTIFY.
const NO_POLLING: Duration = Duration::from_secs(3600);

/// Every event it handles, in order: (global position, event id). Declared durable (as a
/// read model kept in the database would be), so that a new manager resumes it from its
/// PostgreSQL checkpoint instead of rebuilding it.
#[derive(Debug, Default)]
struct Ledger {
    seen: Vec<(u64, Uuid)>,
}

#[projection(name = "ledger", durable = true)]
impl Ledger {
    #[handles]
    async fn created(&mut self, _event: &TaskCreated, ctx: &EventContext<'_>) {
        self.seen
            .push((ctx.global_position(), ctx.envelope().event_id));
    }
}

/// Asserts that `seen` is exactly the store's events, once each, in position order.
async fn assert_exactly_once_in_order(store: &PostgresEventStore, seen: &[(u64, Uuid)]) {
    let stored: Vec<(u64, Uuid)> = store
        .read_all(ReadOptions::new())
        .map_ok(|e| (e.global_position, e.event_id()))
        .try_collect()
        .await
        .unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "delivered out of order or twice"
    );
    assert_eq!(seen.len(), stored.len(), "every event, once");
    assert_eq!(seen, stored.as_slice());
}

/// Appends `count` single- or multi-event batches to random streams (of `streams`).
async fn write(store: PostgresEventStore, streams: Vec<Uuid>, count: usize, seed: u64) -> usize {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut written = 0;
    for i in 0..count {
        let stream = streams[(next() % streams.len() as u64) as usize];
        let batch: Vec<NewEvent> = (0..1 + next() % 3)
            .map(|j| created(&format!("{seed}-{i}-{j}")))
            .collect();
        written += batch.len();
        store
            .append_events(stream, "Task", batch, ExpectedVersion::Any)
            .await
            .unwrap();
    }
    written
}

async fn subscribe(
    store: &PostgresEventStore,
    bus: PostgresEventBus,
    poll: Duration,
) -> (SubscriptionManager, eventsource::Subscription<Ledger>) {
    let store_arc = Arc::new(store.clone());
    let manager = SubscriptionManager::new(store_arc.clone(), Arc::new(bus), store_arc.clone())
        .with_dead_letters(store_arc);
    let ledger = manager
        .subscribe(
            Ledger::default(),
            SubscriptionConfig::new().batch_size(50).poll_interval(poll),
            "ledger",
        )
        .await
        .unwrap();
    (manager, ledger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writers_and_a_catching_up_subscriber_see_every_event_once_in_order() {
    let Some(server) = server() else { return };
    let store = server
        .options()
        .max_connections(12)
        .connect()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let streams: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    // Some history to catch up on, then the subscriber starts while 8 writers append.
    write(store.clone(), streams.clone(), 100, 99).await;
    // Each writer has streams of its own and some shared with all: the shared ones race
    // with `ExpectedVersion::Any`, which must never conflict.
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let mut mine: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
            mine.extend_from_slice(&streams[..2]);
            tokio::spawn(write(store.clone(), mine, 60, w + 1))
        })
        .collect();
    let bus = PostgresEventBus::start(&store).await.unwrap();
    let (manager, ledger) = subscribe(&store, bus, Duration::from_millis(200)).await;
    manager.start().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let head = store.get_global_position().await.unwrap();
    ledger.wait_for(head, WAIT).await.unwrap();
    manager.stop().await;
    let seen = ledger.projection().lock().await.seen.clone();
    assert_exactly_once_in_order(&store, &seen).await;
    // Positions are dense: appends commit in position order, no transaction rolled back.
    assert_eq!(seen.len() as u64, head);
}

const CHILD_URL: &str = "EVENTSOURCE_TEST_CHILD_URL";
const CHILD_SCHEMA: &str = "EVENTSOURCE_TEST_CHILD_SCHEMA";
const CHILD_SEED: &str = "EVENTSOURCE_TEST_CHILD_SEED";

/// Not a test on its own: the writer process of
/// `writers_in_other_processes_reach_a_live_subscriber_through_notify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of writers_in_other_processes_reach_a_live_subscriber_through_notify"]
async fn child_writer() {
    let (Ok(url), Ok(schema), Ok(seed)) = (
        std::env::var(CHILD_URL),
        std::env::var(CHILD_SCHEMA),
        std::env::var(CHILD_SEED),
    ) else {
        return;
    };
    let seed: u64 = seed.parse().unwrap();
    let store = PostgresEventStore::options(url)
        .schema(schema)
        .connect()
        .await
        .unwrap();
    let streams: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    let tasks: Vec<_> = (0..2)
        .map(|t| tokio::spawn(write(store.clone(), streams.clone(), 40, seed * 10 + t)))
        .collect();
    let mut written = 0;
    for task in tasks {
        written += task.await.unwrap();
    }
    println!("WROTE {written}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_other_processes_reach_a_live_subscriber_through_notify() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    let bus = PostgresEventBus::start(&store).await.unwrap();
    let (manager, ledger) = subscribe(&store, bus.clone(), NO_POLLING).await;
    manager.start().await.unwrap();
    let children: Vec<_> = (1..=3)
        .map(|seed| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_writer", "--ignored", "--nocapture"])
                .env(CHILD_URL, server.url())
                .env(CHILD_SCHEMA, store.schema())
                .env(CHILD_SEED, seed.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut written = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("WROTE ").map(|(_, n)| n.trim().to_owned()))
            .unwrap_or_else(|| panic!("no count from the writer: {stdout}"));
        written += line.parse::<u64>().unwrap();
    }
    let head = store.get_global_position().await.unwrap();
    assert_eq!(head, written);
    // The subscription polls once an hour: only the notifications can bring it here.
    ledger.wait_for(head, WAIT).await.unwrap();
    manager.stop().await;
    let seen = ledger.projection().lock().await.seen.clone();
    assert_exactly_once_in_order(&store, &seen).await;
    // The bus relays on its own schedule: give it time to catch up, then check it
    // delivered each event once (never twice).
    let deadline = tokio::time::Instant::now() + WAIT;
    while bus.delivered() < written && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        bus.delivered(),
        written,
        "the bus delivered each event once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_delivers_events_of_another_store_handle_in_order() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    // A second pool on the same schema stands for another process.
    let other = server
        .options()
        .schema(store.schema())
        .connect()
        .await
        .unwrap();
    let bus = PostgresEventBus::start(&store).await.unwrap();
    let mut subscription = bus.subscribe(BusFilter::EventTypes(vec!["TaskCreated".into()]));
    let id = Uuid::new_v4();
    other
        .append_events(
            id,
            "Task",
            vec![created("a"), created("b")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    for (expected_position, title) in [(1, "a"), (2, "b")] {
        let event = tokio::time::timeout(WAIT, subscription.recv())
            .await
            .expect("delivered without polling")
            .unwrap();
        assert_eq!(event.global_position, expected_position);
        assert_eq!(event.event::<TaskCreated>().unwrap().title, title);
    }
    // Publishing through the bus does not deliver twice: the store announced them.
    bus.publish(&[]).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), subscription.recv())
            .await
            .is_err(),
        "nothing more"
    );
}

/// Appends, retrying while the server is unreachable (the batch's event ids make a retry
/// after a lost acknowledgement safe).
async fn append_retrying(store: &PostgresEventStore, stream: Uuid, title: &str) {
    let event = created(title);
    for _ in 0..200 {
        match store
            .append_events(stream, "Task", vec![event.clone()], ExpectedVersion::Any)
            .await
        {
            Ok(_) => return,
            // A server restart is a transient error, typed so that callers can retry.
            Err(error) if error.is_transient() => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(other) => panic!("unexpected error (not transient): {other:?}"),
        }
    }
    panic!("the server did not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_server_restart_and_resume_from_their_checkpoint() {
    let Some(server): Option<PgServer> = dedicated_server() else {
        return;
    };
    let store = server.store().await;
    let bus = PostgresEventBus::start(&store).await.unwrap();
    let (manager, ledger) = subscribe(&store, bus.clone(), NO_POLLING).await;
    manager.start().await.unwrap();
    let stream = Uuid::new_v4();
    for i in 0..20 {
        append_retrying(&store, stream, &format!("before {i}")).await;
    }
    ledger.wait_for(20, WAIT).await.unwrap();

    server.restart();
    for i in 0..20 {
        append_retrying(&store, stream, &format!("after {i}")).await;
    }
    let head = store.get_global_position().await.unwrap();
    ledger.wait_for(head, WAIT).await.unwrap();
    assert!(
        bus.connection_losses() >= 1,
        "the bus saw its LISTEN connection go"
    );
    manager.stop().await;
    let seen = ledger.projection().lock().await.seen.clone();
    assert_exactly_once_in_order(&store, &seen).await;

    // A new process (a new manager) resumes after its checkpoint, in PostgreSQL.
    let bus = PostgresEventBus::start(&store).await.unwrap();
    let store_arc = Arc::new(store.clone());
    let resumed = SubscriptionManager::new(store_arc.clone(), Arc::new(bus), store_arc);
    let ledger = resumed
        .subscribe(
            Ledger::default(),
            SubscriptionConfig::new()
                .start_from(StartFrom::Checkpoint)
                .poll_interval(NO_POLLING),
            "ledger",
        )
        .await
        .unwrap();
    resumed.start().await.unwrap();
    append_retrying(&store, stream, "resumed").await;
    ledger.wait_for(head + 1, WAIT).await.unwrap();
    resumed.stop().await;
    let seen = ledger.projection().lock().await.seen.clone();
    assert_eq!(
        seen.len(),
        1,
        "only the event after the checkpoint: {seen:?}"
    );
    assert_eq!(seen[0].0, head + 1);
    store.close().await;
    server.stop();
}
