//! The raw sqlx baseline: the same schema and settings as the framework's SQLite store,
//! hand-written statements, no framework.

use super::*;

pub(super) async fn raw_pool(path: &Path) -> BoxResult<SqlitePool> {
    // The schema (tables and indexes) is the framework's, created once.
    let schema = SqliteEventStore::open(path).await?;
    schema.initialize().await?;
    schema.close().await;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?)
}

pub(super) const RAW_INSERT: &str = "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, tenant_id, \
     actor_id, version, timestamp, payload, created_at, event_version, correlation_id, causation_id, metadata) \
     VALUES (?, ?, 'Account', 'MoneyDeposited', NULL, NULL, ?, ?, ?, ?, 1, NULL, NULL, '{}')";

/// One transaction that checks the stream version and inserts the batch; `false` on a
/// version conflict.
pub(super) async fn raw_append(
    pool: &SqlitePool,
    id: Uuid,
    expected: i64,
    events: &[MoneyDeposited],
) -> BoxResult<bool> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id_text = id.to_string();
    let current: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM events WHERE aggregate_id = ? AND aggregate_type = 'Account'",
    )
    .bind(&id_text)
    .fetch_one(&mut *tx)
    .await?;
    if current != expected {
        return Ok(false);
    }
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    for (i, event) in events.iter().enumerate() {
        sqlx::query(RAW_INSERT)
            .bind(Uuid::new_v4().to_string())
            .bind(&id_text)
            .bind(expected + 1 + i as i64)
            .bind(&now)
            .bind(serde_json::to_string(event)?)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn raw_load(pool: &SqlitePool, id: Uuid) -> BoxResult<Account> {
    let rows = sqlx::query("SELECT payload FROM events WHERE aggregate_id = ? AND aggregate_type = 'Account' ORDER BY version")
        .bind(id.to_string())
        .fetch_all(pool)
        .await?;
    let mut account = Account::default();
    for row in rows {
        let payload: &str = row.try_get(0)?;
        let event: MoneyDeposited = serde_json::from_str(payload)?;
        account.balance += event.amount;
        account.deposits += 1;
    }
    Ok(account)
}
