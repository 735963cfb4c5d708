//! The workloads on PostgreSQL (`--postgres`): W1..W7 through the framework beside
//! hand-written sqlx on the same server, schema and pool size, in the same run, and W8.
//! The server is `EVENTSOURCE_BENCH_POSTGRES_URL`, or a throwaway cluster started the way
//! the tests start theirs (PostgreSQL 15 here, `fsync=off`: the figures are the client's
//! and the server's work, not the disk's).
//!
//! The raw baseline is what a careful hand-written store does: per append one
//! transaction with the stream's `MAX(version)`, one `INSERT ... SELECT FROM UNNEST` of
//! the batch, commit (a unique violation is the conflict); no append lock, so its
//! positions do not follow commit order. W2's tables are analyzed after loading, as
//! autovacuum would have done in a running system, before W4 and W5 read them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::PostgresEventStore;
use futures::TryStreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use uuid::Uuid;

use super::measuring::{measure, Sample};
use super::w1_w6::*;
use super::{deposit, w7, w8, Account, BoxResult, MoneyDeposited, Samples};

/// The pool size of both sides (the framework's default).
const POOL: u32 = 10;

/// A PostgreSQL server for the run.
pub struct Server {
    url: String,
    /// The cluster this process started (stopped when dropped).
    cluster: Option<eventsource_tests::postgres_harness::PgServer>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            cluster.stop();
        }
    }
}

impl Server {
    pub fn start() -> BoxResult<Self> {
        if let Ok(url) = std::env::var("EVENTSOURCE_BENCH_POSTGRES_URL") {
            return Ok(Server { url, cluster: None });
        }
        let cluster = eventsource_tests::postgres_harness::dedicated_server().ok_or(
            "--postgres needs PostgreSQL: set EVENTSOURCE_BENCH_POSTGRES_URL or install initdb and pg_ctl",
        )?;
        Ok(Server {
            url: cluster.url().to_owned(),
            cluster: Some(cluster),
        })
    }

    /// A framework store in a fresh schema, initialized.
    async fn store(&self, outbox: bool) -> BoxResult<(Arc<PostgresEventStore>, String)> {
        let schema = format!("b_{}", Uuid::new_v4().simple());
        let store = PostgresEventStore::options(&self.url)
            .schema(&schema)
            .max_connections(POOL)
            .outbox(outbox)
            .connect()
            .await?;
        store.initialize().await?;
        Ok((Arc::new(store), schema))
    }

    /// A raw pool on a fresh schema (created by the framework: the same tables and
    /// indexes), and that schema's events table.
    async fn raw(&self) -> BoxResult<Raw> {
        let (store, schema) = self.store(false).await?;
        store.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL)
            .connect(&self.url)
            .await?;
        Ok(Raw {
            pool,
            events: format!("\"{schema}\".events"),
            checkpoints: format!("\"{schema}\".projection_checkpoints"),
        })
    }
}

/// The hand-written baseline's pool and tables.
#[derive(Clone)]
struct Raw {
    pool: PgPool,
    events: String,
    checkpoints: String,
}

