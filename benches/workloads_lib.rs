//! W1..W6 (see `../shared/WORKLOADS.md`): each measured through the framework's public API
//! and as hand-written sqlx on the same schema and settings (a SQLite file, WAL,
//! `synchronous=NORMAL`), in the same process and run. Also W1..W5 on the in-memory
//! store, to show the framework's own cost apart from SQLite.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource::prelude::*;
use eventsource::{
    InMemoryCheckpointStore, InMemoryEventBus, StartFrom, SubscriptionConfig, SubscriptionManager,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

#[path = "support/config.rs"]
mod config;
#[path = "support/limit.rs"]
mod limit;
#[path = "support/measuring.rs"]
mod measuring;
#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/raw.rs"]
mod raw;
#[path = "support/report.rs"]
mod report;
#[path = "support/w1_w6.rs"]
mod w1_w6;
#[path = "support/w3u.rs"]
mod w3u;
#[path = "support/w7.rs"]
mod w7;
#[path = "support/w8.rs"]
mod w8;

#[allow(unused_imports)] // USAGE is for the bench binary, not bench_smoke
pub use config::{Config, USAGE};
use measuring::{measure, summarize, Sample, Summary};
use raw::{raw_append, raw_load, raw_pool, RAW_INSERT};
use report::{median_latency, print_report, workload_result};
use w1_w6::*;

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

// The workload's domain.

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
pub struct MoneyDeposited {
    pub amount: f64,
    pub note: String,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub balance: f64,
    pub deposits: u64,
}

#[aggregate(name = "Account")]
impl Account {
    #[apply]
    fn deposited(&mut self, event: &MoneyDeposited) {
        self.balance += event.amount;
        self.deposits += 1;
    }
}

/// W5's projection: per-aggregate balance in memory.
#[derive(Debug, Default)]
pub struct Balances {
    pub balances: HashMap<Uuid, f64>,
    pub events: u64,
}

#[projection]
impl Balances {
    #[handles]
    async fn deposited(&mut self, event: &MoneyDeposited, ctx: &EventContext<'_>) {
        *self.balances.entry(ctx.aggregate_id()).or_default() += event.amount;
        self.events += 1;
    }
}

fn deposit(i: usize) -> MoneyDeposited {
    MoneyDeposited {
        amount: i as f64 * 0.01,
        note: format!("note-{i:027}"),
    }
}

/// One workload's result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub id: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub framework: Summary,
    pub raw: Option<Summary>,
    pub ratio: Option<f64>,
    /// The same work on rusqlite, called directly (SQLite only): the engine's limit.
    pub limit: Option<Summary>,
    /// framework / limit.
    pub ratio_limit: Option<f64>,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub runs: usize,
    pub scale: f64,
    pub sqlite: Vec<WorkloadResult>,
    pub memory: Vec<WorkloadResult>,
    pub w6_rounds: usize,
    pub w6_correct_rounds: usize,
    pub w4_rss_kb: Vec<(u64, u64)>,
    /// W3's (events, RSS before the load, peak RSS during it), in KiB (`--w3-rss`).
    pub w3_rss_kb: Vec<(u64, u64, u64)>,
    pub w3_median_ms_per_load: f64,
    /// W3u through the framework on SQLite, and its ratio to W3's.
    pub w3u: WorkloadResult,
    /// W7's append latencies (medians over the runs): through the framework, and raw.
    pub w7_latency: [w7::Latency; 2],
    /// W7's rate through the framework over W1's, in the same runs.
    pub w7_over_w1: f64,
    /// W8 outbox-relay, one sample per run.
    pub w8: Vec<w8::W8Sample>,
    /// W1..W7 on PostgreSQL (`--postgres`), the same shape as `sqlite`.
    pub postgres: Vec<WorkloadResult>,
    /// W7's latencies, W7 over W1 and W8 on PostgreSQL.
    pub postgres_extras: Option<Extras>,
}

/// W7's latencies (framework, raw), W7's rate over W1's, and W8's samples, of a backend.
#[derive(Debug, Clone, Serialize)]
pub struct Extras {
    pub w7_latency: [w7::Latency; 2],
    pub w7_over_w1: f64,
    pub w8: Vec<w8::W8Sample>,
}

