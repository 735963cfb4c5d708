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
    let children: Vec<_> = (0..2)
        .map(|_| {
            let child = Command::new(std::env::current_exe().unwrap())
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