impl Raw {
    /// One transaction: the stream's version, the batch in one `INSERT`; `false` on a
    /// version conflict.
    async fn append(&self, id: Uuid, expected: i64, events: &[MoneyDeposited]) -> BoxResult<bool> {
        let mut tx = self.pool.begin().await?;
        let current: i64 = sqlx::query_scalar(&format!(
            "SELECT COALESCE(MAX(version), 0) FROM {} WHERE aggregate_id = $1 AND aggregate_type = 'Account'",
            self.events
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if current != expected {
            return Ok(false);
        }
        let ids: Vec<Uuid> = events.iter().map(|_| Uuid::new_v4()).collect();
        let versions: Vec<i64> = (1..=events.len() as i64).map(|v| expected + v).collect();
        let payloads = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO {} (event_id, aggregate_id, aggregate_type, event_type, version, timestamp, payload) \
             SELECT e.id, $1, 'Account', 'MoneyDeposited', e.version, now(), e.payload::jsonb \
             FROM UNNEST($2::uuid[], $3::int8[], $4::text[]) AS e(id, version, payload)",
            self.events
        ))
        .bind(id)
        .bind(ids)
        .bind(versions)
        .bind(payloads)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn load(&self, id: Uuid) -> BoxResult<Account> {
        let rows = sqlx::query(&format!(
            "SELECT payload::text FROM {} WHERE aggregate_id = $1 AND aggregate_type = 'Account' ORDER BY version",
            self.events
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut account = Account::default();
        for row in rows {
            let event: MoneyDeposited = serde_json::from_str(row.try_get(0)?)?;
            account.balance += event.amount;
            account.deposits += 1;
        }
        Ok(account)
    }
}

async fn w1_raw(raw: &Raw, n: usize) -> BoxResult<Sample> {
    measure(n, || async {
        for i in 0..n {
            raw.append(Uuid::new_v4(), 0, &[deposit(i)]).await?;
        }
        Ok(())
    })
    .await
}

async fn w2_raw(raw: &Raw, aggregates: usize) -> BoxResult<Sample> {
    measure(aggregates * 100, || async {
        for a in 0..aggregates {
            let id = Uuid::new_v4();
            for call in 0..10i64 {
                let events: Vec<MoneyDeposited> = (0..10)
                    .map(|i| deposit(a * 100 + call as usize * 10 + i))
                    .collect();
                if !raw.append(id, call * 10, &events).await? {
                    return Err("unexpected conflict".into());
                }
            }
        }
        Ok(())
    })
    .await
}

async fn w3_raw(raw: &Raw, events: usize, loads: usize) -> BoxResult<Sample> {
    let id = Uuid::new_v4();
    for batch in 0..events / 100 {
        let batch_events: Vec<MoneyDeposited> =
            (0..100).map(|i| deposit(batch * 100 + i)).collect();
        raw.append(id, batch as i64 * 100, &batch_events).await?;
    }
    measure(events / 100 * 100 * loads, || async {
        for _ in 0..loads {
            if raw.load(id).await?.deposits != (events / 100 * 100) as u64 {
                return Err("wrong state".into());
            }
        }
        Ok(())
    })
    .await
}

async fn w4_raw(raw: &Raw, expected: usize) -> BoxResult<Sample> {
    measure(expected, || async {
        let sql = format!(
            "SELECT global_position, payload::text FROM {} ORDER BY global_position",
            raw.events
        );
        let mut rows = sqlx::query(&sql).fetch(&raw.pool);
        let (mut count, mut total) = (0, 0.0);
        while let Some(row) = rows.try_next().await? {
            let event: MoneyDeposited = serde_json::from_str(row.try_get(1)?)?;
            total += event.amount;
            count += 1;
        }
        if count != expected || total < 0.0 {
            return Err(format!("read {count} events, expected {expected}").into());
        }
        Ok(())
    })
    .await
}

async fn w5_raw(raw: &Raw, expected: usize) -> BoxResult<Sample> {
    measure(expected, || async {
        let mut balances: HashMap<Uuid, f64> = HashMap::new();
        let sql = format!(
            "SELECT global_position, aggregate_id, payload::text FROM {} ORDER BY global_position",
            raw.events
        );
        let mut rows = sqlx::query(&sql).fetch(&raw.pool);
        let (mut count, mut last) = (0usize, 0i64);
        let mut checkpoints = Vec::new();
        while let Some(row) = rows.try_next().await? {
            last = row.try_get(0)?;
            let event: MoneyDeposited = serde_json::from_str(row.try_get(2)?)?;
            *balances.entry(row.try_get(1)?).or_default() += event.amount;
            count += 1;
            if count % 1000 == 0 {
                checkpoints.push(last);
            }
        }
        drop(rows);
        for position in checkpoints.into_iter().chain(std::iter::once(last)) {
            sqlx::query(&format!(
                "INSERT INTO {} (projection_name, global_position) VALUES ('raw-w5', $1) \
                 ON CONFLICT (projection_name) DO UPDATE SET global_position = excluded.global_position",
                raw.checkpoints
            ))
            .bind(position)
            .execute(&raw.pool)
            .await?;
        }
        if count != expected {
            return Err(format!("projected {count} events, expected {expected}").into());
        }
        Ok(())
    })
    .await
}

async fn w6_raw(raw: &Raw, rounds: usize) -> BoxResult<(Sample, usize)> {
    let mut correct = 0;
    let sample = measure(rounds, || async {
        for i in 0..rounds {
            let id = Uuid::new_v4();
            raw.append(id, 0, &[deposit(i)]).await?;
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let racer = |raw: Raw, barrier: Arc<tokio::sync::Barrier>| async move {
                let account = raw.load(id).await?;
                barrier.wait().await;
                raw.append(id, account.deposits as i64, &[deposit(1)]).await
            };
            let (a, b) = tokio::join!(
                tokio::spawn(racer(raw.clone(), barrier.clone())),
                tokio::spawn(racer(raw.clone(), barrier.clone()))
            );
            if [a??, b??].iter().filter(|won| **won).count() == 1 {
                correct += 1;
            }
        }
        Ok(())
    })
    .await?;
    Ok((sample, correct))
}

/// What one `--postgres` run measured: samples per workload W1..W7.
#[derive(Default)]
pub struct PgRun {
    pub samples: [Samples; 7],
    pub w7_latency: [Vec<w7::Latency>; 2],
    pub w6_correct: (usize, usize),
    pub w8: Vec<w8::W8Sample>,
}

/// One run of every workload on `server`, added to `run`.
pub async fn run_once(
    server: &Server,
    sizes: &Sizes,
    first: bool,
    run: &mut PgRun,
) -> BoxResult<()> {
    let framework = |store: &Arc<PostgresEventStore>| -> Arc<dyn EventStore> { store.clone() };
    // W1
    let (store, _) = server.store(false).await?;
    run.samples[0]
        .framework
        .push(w1_framework(store.as_ref(), sizes.w1).await?);
    store.close().await;
    let raw = server.raw().await?;
    run.samples[0].raw.push(w1_raw(&raw, sizes.w1).await?);
    // W2, then W4 and W5 on its data, taking turns going first. Both tables are
    // analyzed first, as autovacuum would have done in a running system (it waits up to
    // a minute): without statistics the planner takes W5's one-type filter for a few
    // dozen rows and sorts every row of the type for each page.
    let (store, schema) = server.store(false).await?;
    run.samples[1]
        .framework
        .push(w2_framework(store.as_ref(), sizes.w2_aggregates).await?);
    let raw = server.raw().await?;
    run.samples[1]
        .raw
        .push(w2_raw(&raw, sizes.w2_aggregates).await?);
    sqlx::query(&format!("ANALYZE \"{schema}\".events"))
        .execute(store.pool())
        .await?;
    sqlx::query(&format!("ANALYZE {}", raw.events))
        .execute(&raw.pool)
        .await?;
    let events = sizes.w2_aggregates * 100;
    for framework_turn in [first, !first] {
        if framework_turn {
            run.samples[3]
                .framework
                .push(w4_framework(store.as_ref(), events).await?);
        } else {
            run.samples[3].raw.push(w4_raw(&raw, events).await?);
        }
    }
    for framework_turn in [first, !first] {
        if framework_turn {
            let checkpoints: Arc<dyn eventsource::CheckpointStore> = store.clone();
            run.samples[4]
                .framework
                .push(w5_framework(framework(&store), checkpoints, events).await?);
        } else {
            run.samples[4].raw.push(w5_raw(&raw, events).await?);
        }
    }
    store.close().await;
    // W3
    let (store, _) = server.store(false).await?;
    run.samples[2].framework.push(
        w3_framework(framework(&store), sizes.w3_events, sizes.w3_loads)
            .await?
            .0,
    );
    store.close().await;
    let raw = server.raw().await?;
    run.samples[2]
        .raw
        .push(w3_raw(&raw, sizes.w3_events, sizes.w3_loads).await?);
    // W6
    let (store, _) = server.store(false).await?;
    let (sample, correct) = w6_framework(framework(&store), sizes.w6_rounds).await?;
    run.samples[5].framework.push(sample);
    store.close().await;
    let raw = server.raw().await?;
    let (sample, raw_correct) = w6_raw(&raw, sizes.w6_rounds).await?;
    run.samples[5].raw.push(sample);
    run.w6_correct = (correct, raw_correct);
    if correct != sizes.w6_rounds {
        return Err(format!(
            "W6 on PostgreSQL: one winner in {correct} of {} rounds",
            sizes.w6_rounds
        )
        .into());
    }
    // W7
    let (store, _) = server.store(false).await?;
    let (sample, latency) = w7::framework(framework(&store), sizes.w7_appends).await?;
    run.samples[6].framework.push(sample);
    run.w7_latency[0].push(latency);
    store.close().await;
    let raw = server.raw().await?;
    let (sample, latency) = w7::run(sizes.w7_appends, move |id, version, event| {
        let raw = raw.clone();
        async move { raw.append(id, version as i64, &[event]).await }
    })
    .await?;
    run.samples[6].raw.push(sample);
    run.w7_latency[1].push(latency);
    // W8
    let (live, _) = server.store(true).await?;
    let (drain, _) = server.store(true).await?;
    run.w8.push(
        w8::run(
            live.clone(),
            drain.clone(),
            w7::TASKS,
            Duration::from_secs_f64(sizes.w8_seconds),
            sizes.w8_backlog,
            super::W8_BATCH,
        )
        .await?,
    );
    live.close().await;
    drain.close().await;
    Ok(())
}
