//! W7 concurrent-append (see `../shared/WORKLOADS.md`): 64 tasks, each appending
//! single-event batches to its own new stream (`NoStream`, then `Exact(n)`), all at
//! once. Metric: total events/s, and the p50 and p99 latency of one append. The raw
//! baseline is the same with hand-written SQL, each append its own transaction.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::measuring::{peak_rss_kb, reset_peak_rss, Sample};
use super::{deposit, BoxResult, MoneyDeposited};

/// The writer tasks of W7.
pub const TASKS: usize = 64;

/// Append latencies of one run, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs W7: `TASKS` tasks of `appends` appends each, every append made by `append(task
/// stream, expected version, event)` (which returns `false` for a conflict, an error
/// here: no two tasks share a stream).
pub async fn run<F, Fut>(appends: usize, append: F) -> BoxResult<(Sample, Latency)>
where
    F: Fn(Uuid, u64, MoneyDeposited) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = BoxResult<bool>> + Send,
{
    reset_peak_rss();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (append, barrier) = (append.clone(), barrier.clone());
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                let mut latencies = Vec::with_capacity(appends);
                barrier.wait().await;
                for n in 0..appends {
                    let start = Instant::now();
                    if !append(id, n as u64, deposit(task * appends + n)).await? {
                        return Err(format!("W7: a conflict on a stream of its own ({id})").into());
                    }
                    latencies.push(start.elapsed());
                }
                BoxResult::Ok(latencies)
            })
        })
        .collect();
    barrier.wait().await;
    let start = Instant::now();
    let mut latencies: Vec<Duration> = Vec::with_capacity(TASKS * appends);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok((
        Sample {
            per_second: (TASKS * appends) as f64 / elapsed,
            peak_rss_kb: peak_rss_kb(),
        },
        Latency {
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        },
    ))
}

/// W7 through the framework's `append_events`.
pub async fn framework(store: Arc<dyn EventStore>, appends: usize) -> BoxResult<(Sample, Latency)> {
    run(appends, move |id, version, event| {
        let store = store.clone();
        async move {
            match store
                .append_events(
                    id,
                    "Account",
                    vec![NewEvent::new(event)],
                    ExpectedVersion::from(version),
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(eventsource::Error::OptimisticLock { .. }) => Ok(false),
                Err(error) => Err(error.into()),
            }
        }
    })
    .await
}
