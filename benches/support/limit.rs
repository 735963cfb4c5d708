//! The limit baseline (see `../shared/WORKLOADS.md`): W1..W5 written directly against
//! rusqlite, on the same bundled SQLite build as the framework, the same schema (created
//! by the framework's `initialize`), indexes and settings (WAL, `synchronous=NORMAL`, a
//! 5 s busy timeout), called synchronously: what the engine can do with nothing around it.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::*;

/// A connection to a fresh database with the framework's schema.
pub(super) async fn limit_connection(path: &Path) -> BoxResult<Connection> {
    let schema = SqliteEventStore::open(path).await?;
    schema.initialize().await?;
    schema.close().await;
    connect(path)
}

fn connect(path: &Path) -> BoxResult<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// One transaction that checks the stream version and inserts the batch; `false` on a
/// version conflict.
pub(super) fn limit_append(
    conn: &mut Connection,
    id: Uuid,
    expected: i64,
    events: &[MoneyDeposited],
) -> BoxResult<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id_text = id.to_string();
    let current: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(version), 0) FROM events WHERE aggregate_id = ? AND aggregate_type = 'Account'",
        )?
        .query_row([&id_text], |row| row.get(0))?;
    if current != expected {
        return Ok(false);
    }
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    {
        let mut insert = tx.prepare_cached(RAW_INSERT)?;
        for (i, event) in events.iter().enumerate() {
            insert.execute(params![
                Uuid::new_v4().to_string(),
                id_text,
                expected + 1 + i as i64,
                now,
                serde_json::to_string(event)?,
                now,
            ])?;
        }
    }
    tx.commit()?;
    Ok(true)
}

pub(super) fn limit_load(conn: &Connection, id: Uuid) -> BoxResult<Account> {
    let mut statement = conn.prepare_cached(
        "SELECT payload FROM events WHERE aggregate_id = ? AND aggregate_type = 'Account' ORDER BY version",
    )?;
    let mut rows = statement.query([id.to_string()])?;
    let mut account = Account::default();
    while let Some(row) = rows.next()? {
        let event: MoneyDeposited = serde_json::from_str(row.get_ref(0)?.as_str()?)?;
        account.balance += event.amount;
        account.deposits += 1;
    }
    Ok(account)
}

