//! W1..W6 on SQLite, each through the framework and as raw sqlx.

use super::*;

pub(super) struct Sizes {
    pub(super) w1: usize,
    pub(super) w2_aggregates: usize,
    pub(super) w3_events: usize,
    pub(super) w3_loads: usize,
    pub(super) w6_rounds: usize,
    /// W7's appends per task.
    pub(super) w7_appends: usize,
    pub(super) w8_seconds: f64,
    pub(super) w8_backlog: usize,
}

impl Sizes {
    pub(super) fn of(config: &Config) -> Self {
        Sizes {
            // W8 is its full size at most: an hour-long W8 measures nothing more.
            w8_seconds: (60.0 * config.scale).clamp(1.0, 60.0),
            w8_backlog: config.n(1_000_000, 2_000).min(1_000_000),
            w1: config.n(10_000, 20),
            w2_aggregates: config.n(1_000, 2),
            w3_events: config.n(10_000, 200),
            w3_loads: config.n(20, 2),
            w6_rounds: config.n(1_000, 5),
            w7_appends: config.n(200, 5),
        }
    }
}

pub(super) async fn w1_framework(store: &dyn EventStore, n: usize) -> BoxResult<Sample> {
    measure(n, || async {
        for i in 0..n {
            store
                .append_events(
                    Uuid::new_v4(),
                    "Account",
                    vec![NewEvent::new(deposit(i))],
                    ExpectedVersion::NoStream,
                )
                .await?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn w1_raw(pool: &SqlitePool, n: usize) -> BoxResult<Sample> {
    measure(n, || async {
        for i in 0..n {
            raw_append(pool, Uuid::new_v4(), 0, &[deposit(i)]).await?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn w2_framework(store: &dyn EventStore, aggregates: usize) -> BoxResult<Sample> {
    measure(aggregates * 100, || async {
        for a in 0..aggregates {
            let id = Uuid::new_v4();
            for call in 0..10u64 {
                let events = (0..10)
                    .map(|i| NewEvent::new(deposit(a * 100 + call as usize * 10 + i)))
                    .collect();
                store
                    .append_events(id, "Account", events, ExpectedVersion::from(call * 10))
                    .await?;
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn w2_raw(pool: &SqlitePool, aggregates: usize) -> BoxResult<Sample> {
    measure(aggregates * 100, || async {
        for a in 0..aggregates {
            let id = Uuid::new_v4();
            for call in 0..10i64 {
                let events: Vec<MoneyDeposited> = (0..10)
                    .map(|i| deposit(a * 100 + call as usize * 10 + i))
                    .collect();
                if !raw_append(pool, id, call * 10, &events).await? {
                    return Err("unexpected conflict".into());
                }
            }
        }
        Ok(())
    })
    .await
}

/// W3: returns the sample and the median milliseconds per load.
pub(super) async fn w3_framework(
    store: Arc<dyn EventStore>,
    events: usize,
    loads: usize,
) -> BoxResult<(Sample, f64)> {
    let id = Uuid::new_v4();
    for batch in 0..events / 100 {
        let batch_events = (0..100)
            .map(|i| NewEvent::new(deposit(batch * 100 + i)))
            .collect();
        store
            .append_events(
                id,
                "Account",
                batch_events,
                ExpectedVersion::from(batch as u64 * 100),
            )
            .await?;
    }
    let repo = AggregateRepository::<Account>::new(store);
    let mut times = Vec::with_capacity(loads);
    let sample = measure(events / 100 * 100 * loads, || async {
        for _ in 0..loads {
            let start = Instant::now();
            let account = repo.load(id).await?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            if account.state().deposits != (events / 100 * 100) as u64 {
                return Err("wrong state".into());
            }
        }
        Ok(())
    })
    .await?;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((sample, times[times.len() / 2]))
}

pub(super) async fn w3_raw(pool: &SqlitePool, events: usize, loads: usize) -> BoxResult<Sample> {
    let id = Uuid::new_v4();
    for batch in 0..events / 100 {
        let batch_events: Vec<MoneyDeposited> =
            (0..100).map(|i| deposit(batch * 100 + i)).collect();
        raw_append(pool, id, batch as i64 * 100, &batch_events).await?;
    }
    measure(events / 100 * 100 * loads, || async {
        for _ in 0..loads {
            let account = raw_load(pool, id).await?;
            if account.deposits != (events / 100 * 100) as u64 {
                return Err("wrong state".into());
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn w4_framework(store: &dyn EventStore, expected: usize) -> BoxResult<Sample> {
    measure(expected, || async {
        let mut stream = store.read_all(ReadOptions::new());
        let mut count = 0;
        let mut total = 0.0;
        while let Some(event) = stream.try_next().await? {
            total += event.event::<MoneyDeposited>()?.amount;
            count += 1;
        }
        if count != expected || total < 0.0 {
            return Err(format!("read {count} events, expected {expected}").into());
        }
        Ok(())
    })
    .await
}

pub(super) async fn w4_raw(pool: &SqlitePool, expected: usize) -> BoxResult<Sample> {
    measure(expected, || async {
        let mut rows =
            sqlx::query("SELECT global_position, payload FROM events ORDER BY global_position")
                .fetch(pool);
        let mut count = 0;
        let mut total = 0.0;
        while let Some(row) = rows.try_next().await? {
            let payload: &str = row.try_get(1)?;
            let event: MoneyDeposited = serde_json::from_str(payload)?;
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

pub(super) async fn w5_framework(
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn eventsource::CheckpointStore>,
    expected: usize,
) -> BoxResult<Sample> {
    let head = store.get_global_position().await?;
    let manager = SubscriptionManager::new(store, Arc::new(InMemoryEventBus::new()), checkpoints);
    let config = SubscriptionConfig::new()
        .start_from(StartFrom::Beginning)
        .batch_size(1000);
    let subscription = manager
        .subscribe(Balances::default(), config, "w5-balances")
        .await?;
    let sample = measure(expected, || async {
        manager.start().await?;
        subscription
            .wait_for(head, Duration::from_secs(600))
            .await?;
        Ok(())
    })
    .await?;
    manager.stop().await;
    let events = subscription.projection().lock().await.events;
    if events as usize != expected {
        return Err(format!("projected {events} events, expected {expected}").into());
    }
    Ok(sample)
}

pub(super) async fn w5_raw(pool: &SqlitePool, expected: usize) -> BoxResult<Sample> {
    measure(expected, || async {
        let mut balances: HashMap<String, f64> = HashMap::new();
        let mut rows = sqlx::query("SELECT global_position, aggregate_id, payload FROM events ORDER BY global_position")
            .fetch(pool);
        let mut count = 0usize;
        let mut last = 0i64;
        let mut checkpoints = Vec::new();
        while let Some(row) = rows.try_next().await? {
            last = row.try_get(0)?;
            let aggregate: String = row.try_get(1)?;
            let payload: &str = row.try_get(2)?;
            let event: MoneyDeposited = serde_json::from_str(payload)?;
            *balances.entry(aggregate).or_default() += event.amount;
            count += 1;
            if count % 1000 == 0 {
                checkpoints.push(last);
            }
        }
        drop(rows);
        // The checkpoint upserts (at every 1,000 events) on the same database; written
        // after the streaming read so the read does not hold the connection the write
        // needs (a single in-flight statement per connection).
        for position in checkpoints.into_iter().chain(std::iter::once(last)) {
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection_name, global_position) VALUES ('raw-w5', ?) \
                 ON CONFLICT (projection_name) DO UPDATE SET global_position = excluded.global_position",
            )
            .bind(position)
            .execute(pool)
            .await?;
        }
        if count != expected {
            return Err(format!("projected {count} events, expected {expected}").into());
        }
        Ok(())
    })
    .await
}

/// W6: returns the sample and the number of rounds with exactly one winner.
pub(super) async fn w6_framework(
    store: Arc<dyn EventStore>,
    rounds: usize,
) -> BoxResult<(Sample, usize)> {
    let repo = Arc::new(AggregateRepository::<Account>::new(store));
    let mut correct = 0;
    let sample = measure(rounds, || async {
        for i in 0..rounds {
            let id = Uuid::new_v4();
            let mut account = repo.create_new(id);
            account.apply_event(deposit(i));
            repo.save(&mut account).await?;
            // Both load version 1 before either saves, then both save at once.
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let racer = |repo: Arc<AggregateRepository<Account>>,
                         barrier: Arc<tokio::sync::Barrier>| async move {
                let mut account = repo.load(id).await?;
                account.apply_event(deposit(1));
                barrier.wait().await;
                repo.save(&mut account).await
            };
            let (a, b) = tokio::join!(
                tokio::spawn(racer(repo.clone(), barrier.clone())),
                tokio::spawn(racer(repo.clone(), barrier.clone()))
            );
            let results = [a?, b?];
            let wins = results.iter().filter(|r| r.is_ok()).count();
            let conflicts = results
                .iter()
                .filter(|r| matches!(r, Err(eventsource::Error::OptimisticLock { .. })))
                .count();
            if wins == 1 && conflicts == 1 {
                correct += 1;
            }
        }
        Ok(())
    })
    .await?;
    Ok((sample, correct))
}

pub(super) async fn w6_raw(pool: &SqlitePool, rounds: usize) -> BoxResult<(Sample, usize)> {
    let mut correct = 0;
    let sample = measure(rounds, || async {
        for i in 0..rounds {
            let id = Uuid::new_v4();
            raw_append(pool, id, 0, &[deposit(i)]).await?;
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let racer = |pool: SqlitePool, barrier: Arc<tokio::sync::Barrier>| async move {
                let account = raw_load(&pool, id).await?;
                barrier.wait().await;
                raw_append(&pool, id, account.deposits as i64, &[deposit(1)]).await
            };
            let (a, b) = tokio::join!(
                tokio::spawn(racer(pool.clone(), barrier.clone())),
                tokio::spawn(racer(pool.clone(), barrier.clone()))
            );
            let wins = [a??, b??].iter().filter(|won| **won).count();
            if wins == 1 {
                correct += 1;
            }
        }
        Ok(())
    })
    .await?;
    Ok((sample, correct))
}
