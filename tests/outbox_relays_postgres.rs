//! Two outbox relays in two processes share one PostgreSQL outbox: every entry is
//! published once, both relays publish, and each aggregate's entries go out in order
//! across them.
#![cfg(feature = "postgres")]

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventsource::prelude::*;
use eventsource::{
    OutboxEntry, OutboxPublisher, OutboxRelay, OutboxStore, PostgresEventStore, PublishFailure,
};
use support::created;
use support::postgres::server;
use uuid::Uuid;

const CHILD_URL: &str = "EVENTSOURCE_RELAY_CHILD_URL";
const CHILD_SCHEMA: &str = "EVENTSOURCE_RELAY_CHILD_SCHEMA";
const CHILD_START: &str = "EVENTSOURCE_RELAY_CHILD_START_MS";
/// Set for the child that runs its relay spawned (claiming each next batch while it
/// marks the last one) instead of round by round.
const CHILD_SPAWNED: &str = "EVENTSOURCE_RELAY_CHILD_SPAWNED";
const AGGREGATES: usize = 40;
const EVENTS: usize = 50;

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Prints every entry it publishes, with the time.
#[derive(Debug)]
struct PrintingPublisher;

#[eventsource::async_trait]
impl OutboxPublisher for PrintingPublisher {
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), eventsource::BoxError> {
        println!("PUB {} {} {}", entry.id, entry.aggregate_id, now_nanos());
        Ok(())
    }

    async fn publish_batch(&self, entries: &[OutboxEntry]) -> Result<(), PublishFailure> {
        for entry in entries {
            println!("PUB {} {} {}", entry.id, entry.aggregate_id, now_nanos());
        }
        // A broker round trip: the other relay claims meanwhile.
        tokio::time::sleep(Duration::from_millis(3)).await;
        Ok(())
    }
}