pub(super) async fn w1_limit(conn: &mut Connection, n: usize) -> BoxResult<Sample> {
    measure(n, || async {
        for i in 0..n {
            limit_append(conn, Uuid::new_v4(), 0, &[deposit(i)])?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn w2_limit(conn: &mut Connection, aggregates: usize) -> BoxResult<Sample> {
    measure(aggregates * 100, || async {
        for a in 0..aggregates {
            let id = Uuid::new_v4();
            for call in 0..10i64 {
                let events: Vec<MoneyDeposited> = (0..10)
                    .map(|i| deposit(a * 100 + call as usize * 10 + i))
                    .collect();
                if !limit_append(conn, id, call * 10, &events)? {
                    return Err("unexpected conflict".into());
                }
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn w3_limit(
    conn: &mut Connection,
    events: usize,
    loads: usize,
) -> BoxResult<Sample> {
    let id = Uuid::new_v4();
    for batch in 0..events / 100 {
        let batch_events: Vec<MoneyDeposited> =
            (0..100).map(|i| deposit(batch * 100 + i)).collect();
        limit_append(conn, id, batch as i64 * 100, &batch_events)?;
    }
    measure(events / 100 * 100 * loads, || async {
        for _ in 0..loads {
            let account = limit_load(conn, id)?;
            if account.deposits != (events / 100 * 100) as u64 {
                return Err("wrong state".into());
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn w4_limit(conn: &Connection, expected: usize) -> BoxResult<Sample> {
    measure(expected, || async {
        let mut statement = conn.prepare_cached(
            "SELECT global_position, payload FROM events ORDER BY global_position",
        )?;
        let mut rows = statement.query([])?;
        let mut count = 0;
        let mut total = 0.0;
        while let Some(row) = rows.next()? {
            let event: MoneyDeposited = serde_json::from_str(row.get_ref(1)?.as_str()?)?;
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

/// W4 reading what `read_all` returns: every column of every event, with its envelope
/// parsed as a hand-written reader would (the ids as UUIDs, the names as strings, both
/// timestamps, the metadata), beside the typed payload. Not a baseline of the table:
/// the floor of a read that returns envelopes, against which `--reads-only` also puts
/// the framework's W4 (the limit reads the payload column only).
pub(super) async fn w4_envelope_floor(conn: &Connection, expected: usize) -> BoxResult<Sample> {
    measure(expected, || async {
        let mut statement = conn.prepare_cached(
            "SELECT global_position, version, event_id, aggregate_id, aggregate_type, event_type, \
             tenant_id, actor_id, timestamp, created_at, event_version, correlation_id, \
             causation_id, metadata, payload FROM events ORDER BY global_position",
        )?;
        let mut rows = statement.query([])?;
        let mut count = 0;
        let mut total = 0.0;
        while let Some(row) = rows.next()? {
            let uuid = |i: usize| -> BoxResult<Option<Uuid>> {
                Ok(match row.get_ref(i)?.as_str_or_null()? {
                    Some(text) => Some(Uuid::parse_str(text)?),
                    None => None,
                })
            };
            let time = |i: usize| -> BoxResult<chrono::DateTime<chrono::FixedOffset>> {
                Ok(chrono::DateTime::parse_from_rfc3339(
                    row.get_ref(i)?.as_str()?,
                )?)
            };
            let envelope = (
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                uuid(2)?,
                uuid(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                uuid(6)?,
                row.get::<_, Option<String>>(7)?,
                time(8)?,
                time(9)?,
                row.get::<_, Option<i64>>(10)?,
                uuid(11)?,
                uuid(12)?,
                row.get_ref(13)?.as_str_or_null()? == Some("{}"),
            );
            let event: MoneyDeposited = serde_json::from_str(row.get_ref(14)?.as_str()?)?;
            std::hint::black_box(&envelope);
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

/// W5: one connection reads, another writes the checkpoint every 1,000 events (and at
/// the end), each upsert its own transaction, as a durable checkpoint is.
pub(super) async fn w5_limit(conn: &Connection, path: &Path, expected: usize) -> BoxResult<Sample> {
    let checkpoints = connect(path)?;
    measure(expected, || async {
        let mut balances: HashMap<String, f64> = HashMap::new();
        let mut upsert = checkpoints.prepare_cached(
            "INSERT INTO projection_checkpoints (projection_name, global_position) VALUES ('limit-w5', ?) \
             ON CONFLICT (projection_name) DO UPDATE SET global_position = excluded.global_position",
        )?;
        let mut statement = conn.prepare_cached(
            "SELECT global_position, aggregate_id, payload FROM events ORDER BY global_position",
        )?;
        let mut rows = statement.query([])?;
        let mut count = 0usize;
        let mut last = 0i64;
        while let Some(row) = rows.next()? {
            last = row.get(0)?;
            let event: MoneyDeposited = serde_json::from_str(row.get_ref(2)?.as_str()?)?;
            let aggregate = row.get_ref(1)?.as_str()?;
            match balances.get_mut(aggregate) {
                Some(balance) => *balance += event.amount,
                None => {
                    balances.insert(aggregate.to_owned(), event.amount);
                }
            }
            count += 1;
            if count % 1000 == 0 {
                upsert.execute([last])?;
            }
        }
        upsert.execute([last])?;
        if count != expected {
            return Err(format!("projected {count} events, expected {expected}").into());
        }
        let stored: Option<i64> = checkpoints
            .query_row(
                "SELECT global_position FROM projection_checkpoints WHERE projection_name = 'limit-w5'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        if stored != Some(last) {
            return Err("the checkpoint was not stored".into());
        }
        Ok(())
    })
    .await
}
