//! The backend queries on SQLite (the twin of `postgres.rs`). Tables a database does not
//! have (an eventsource-py database without snapshots, say) count as empty.

use eventsource::sqlx::{self, Row};
use eventsource::SqliteEventStore;
use uuid::Uuid;

use super::{query_failed, to_u64, Counts, OrphanEntry, SnapshotAhead, TableSize};
use crate::error::CliError;

const TABLES: [&str; 5] = [
    "events",
    "event_outbox",
    "projection_checkpoints",
    "dead_letter_queue",
    "snapshots",
];

async fn has_table(store: &SqliteEventStore, table: &str) -> Result<bool, CliError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_optional(store.pool())
            .await
            .map_err(query_failed("info"))?;
    Ok(found.is_some())
}

pub(super) async fn counts(store: &SqliteEventStore) -> Result<Counts, CliError> {
    let failed = query_failed("info");
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM events), \
                (SELECT COUNT(*) FROM (SELECT 1 FROM events GROUP BY aggregate_id, aggregate_type)), \
                (SELECT COUNT(DISTINCT tenant_id) FROM events)",
    )
    .fetch_one(store.pool())
    .await
    .map_err(&failed)?;
    let (events, streams, tenants): (i64, i64, i64) = (
        row.try_get(0).map_err(&failed)?,
        row.try_get(1).map_err(&failed)?,
        row.try_get(2).map_err(&failed)?,
    );
    let aggregate_types: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, COUNT(*) FROM events GROUP BY aggregate_type ORDER BY aggregate_type",
    )
    .fetch_all(store.pool())
    .await
    .map_err(&failed)?;
    let mut tables = Vec::new();
    for table in TABLES {
        if !has_table(store, table).await? {
            continue;
        }
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .map_err(&failed)?;
        tables.push(TableSize {
            table: table.to_owned(),
            rows: to_u64(rows),
            bytes: None,
        });
    }
    let page_count: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .map_err(&failed)?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(store.pool())
        .await
        .map_err(&failed)?;
    let mut wal = store.database().as_os_str().to_owned();
    wal.push("-wal");
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    let outbox_enabled = store.outbox_enabled().await?;
    Ok(Counts {
        events: to_u64(events),
        streams: to_u64(streams),
        tenants: to_u64(tenants),
        aggregate_types: aggregate_types
            .into_iter()
            .map(|(t, n)| (t, to_u64(n)))
            .collect(),
        tables,
        database_bytes: Some(to_u64(page_count.saturating_mul(page_size)) + wal_bytes),
        outbox_enabled,
    })
}

pub(super) async fn events_after(store: &SqliteEventStore, position: u64) -> Result<u64, CliError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE global_position > ?")
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .fetch_one(store.pool())
        .await
        .map_err(query_failed("checkpoints"))?;
    Ok(to_u64(count))
}

pub(super) async fn aggregate_types_of(
    store: &SqliteEventStore,
    aggregate_id: Uuid,
) -> Result<Vec<String>, CliError> {
    sqlx::query_scalar(
        "SELECT DISTINCT aggregate_type FROM events WHERE aggregate_id = ? ORDER BY aggregate_type",
    )
    .bind(aggregate_id.to_string())
    .fetch_all(store.pool())
    .await
    .map_err(query_failed("stream"))
}

pub(super) async fn snapshots_ahead(
    store: &SqliteEventStore,
) -> Result<Vec<SnapshotAhead>, CliError> {
    if !has_table(store, "snapshots").await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.aggregate_id, s.aggregate_type, s.version, \
                COALESCE((SELECT MAX(e.version) FROM events e \
                          WHERE e.aggregate_id = s.aggregate_id AND e.aggregate_type = s.aggregate_type), 0) AS v \
         FROM snapshots s WHERE s.version > v ORDER BY s.id",
    )
    .fetch_all(store.pool())
    .await
    .map_err(query_failed("verify"))?;
    Ok(rows.into_iter().map(SnapshotAhead::from).collect())
}

pub(super) async fn orphan_outbox_entries(
    store: &SqliteEventStore,
) -> Result<Vec<OrphanEntry>, CliError> {
    if !has_table(store, "event_outbox").await? {
        return Ok(Vec::new());
    }
    // eventsource-py's outbox has no global_position column (initialize() adds it).
    let has_position: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM pragma_table_info('event_outbox') WHERE name = 'global_position'",
    )
    .fetch_optional(store.pool())
    .await
    .map_err(query_failed("verify"))?;
    let position = if has_position.is_some() {
        "o.global_position"
    } else {
        "0"
    };
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(&format!(
        "SELECT o.id, o.event_id, {position} FROM event_outbox o \
         WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = o.event_id) ORDER BY o.id"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(query_failed("verify"))?;
    Ok(rows.into_iter().map(OrphanEntry::from).collect())
}