/// The child: a relay on the given schema until the outbox is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by two_relays_in_two_processes_share_the_outbox as a child process"]
async fn child_relay() {
    let (Ok(url), Ok(schema), Ok(start)) = (
        std::env::var(CHILD_URL),
        std::env::var(CHILD_SCHEMA),
        std::env::var(CHILD_START),
    ) else {
        return;
    };
    let store = PostgresEventStore::options(url)
        .schema(schema)
        .connect()
        .await
        .unwrap();
    let store = Arc::new(store);
    let relay = OutboxRelay::new(store.clone(), Arc::new(PrintingPublisher)).batch_size(25);
    let start: u128 = start.parse().unwrap();
    let wait = start.saturating_sub(now_nanos());
    tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
    if std::env::var(CHILD_SPAWNED).is_ok() {
        let relay = relay.poll_interval(Duration::from_millis(2)).spawn();
        while store.stats().await.unwrap().pending > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        relay.stop().await;
        return;
    }
    loop {
        let round = relay.run_once().await.unwrap();
        if round.published == 0 {
            if store.stats().await.unwrap().pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_in_two_processes_share_the_outbox() {
    let Some(server) = server() else { return };
    let store = server.options().outbox(true).connect().await.unwrap();
    store.initialize().await.unwrap();
    // Aggregates appended in turns, so that each one's entries spread over the outbox.
    let ids: Vec<Uuid> = (0..AGGREGATES).map(|_| Uuid::new_v4()).collect();
    for round in 0..EVENTS as u64 {
        for id in &ids {
            store
                .append_events(
                    *id,
                    "Task",
                    vec![created("x")],
                    ExpectedVersion::from(round),
                )
                .await
                .unwrap();
        }
    }
    assert_eq!(
        store.stats().await.unwrap().pending,
        (AGGREGATES * EVENTS) as u64
    );

    let start = now_nanos() + 1_500_000_000;
    // One relay round by round, the other spawned.
    let children: Vec<_> = (0..2)
        .map(|i| {
            let mut child = Command::new(std::env::current_exe().unwrap());
            if i == 1 {
                child.env(CHILD_SPAWNED, "1");
            }
            let child = child
                .args([
                    "--exact",
                    "child_relay",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_URL, server.url())
                .env(CHILD_SCHEMA, store.schema())
                .env(CHILD_START, start.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::spawn(move || child.wait_with_output().unwrap())
        })
        .collect();
    // entry id -> (relay, aggregate, time)
    let mut published: HashMap<i64, Vec<(usize, Uuid, u128)>> = HashMap::new();
    let mut per_relay = [0usize; 2];
    for (relay, child) in children.into_iter().enumerate() {
        let output = child.join().unwrap();
        assert!(
            output.status.success(),
            "relay {relay} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some(rest) = line.split("PUB ").nth(1) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (id, aggregate, at) = (
                fields[0].parse().unwrap(),
                fields[1].parse().unwrap(),
                fields[2].parse().unwrap(),
            );
            published
                .entry(id)
                .or_default()
                .push((relay, aggregate, at));
            per_relay[relay] += 1;
        }
    }
    assert_eq!(
        published.len(),
        AGGREGATES * EVENTS,
        "every entry published"
    );
    let twice: Vec<_> = published.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(twice.is_empty(), "entries published twice: {twice:?}");
    assert!(
        per_relay.iter().all(|n| *n > 0),
        "both relays publish: {per_relay:?}"
    );
    // Per aggregate, publishing times follow entry ids, whichever relay published.
    let mut by_aggregate: HashMap<Uuid, Vec<(i64, u128, usize)>> = HashMap::new();
    for (id, publishes) in &published {
        let (relay, aggregate, at) = publishes[0];
        by_aggregate
            .entry(aggregate)
            .or_default()
            .push((*id, at, relay));
    }
    let mut crossings = 0;
    for (aggregate, mut entries) in by_aggregate {
        entries.sort();
        for pair in entries.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "aggregate {aggregate}: entry {} (relay {}) went out after entry {} (relay {})",
                pair[0].0,
                pair[0].2,
                pair[1].0,
                pair[1].2
            );
            crossings += usize::from(pair[0].2 != pair[1].2);
        }
    }
    assert!(
        crossings > 0,
        "no aggregate moved between relays: the order across relays is untested"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.published),
        (0, (AGGREGATES * EVENTS) as u64)
    );
}

/// A relay of an older version claims with row locks, not the claim lock: an entry it
/// leases while this claim is being written is left to it, and the later entries of its
/// aggregate go back, so that aggregate's order holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_gives_back_an_aggregate_whose_entry_another_relay_took_meanwhile() {
    let Some(server) = server() else { return };
    let store = Arc::new(server.options().outbox(true).connect().await.unwrap());
    store.initialize().await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for version in 0..3u64 {
        for id in [a, b] {
            store
                .append_events(
                    id,
                    "Task",
                    vec![created("x")],
                    ExpectedVersion::from(version),
                )
                .await
                .unwrap();
        }
    }
    let outbox = format!("\"{}\".event_outbox", store.schema());
    let first_of_a: i64 = sqlx::query_scalar(&format!(
        "SELECT MIN(id) FROM {outbox} WHERE aggregate_id = $1"
    ))
    .bind(a)
    .fetch_one(store.pool())
    .await
    .unwrap();
    // The older relay's lease of A's first entry, not committed yet.
    let mut older = store.pool().begin().await.unwrap();
    sqlx::query(&format!(
        "UPDATE {outbox} SET claimed_until = now() + interval '60 seconds' WHERE id = $1"
    ))
    .bind(first_of_a)
    .execute(&mut *older)
    .await
    .unwrap();
    let claim = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .claim_pending(10, Duration::from_secs(60))
                .await
                .unwrap()
        }
    });
    // The claim read A's entries as free and now waits for the row lock.
    let waiting = format!("%{outbox} SET claimed_until%");
    let mut waited = false;
    for _ in 0..1000 {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        )
        .bind(&waiting)
        .fetch_one(store.pool())
        .await
        .unwrap();
        if n > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        waited,
        "the claim never waited for the older relay's row lock"
    );
    older.commit().await.unwrap();
    let claimed = claim.await.unwrap();
    assert_eq!(claimed.len(), 3, "B's three entries: {claimed:?}");
    assert!(claimed.iter().all(|e| e.aggregate_id == b));
    let leased: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {outbox} WHERE claimed_until IS NOT NULL"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(leased, 4, "A's first (the older relay's) and B's three");
    // A's later entries wait for its first, held by the older relay.
    assert!(store
        .claim_pending(10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
}

/// Publishes; on its first batch, says so and waits to be let go.
#[derive(Debug, Default)]
struct HeldPublisher {
    started: tokio::sync::Notify,
    go: tokio::sync::Notify,
    batches: std::sync::atomic::AtomicUsize,
}

#[eventsource::async_trait]
impl OutboxPublisher for HeldPublisher {
    async fn publish(&self, _entry: &OutboxEntry) -> Result<(), eventsource::BoxError> {
        Ok(())
    }

    async fn publish_batch(&self, _entries: &[OutboxEntry]) -> Result<(), PublishFailure> {
        if self
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            self.started.notify_one();
            self.go.notified().await;
        }
        Ok(())
    }
}

/// A spawned relay claims its next batch while it marks the last one; stopped in
/// between, it gives that batch back at once rather than leaving it leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_relay_releases_the_batch_it_claimed_ahead() {
    let Some(server) = server() else { return };
    let store = Arc::new(server.options().outbox(true).connect().await.unwrap());
    store.initialize().await.unwrap();
    for _ in 0..3 {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created("x")],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    let publisher = Arc::new(HeldPublisher::default());
    let relay = OutboxRelay::new(store.clone(), publisher.clone())
        .batch_size(1)
        .spawn();
    publisher.started.notified().await;
    let stopping = tokio::spawn(relay.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.go.notify_one();
    stopping.await.unwrap();
    let outbox = format!("\"{}\".event_outbox", store.schema());
    let rows: Vec<(String, bool)> = sqlx::query_as(&format!(
        "SELECT status, claimed_until IS NOT NULL FROM {outbox} ORDER BY id"
    ))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("published".to_owned(), true),
            ("pending".to_owned(), false),
            ("pending".to_owned(), false)
        ],
        "the first published, the second (claimed ahead) released, the third untouched"
    );
    assert_eq!(
        publisher.batches.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}
