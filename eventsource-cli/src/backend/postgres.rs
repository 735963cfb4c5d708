//! The backend queries on PostgreSQL (the twin of `sqlite.rs`), in the store's schema.

use eventsource::sqlx::{self, Row};
use eventsource::PostgresEventStore;
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

/// `"schema".table`.
fn qualified(store: &PostgresEventStore, table: &str) -> String {
    format!("\"{}\".{table}", store.schema().replace('"', "\"\""))
}

async fn has_table(store: &PostgresEventStore, table: &str) -> Result<bool, CliError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(store.schema())
    .bind(table)
    .fetch_optional(store.pool())
    .await
    .map_err(query_failed("info"))?;
    Ok(found.is_some())
}

pub(super) async fn counts(store: &PostgresEventStore) -> Result<Counts, CliError> {
    let failed = query_failed("info");
    let events = qualified(store, "events");
    let row = sqlx::query(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT (aggregate_id, aggregate_type)), COUNT(DISTINCT tenant_id) FROM {events}"
    ))
    .fetch_one(store.pool())
    .await
    .map_err(&failed)?;
    let (count, streams, tenants): (i64, i64, i64) = (
        row.try_get(0).map_err(&failed)?,
        row.try_get(1).map_err(&failed)?,
        row.try_get(2).map_err(&failed)?,
    );
    let aggregate_types: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT aggregate_type, COUNT(*) FROM {events} GROUP BY aggregate_type ORDER BY aggregate_type"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(&failed)?;
    let mut tables = Vec::new();
    let mut total = 0u64;
    for table in TABLES {
        if !has_table(store, table).await? {
            continue;
        }
        let name = qualified(store, table);
        let row = sqlx::query(&format!(
            "SELECT COUNT(*), pg_total_relation_size($1::regclass) FROM {name}"
        ))
        .bind(&name)
        .fetch_one(store.pool())
        .await
        .map_err(&failed)?;
        let (rows, bytes): (i64, i64) = (
            row.try_get(0).map_err(&failed)?,
            row.try_get(1).map_err(&failed)?,
        );
        total += to_u64(bytes);
        tables.push(TableSize {
            table: table.to_owned(),
            rows: to_u64(rows),
            bytes: Some(to_u64(bytes)),
        });
    }
    let outbox_enabled = store.outbox_enabled().await?;
    Ok(Counts {
        events: to_u64(count),
        streams: to_u64(streams),
        tenants: to_u64(tenants),
        aggregate_types: aggregate_types
            .into_iter()
            .map(|(t, n)| (t, to_u64(n)))
            .collect(),
        tables,
        database_bytes: Some(total),
        outbox_enabled,
    })
}

pub(super) async fn events_after(
    store: &PostgresEventStore,
    position: u64,
) -> Result<u64, CliError> {
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {} WHERE global_position > $1",
        qualified(store, "events")
    ))
    .bind(i64::try_from(position).unwrap_or(i64::MAX))
    .fetch_one(store.pool())
    .await
    .map_err(query_failed("checkpoints"))?;
    Ok(to_u64(count))
}

pub(super) async fn aggregate_types_of(
    store: &PostgresEventStore,
    aggregate_id: Uuid,
) -> Result<Vec<String>, CliError> {
    sqlx::query_scalar(&format!(
        "SELECT DISTINCT aggregate_type FROM {} WHERE aggregate_id = $1::uuid ORDER BY aggregate_type",
        qualified(store, "events")
    ))
    .bind(aggregate_id.to_string())
    .fetch_all(store.pool())
    .await
    .map_err(query_failed("stream"))
}

pub(super) async fn snapshots_ahead(
    store: &PostgresEventStore,
) -> Result<Vec<SnapshotAhead>, CliError> {
    if !has_table(store, "snapshots").await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT s.aggregate_id::text, s.aggregate_type, s.version, v.version FROM {snapshots} s \
         CROSS JOIN LATERAL (SELECT COALESCE(MAX(e.version), 0)::int8 AS version FROM {events} e \
                             WHERE e.aggregate_id = s.aggregate_id AND e.aggregate_type = s.aggregate_type) v \
         WHERE s.version > v.version ORDER BY s.id",
        snapshots = qualified(store, "snapshots"),
        events = qualified(store, "events"),
    ))
    .fetch_all(store.pool())
    .await
    .map_err(query_failed("verify"))?;
    Ok(rows.into_iter().map(SnapshotAhead::from).collect())
}

pub(super) async fn orphan_outbox_entries(
    store: &PostgresEventStore,
) -> Result<Vec<OrphanEntry>, CliError> {
    if !has_table(store, "event_outbox").await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(&format!(
        "SELECT o.id, o.event_id::text, o.global_position FROM {outbox} o \
         WHERE NOT EXISTS (SELECT 1 FROM {events} e WHERE e.event_id = o.event_id) ORDER BY o.id",
        outbox = qualified(store, "event_outbox"),
        events = qualified(store, "events"),
    ))
    .fetch_all(store.pool())
    .await
    .map_err(query_failed("verify"))?;
    Ok(rows.into_iter().map(OrphanEntry::from).collect())
}