/// A fresh temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> BoxResult<Self> {
        let dir = std::env::temp_dir().join(format!("eventsource-bench-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn sqlite_store(path: &Path) -> BoxResult<Arc<SqliteEventStore>> {
    let store = SqliteEventStore::open(path).await?;
    store.initialize().await?;
    Ok(Arc::new(store))
}

#[derive(Default)]
struct Samples {
    framework: Vec<Sample>,
    raw: Vec<Sample>,
    limit: Vec<Sample>,
}

/// Who runs a workload: the framework, raw sqlx or the rusqlite limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Framework,
    Raw,
    Limit,
}

/// The order in which the three sides run in run `run`: each goes first in turn.
fn sides(run: usize) -> [Side; 3] {
    const ALL: [Side; 3] = [Side::Framework, Side::Raw, Side::Limit];
    [ALL[run % 3], ALL[(run + 1) % 3], ALL[(run + 2) % 3]]
}

/// W8's relay batch size (its default); its writers are W7's.
const W8_BATCH: u64 = 1000;

/// Runs everything the config asks for and prints the tables.
pub async fn run(config: &Config, out: &mut dyn Write) -> BoxResult<Report> {
    let sizes = Sizes::of(config);
    if config.reads_only {
        return profile_reads(config, &sizes, out).await;
    }
    // Before anything else, while the process is small.
    let mut w3_rss_kb = Vec::new();
    if config.w3_rss {
        for events in [10_000usize, 100_000] {
            let (before, peak) = w3_rss(events).await?;
            w3_rss_kb.push((events as u64, before, peak));
        }
    }
    let mut sqlite: [Samples; 7] = Default::default();
    let mut w7_latency: [Vec<w7::Latency>; 2] = Default::default();
    let mut memory: [Samples; 5] = Default::default();
    let mut w3_ms = Vec::new();
    let mut w3u = Vec::new();
    let mut w6_correct = 0;
    let mut w8 = Vec::new();
    let sqlite_runs = if config.postgres_only { 0 } else { config.runs };
    for run in 0..sqlite_runs {
        writeln!(out, "run {} of {}...", run + 1, config.runs)?;
        let scratch = Scratch::new()?;
        // W1
        for side in sides(run) {
            match side {
                Side::Framework => {
                    let store = sqlite_store(&scratch.file("w1-framework.db")).await?;
                    sqlite[0]
                        .framework
                        .push(w1_framework(store.as_ref(), sizes.w1).await?);
                    store.close().await;
                }
                Side::Raw => {
                    let pool = raw_pool(&scratch.file("w1-raw.db")).await?;
                    sqlite[0].raw.push(w1_raw(&pool, sizes.w1).await?);
                    pool.close().await;
                }
                Side::Limit => {
                    let mut conn = limit::limit_connection(&scratch.file("w1-limit.db")).await?;
                    sqlite[0]
                        .limit
                        .push(limit::w1_limit(&mut conn, sizes.w1).await?);
                }
            }
        }
        // W7
        let store = sqlite_store(&scratch.file("w7-framework.db")).await?;
        let (sample, latency) = w7::framework(store.clone(), sizes.w7_appends).await?;
        sqlite[6].framework.push(sample);
        w7_latency[0].push(latency);
        store.close().await;
        let pool = raw_pool(&scratch.file("w7-raw.db")).await?;
        let (sample, latency) = w7::run(sizes.w7_appends, {
            let pool = pool.clone();
            move |id, version, event| {
                let pool = pool.clone();
                async move { raw_append(&pool, id, version as i64, &[event]).await }
            }
        })
        .await?;
        sqlite[6].raw.push(sample);
        w7_latency[1].push(latency);
        pool.close().await;
        // W2, then W4 and W5 on its data
        let w2_limit_path = scratch.file("w2-limit.db");
        let store = sqlite_store(&scratch.file("w2-framework.db")).await?;
        let pool = raw_pool(&scratch.file("w2-raw.db")).await?;
        let mut conn = limit::limit_connection(&w2_limit_path).await?;
        for side in sides(run) {
            match side {
                Side::Framework => sqlite[1]
                    .framework
                    .push(w2_framework(store.as_ref(), sizes.w2_aggregates).await?),
                Side::Raw => sqlite[1]
                    .raw
                    .push(w2_raw(&pool, sizes.w2_aggregates).await?),
                Side::Limit => sqlite[1]
                    .limit
                    .push(limit::w2_limit(&mut conn, sizes.w2_aggregates).await?),
            }
        }
        let w2_events = sizes.w2_aggregates * 100;
        // The reads take turns going first: whichever follows the W2 writes shares the
        // machine with the operating system writing them back.
        for side in sides(run) {
            match side {
                Side::Framework => sqlite[3]
                    .framework
                    .push(w4_framework(store.as_ref(), w2_events).await?),
                Side::Raw => sqlite[3].raw.push(w4_raw(&pool, w2_events).await?),
                Side::Limit => sqlite[3]
                    .limit
                    .push(limit::w4_limit(&conn, w2_events).await?),
            }
        }
        for side in sides(run) {
            match side {
                Side::Framework => sqlite[4]
                    .framework
                    .push(w5_framework(store.clone(), store.clone(), w2_events).await?),
                Side::Raw => sqlite[4].raw.push(w5_raw(&pool, w2_events).await?),
                Side::Limit => sqlite[4]
                    .limit
                    .push(limit::w5_limit(&conn, &w2_limit_path, w2_events).await?),
            }
        }
        store.close().await;
        pool.close().await;
        drop(conn);
        // W3
        for side in sides(run) {
            match side {
                Side::Framework => {
                    let store = sqlite_store(&scratch.file("w3-framework.db")).await?;
                    let (sample, ms) =
                        w3_framework(store.clone(), sizes.w3_events, sizes.w3_loads).await?;
                    sqlite[2].framework.push(sample);
                    w3_ms.push(ms);
                    store.close().await;
                }
                Side::Raw => {
                    let pool = raw_pool(&scratch.file("w3-raw.db")).await?;
                    sqlite[2]
                        .raw
                        .push(w3_raw(&pool, sizes.w3_events, sizes.w3_loads).await?);
                    pool.close().await;
                }
                Side::Limit => {
                    let mut conn = limit::limit_connection(&scratch.file("w3-limit.db")).await?;
                    sqlite[2]
                        .limit
                        .push(limit::w3_limit(&mut conn, sizes.w3_events, sizes.w3_loads).await?);
                }
            }
        }
        // W3u
        let store = sqlite_store(&scratch.file("w3u-framework.db")).await?;
        w3u.push(w3u::framework(store.clone(), sizes.w3_events, sizes.w3_loads).await?);
        store.close().await;
        // W6
        let store = sqlite_store(&scratch.file("w6-framework.db")).await?;
        let (sample, correct) = w6_framework(store.clone(), sizes.w6_rounds).await?;
        sqlite[5].framework.push(sample);
        w6_correct = correct;
        store.close().await;
        let pool = raw_pool(&scratch.file("w6-raw.db")).await?;
        let (sample, raw_correct) = w6_raw(&pool, sizes.w6_rounds).await?;
        sqlite[5].raw.push(sample);
        pool.close().await;
        if correct != sizes.w6_rounds || raw_correct != sizes.w6_rounds {
            return Err(format!(
                "W6: exactly one winner in {correct} (framework) and {raw_correct} (raw) of {} rounds",
                sizes.w6_rounds
            )
            .into());
        }
        // W8
        let live = w8::sqlite_store(&scratch.file("w8-live.db")).await?;
        let drain = w8::sqlite_store(&scratch.file("w8-drain.db")).await?;
        w8.push(
            w8::run(
                live.clone(),
                drain.clone(),
                w7::TASKS,
                Duration::from_secs_f64(sizes.w8_seconds),
                sizes.w8_backlog,
                W8_BATCH,
            )
            .await?,
        );
        live.close().await;
        drain.close().await;
        // In memory: the framework without SQLite.
        if config.memory {
            let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
            memory[0]
                .framework
                .push(w1_framework(store.as_ref(), sizes.w1).await?);
            let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
            memory[1]
                .framework
                .push(w2_framework(store.as_ref(), sizes.w2_aggregates).await?);
            memory[3]
                .framework
                .push(w4_framework(store.as_ref(), sizes.w2_aggregates * 100).await?);
            memory[4].framework.push(
                w5_framework(
                    store.clone(),
                    Arc::new(InMemoryCheckpointStore::new()),
                    sizes.w2_aggregates * 100,
                )
                .await?,
            );
            let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
            memory[2].framework.push(
                w3_framework(store, sizes.w3_events, sizes.w3_loads)
                    .await?
                    .0,
            );
        }
    }

    const NAMES: [(&str, &str, &str); 7] = [
        ("W1", "append-single", "appends/s"),
        ("W2", "append-batch", "events/s"),
        ("W3", "rehydrate", "events applied/s"),
        ("W4", "read-all", "events/s"),
        ("W5", "catch-up", "events/s"),
        ("W6", "conflict", "rounds/s"),
        ("W7", "concurrent-append", "events/s"),
    ];
    let result = |i: usize, samples: &Samples| workload_result(NAMES[i], samples);
    let w3u = {
        let framework = summarize(&w3u);
        let w3 = summarize(&sqlite[2].framework);
        WorkloadResult {
            id: "W3u",
            name: "rehydrate-upcast",
            unit: "events applied/s",
            framework,
            raw: None,
            ratio: Some(framework.median / w3.median.max(1e-9)),
            limit: None,
            ratio_limit: None,
        }
    };
    let mut w3_sorted = w3_ms.clone();
    w3_sorted.sort_by(|a, b| a.total_cmp(b));
    let mut report = Report {
        runs: config.runs,
        scale: config.scale,
        sqlite: sqlite
            .iter()
            .enumerate()
            .map(|(i, s)| result(i, s))
            .collect(),
        memory: if config.memory {
            memory
                .iter()
                .enumerate()
                .map(|(i, s)| result(i, s))
                .collect()
        } else {
            Vec::new()
        },
        w6_rounds: sizes.w6_rounds,
        w6_correct_rounds: w6_correct,
        w4_rss_kb: Vec::new(),
        w3_rss_kb,
        w3_median_ms_per_load: w3_sorted.get(w3_sorted.len() / 2).copied().unwrap_or(0.0),
        w3u,
        w7_latency: w7_latency.map(|runs| median_latency(&runs)),
        w7_over_w1: summarize(&sqlite[6].framework).median
            / summarize(&sqlite[0].framework).median.max(1e-9),
        w8,
        postgres: Vec::new(),
        postgres_extras: None,
    };
    #[cfg(feature = "postgres")]
    if config.postgres {
        let server = postgres::Server::start()?;
        let mut pg = postgres::PgRun::default();
        for run in 0..config.runs {
            writeln!(out, "PostgreSQL run {} of {}...", run + 1, config.runs)?;
            postgres::run_once(&server, &sizes, run % 2 == 0, &mut pg).await?;
        }
        report.postgres = pg
            .samples
            .iter()
            .enumerate()
            .map(|(i, s)| result(i, s))
            .collect();
        report.postgres_extras = Some(Extras {
            w7_latency: pg.w7_latency.map(|runs| median_latency(&runs)),
            w7_over_w1: summarize(&pg.samples[6].framework).median
                / summarize(&pg.samples[0].framework).median.max(1e-9),
            w8: pg.w8,
        });
    }
    #[cfg(not(feature = "postgres"))]
    if config.postgres {
        return Err("--postgres needs the `postgres` feature".into());
    }
    if config.w4_rss {
        for events in [100_000usize, 1_000_000] {
            report
                .w4_rss_kb
                .push((events as u64, w4_rss(events).await?));
        }
    }
    print_report(&report, out)?;
    if let Some(path) = &config.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        writeln!(out, "\nJSON written to {}", path.display())?;
    }
    Ok(report)
}

