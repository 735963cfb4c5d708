//! W8 outbox-relay (see `../shared/WORKLOADS.md`), on a store with the outbox on:
//! writers append while a relay publishes to an in-memory publisher (published entries/s
//! beside appended events/s, and the backlog when the writers stop), then the drain rate
//! of a backlog. The relay runs as users run it: `OutboxRelay::spawn`, default settings
//! but for the batch size given.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource::prelude::*;
use eventsource::{OutboxEntry, OutboxPublisher, OutboxRelay, OutboxStore, PublishFailure};
use serde::Serialize;
use uuid::Uuid;

use super::{deposit, BoxResult};

/// The longest a drain may take before the run fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Counts what it is given, as a broker client that never fails would.
#[derive(Debug, Default)]
struct CountingPublisher {
    published: AtomicU64,
}

#[eventsource::async_trait]
impl OutboxPublisher for CountingPublisher {
    async fn publish(&self, _entry: &OutboxEntry) -> Result<(), eventsource::BoxError> {
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn publish_batch(&self, entries: &[OutboxEntry]) -> Result<(), PublishFailure> {
        self.published
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// What one W8 run measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct W8Sample {
    /// Events appended per second by the writers while the relay ran.
    pub appended_per_second: f64,
    /// Entries published per second over the same time.
    pub published_per_second: f64,
    /// Entries still pending when the writers stopped.
    pub backlog_at_end: u64,
    /// The largest backlog seen (sampled every second).
    pub backlog_max: u64,
    /// Entries of a backlog published per second, from a standing start.
    pub drain_per_second: f64,
    /// The backlog drained.
    pub drained: u64,
}

/// A SQLite store with the outbox on, at `path`.
pub async fn sqlite_store(path: &std::path::Path) -> BoxResult<Arc<SqliteEventStore>> {
    let store = SqliteEventStore::options(path).outbox(true).open().await?;
    store.initialize().await?;
    Ok(Arc::new(store))
}

/// `writers` tasks append single-event batches to streams of their own for `duration`
/// on `live` while a relay publishes; then a backlog of `backlog` entries written to
/// `drain` is drained. Both stores have the outbox on.
pub async fn run<S>(
    live: Arc<S>,
    drain: Arc<S>,
    writers: usize,
    duration: Duration,
    backlog: usize,
    batch_size: u64,
) -> BoxResult<W8Sample>
where
    S: EventStore + OutboxStore + 'static,
{
    // Under load.
    let publisher = Arc::new(CountingPublisher::default());
    let relay = OutboxRelay::new(live.clone(), publisher.clone())
        .batch_size(batch_size)
        .poll_interval(Duration::from_millis(10))
        .spawn();
    let appended = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, appended) = (live.clone(), appended.clone());
        tasks.push(tokio::spawn(async move {
            let id = Uuid::new_v4();
            let mut version = 0;
            while start.elapsed() < duration {
                let event = NewEvent::new(deposit(version as usize));
                store
                    .append_events(id, "Account", vec![event], ExpectedVersion::from(version))
                    .await?;
                version += 1;
                appended.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, eventsource::Error>(())
        }));
    }
    let mut backlog_max = 0;
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration)).await;
        backlog_max = backlog_max.max(live.stats().await?.pending);
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let published_live = publisher.published.load(Ordering::Relaxed);
    let backlog_at_end = live.stats().await?.pending;
    relay.stop().await;

    // Draining a backlog written beforehand.
    let streams = backlog.div_ceil(1000);
    for s in 0..streams {
        let count = 1000.min(backlog - s * 1000);
        let events = (0..count).map(|i| NewEvent::new(deposit(i))).collect();
        drain
            .append_events(Uuid::new_v4(), "Account", events, ExpectedVersion::NoStream)
            .await?;
    }
    // A spawned relay, as users run it (on PostgreSQL it claims each next batch while
    // it marks the last one), until everything went out.
    let publisher = Arc::new(CountingPublisher::default());
    let start = Instant::now();
    let relay = OutboxRelay::new(drain.clone(), publisher.clone())
        .batch_size(batch_size)
        .poll_interval(Duration::from_millis(10))
        .spawn();
    while publisher.published.load(Ordering::Relaxed) < backlog as u64 {
        if start.elapsed() > DRAIN_TIMEOUT {
            relay.stop().await;
            return Err(
                format!("W8: the drain of {backlog} entries took over {DRAIN_TIMEOUT:?}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drain_seconds = start.elapsed().as_secs_f64().max(1e-9);
    relay.stop().await;
    let drained = publisher.published.load(Ordering::Relaxed);
    if drained != backlog as u64 || !drain.get_pending_events(1).await?.is_empty() {
        return Err(format!("W8: drained {drained} of {backlog} entries").into());
    }
    Ok(W8Sample {
        appended_per_second: appended.load(Ordering::Relaxed) as f64 / elapsed,
        published_per_second: published_live as f64 / elapsed,
        backlog_at_end,
        backlog_max,
        drain_per_second: drained as f64 / drain_seconds,
        drained,
    })
}
