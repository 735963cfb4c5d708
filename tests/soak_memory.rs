//! A bounded soak: writers with conflicts, two subscriptions (one handler failing now and
//! then), an outbox relay to a bus with a live subscriber, and snapshot loads, all on one
//! SQLite file, at a fixed event rate. The process samples its own resident memory and
//! fails on sustained growth after the warm-up: a leak anywhere in the stores,
//! subscriptions, bus or relay shows here. No timing is asserted.
//!
//! `EVENTSOURCE_SOAK_SECONDS` sets the length (default 180 s; the README says how to run
//! a long one). Linux only (it reads `/proc/self/statm`); elsewhere it says so and stops.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource::prelude::*;
use eventsource::{
    BusFilter, BusOutboxPublisher, EventBus, InMemoryCheckpointStore, InMemoryEventBus,
    InMemorySnapshotStore, OutboxRelay, RetryPolicy, SnapshotStrategy, SqliteEventStore,
    SubscriptionConfig, SubscriptionManager,
};
use serde::{Deserialize, Serialize};
use support::TempDir;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Counter")]
struct Incremented {
    by: u64,
    note: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

#[aggregate(name = "Counter")]
impl Counter {
    #[apply]
    fn incremented(&mut self, e: &Incremented) {
        self.total += e.by;
    }
}

#[derive(Debug, Default)]
struct Totals {
    seen: u64,
}

#[projection]
impl Totals {
    #[handles]
    async fn incremented(&mut self, _e: &Incremented) {
        self.seen += 1;
    }
}

/// Fails one event in 5,000 (dead-lettered after its retries).
#[derive(Debug, Default)]
struct Picky {
    seen: u64,
}

#[projection]
impl Picky {
    #[handles]
    async fn incremented(&mut self, e: &Incremented) -> Result<(), String> {
        self.seen += 1;
        if e.by % 5000 == 4999 {
            return Err("picky".into());
        }
        Ok(())
    }
}

/// The process's resident memory, in KiB.
fn rss_kb() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// The soak runs in a child process of this test binary with glibc's malloc held to one
/// arena (`MALLOC_ARENA_MAX=1`). With an arena per thread (the default), resident memory
/// creeps up by 0.2 to 1.9 MB over the same 180 s from one run to the next, the
/// allocator's fragmentation across the runtime's and the connections' threads: that
/// noise is as large as the leak this test must catch (measured 2026-12-02: three runs
/// of one binary grew 228 KiB, 1,084 KiB and, with the other core busy, 1,896 KiB; with
/// one arena, 72 KiB, the samples within 0.6 MB of each other from the first minute on).
/// With one arena, memory the program still holds is all that can grow.
#[test]
fn memory_stays_flat_under_sustained_load() {
    const CHILD: &str = "EVENTSOURCE_SOAK_CHILD";
    if std::env::var_os(CHILD).is_some() {
        soak();
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory_stays_flat_under_sustained_load",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("MALLOC_ARENA_MAX", "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the soak (a child process) failed: {status}"
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    if rss_kb().is_none() {
        eprintln!("soak_memory: no /proc/self/statm here; the soak needs Linux");
        return;
    }
    let seconds: u64 = std::env::var("EVENTSOURCE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180)
        .max(30);
    let dir = TempDir::new();
    let store = Arc::new(
        SqliteEventStore::options(dir.file("soak.db"))
            .outbox(true)
            // Small page caches fill within the warm-up: growth after it is not theirs.
            .cache_size_kib(256)
            .open()
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    let events: Arc<dyn EventStore> = store.clone();

    let bus = Arc::new(InMemoryEventBus::new());
    let mut bus_subscriber = bus.subscribe(BusFilter::All);
    let relay = OutboxRelay::new(
        store.clone(),
        Arc::new(BusOutboxPublisher::new(events.clone(), bus.clone())),
    )
    .poll_interval(Duration::from_millis(50))
    .spawn();
    let received = Arc::new(AtomicU64::new(0));
    let counting = received.clone();
    let bus_task = tokio::spawn(async move {
        while bus_subscriber.recv().await.is_ok() {
            counting.fetch_add(1, Ordering::Relaxed);
        }
    });

    let manager = SubscriptionManager::new(
        events.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    );
    let quick = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let totals = manager
        .subscribe(Totals::default(), SubscriptionConfig::new(), "totals")
        .await
        .unwrap();
    let picky = manager
        .subscribe(
            Picky::default(),
            SubscriptionConfig::new().retry(quick),
            "picky",
        )
        .await
        .unwrap();
    manager.start().await.unwrap();

    // Writers: 4 tasks on 200 shared streams (conflicts retried by `execute`), at a fixed
    // rate of about 400 events/s in all, with snapshot loads through the repository.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let streams: Arc<Vec<Uuid>> = Arc::new((0..200).map(|_| Uuid::new_v4()).collect());
    let snapshots = Arc::new(InMemorySnapshotStore::new());
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (stop, written, streams) = (stop.clone(), written.clone(), streams.clone());
        let repository = AggregateRepository::<Counter>::new(events.clone())
            .with_snapshots(snapshots.clone(), SnapshotStrategy::EveryNEvents(50));
        writers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut n = w;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let id = streams[(n as usize * 7919) % streams.len()];
                let by = written.fetch_add(1, Ordering::Relaxed);
                repository
                    .execute_with_retry(id, 20, |root| {
                        root.apply_event(Incremented {
                            by,
                            note: format!("soak-{by:024}"),
                        });
                        Ok::<_, std::convert::Infallible>(())
                    })
                    .await
                    .unwrap();
                n += 4;
            }
        }));
    }

    // Samples every 2 s; the first third is warm-up (caches filling).
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(kb) = rss_kb() {
            samples.push((start.elapsed().as_secs_f64(), kb));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let total = written.load(Ordering::Relaxed);
    let head = store.get_global_position().await.unwrap();
    totals
        .wait_for(head, Duration::from_secs(60))
        .await
        .unwrap();
    picky.wait_for(head, Duration::from_secs(60)).await.unwrap();
    manager.stop().await;
    relay.stop().await;
    bus_task.abort();

    let warm = seconds as f64 / 3.0;
    let window = (seconds as f64 / 6.0).max(10.0);
    let early: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warm && *t < warm + window)
        .map(|s| s.1)
        .collect();
    let late: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= seconds as f64 - window)
        .map(|s| s.1)
        .collect();
    let (early, late) = (median(early), median(late));
    eprintln!(
        "soak_memory: {total} events in {seconds} s; RSS after warm-up {early} KiB, at the end {late} KiB; samples {:?}",
        samples.iter().map(|s| s.1).collect::<Vec<_>>()
    );
    // Nothing lost on the way: every event handled (the picky one's failures count
    // their attempts too), and the relay published.
    assert_eq!(totals.projection().lock().await.seen, total);
    assert!(picky.projection().lock().await.seen >= total);
    assert!(received.load(Ordering::Relaxed) > 0, "the relay published");
    // Sustained growth: more than 5% (and 1 MiB, under which the allocator's noise lies)
    // between the end of the warm-up and the end.
    assert!(
        late <= early + (early / 20).max(1024),
        "resident memory grew from {early} KiB after the warm-up to {late} KiB at the end"
    );
}