/// W3..W5 through the framework only, on data set up once: for `perf record`.
async fn profile_reads(config: &Config, sizes: &Sizes, out: &mut dyn Write) -> BoxResult<Report> {
    let scratch = Scratch::new()?;
    let store = sqlite_store(&scratch.file("reads.db")).await?;
    w2_framework(store.as_ref(), sizes.w2_aggregates).await?;
    let w3 = sqlite_store(&scratch.file("w3.db")).await?;
    let events = sizes.w2_aggregates * 100;
    // The limit reads the same file on its own connection, and W3 its own database.
    let limit_reads = limit::limit_connection(&scratch.file("reads.db")).await?;
    let mut limit_w3 = limit::limit_connection(&scratch.file("w3-limit.db")).await?;
    for _ in 0..config.runs {
        let w4 = w4_framework(store.as_ref(), events).await?;
        let w5 = w5_framework(
            store.clone(),
            Arc::new(InMemoryCheckpointStore::new()),
            events,
        )
        .await?;
        let (w3, _) = w3_framework(w3.clone(), sizes.w3_events, sizes.w3_loads).await?;
        let l3 = limit::w3_limit(&mut limit_w3, sizes.w3_events, sizes.w3_loads).await?;
        let l4 = limit::w4_limit(&limit_reads, events).await?;
        let l5 = limit::w5_limit(&limit_reads, &scratch.file("reads.db"), events).await?;
        let floor = limit::w4_envelope_floor(&limit_reads, events).await?;
        writeln!(
            out,
            "W3 {:.0}/s ({:.2} of the limit)  W4 {:.0}/s ({:.2}; {:.2} of the envelope floor, \
             {:.0}/s)  W5 {:.0}/s ({:.2})",
            w3.per_second,
            w3.per_second / l3.per_second,
            w4.per_second,
            w4.per_second / l4.per_second,
            w4.per_second / floor.per_second,
            floor.per_second,
            w5.per_second,
            w5.per_second / l5.per_second
        )?;
    }
    Err("--reads-only prints figures only".into())
}

/// W3's memory: the RSS before one repository load of an aggregate of `events` events,
/// and the peak during it.
async fn w3_rss(events: usize) -> BoxResult<(u64, u64)> {
    let scratch = Scratch::new()?;
    let store = sqlite_store(&scratch.file("w3-rss.db")).await?;
    let id = Uuid::new_v4();
    for batch in 0..events / 1000 {
        let batch_events = (0..1000)
            .map(|i| NewEvent::new(deposit(batch * 1000 + i)))
            .collect();
        store
            .append_events(
                id,
                "Account",
                batch_events,
                ExpectedVersion::from(batch as u64 * 1000),
            )
            .await?;
    }
    let repo = AggregateRepository::<Account>::new(store.clone());
    measuring::reset_peak_rss();
    let before = measuring::current_rss_kb();
    let account = repo.load(id).await?;
    let peak = measuring::peak_rss_kb();
    if account.state().deposits != (events / 1000 * 1000) as u64 {
        return Err("W3 RSS: wrong state".into());
    }
    store.close().await;
    Ok((before, peak))
}

/// W4's peak RSS reading `events` events through the framework (data inserted raw, in
/// bulk, to keep the setup short).
async fn w4_rss(events: usize) -> BoxResult<u64> {
    let scratch = Scratch::new()?;
    let path = scratch.file("w4-rss.db");
    let pool = raw_pool(&path).await?;
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    for chunk in 0..events.div_ceil(10_000) {
        let mut tx = pool.begin().await?;
        for i in 0..10_000.min(events - chunk * 10_000) {
            let n = chunk * 10_000 + i;
            sqlx::query(RAW_INSERT)
                .bind(Uuid::new_v4().to_string())
                .bind(Uuid::new_v4().to_string())
                .bind(1i64)
                .bind(&now)
                .bind(serde_json::to_string(&deposit(n))?)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    pool.close().await;
    let store = sqlite_store(&path).await?;
    let sample = w4_framework(store.as_ref(), events).await?;
    store.close().await;
    Ok(sample.peak_rss_kb)
}
