//! Schema creation and the upgrade of databases written by eventsource-py.

use std::collections::HashSet;

use super::{db_error, SqliteEventStore};
use crate::error::{Error, Result};
use crate::store::schema_state::Need;

const TABLES: &str = include_str!("schema.sql");
const INDEXES: &str = include_str!("indexes.sql");

/// Columns every events table has, from eventsource-py's schema on.
pub(super) const REQUIRED_COLUMNS: [&str; 11] = [
    "global_position",
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "tenant_id",
    "actor_id",
    "version",
    "timestamp",
    "payload",
    "created_at",
];

/// Columns of `events` this library adds to an eventsource-py database, and writes.
pub(super) const ADDED_EVENT_COLUMNS: [&str; 4] = [
    "event_version",
    "correlation_id",
    "causation_id",
    "metadata",
];

/// Columns of the other tables this library adds to an eventsource-py database.
pub(super) const ADDED_TABLE_COLUMNS: [(&str, &str); 3] = [
    ("projection_checkpoints", "global_position"),
    ("dead_letter_queue", "global_position"),
    ("event_outbox", "global_position"),
];

/// Columns this library adds to tables an eventsource-py database already has.
const ADDED_COLUMNS: [(&str, &str, &str); 7] = [
    ("events", "event_version", "INTEGER"),
    ("events", "correlation_id", "TEXT"),
    ("events", "causation_id", "TEXT"),
    ("events", "metadata", "TEXT"),
    (
        "projection_checkpoints",
        "global_position",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "dead_letter_queue",
        "global_position",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "event_outbox",
        "global_position",
        "INTEGER NOT NULL DEFAULT 0",
    ),
];

pub(super) async fn initialize(store: &SqliteEventStore) -> Result<()> {
    let span = tracing::debug_span!("initialize", backend = "sqlite", database = %store.database.display());
    tracing::Instrument::instrument(initialize_schema(store), span).await
}

async fn initialize_schema(store: &SqliteEventStore) -> Result<()> {
    const OP: &str = "initialize";
    store.ensure_open()?;
    if store.read_only {
        return Err(Error::ReadOnly {
            operation: OP,
            database: store.database.display().to_string(),
        });
    }
    // One write transaction, so two processes initializing at once do not interleave.
    let mut tx = store
        .pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_error(OP))?;
    match create_schema(store, &mut tx).await {
        Ok(()) => {
            tx.commit().await.map_err(db_error(OP))?;
            if store.outbox {
                store
                    .outbox_pending
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
        Err(error) => {
            // Nothing of it stays, and the connection leaves outside any transaction.
            let _ = tx.rollback().await;
            return Err(error);
        }
    }
    store.refresh_columns().await
}

/// The statements of `initialize`, inside its transaction.
async fn create_schema(store: &SqliteEventStore, tx: &mut sqlx::SqliteConnection) -> Result<()> {
    const OP: &str = "initialize";
    sqlx::raw_sql(TABLES)
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;

    let columns: HashSet<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('events')")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error(OP))?
            .into_iter()
            .collect();
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !columns.contains(*c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::SchemaMismatch {
            table: "events".into(),
            detail: format!(
                "missing columns {}; this database is not an event store",
                missing.join(", ")
            ),
        });
    }
    // An eventsource-py database: appends keep writing payloads it reads.
    super::python::detect(&mut *tx, columns.contains("metadata")).await?;
    for (table, name, kind) in ADDED_COLUMNS {
        let present: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
                .bind(table)
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error(OP))?;
        if present == 0 {
            tracing::info!(
                table,
                column = name,
                "adding a column to an eventsource-py table"
            );
            sqlx::raw_sql(&format!("ALTER TABLE {table} ADD COLUMN {name} {kind}"))
                .execute(&mut *tx)
                .await
                .map_err(db_error(OP))?;
            if table == "projection_checkpoints" {
                // eventsource-py checkpoints name their last event: resume after it.
                sqlx::raw_sql(
                    "UPDATE projection_checkpoints SET global_position = COALESCE( \
                         (SELECT e.global_position FROM events e WHERE e.event_id = last_event_id), 0) \
                     WHERE last_event_id IS NOT NULL",
                )
                .execute(&mut *tx)
                .await
                .map_err(db_error(OP))?;
            }
        }
    }
    sqlx::raw_sql(INDEXES)
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    if store.outbox {
        sqlx::raw_sql(OUTBOX_TRIGGER)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    }
    Ok(())
}

/// The outbox, kept by the database itself: every row inserted into `events`, by any
/// handle, process or tool, gets its `event_outbox` entry in the same transaction.
const OUTBOX_TRIGGER: &str = "CREATE TRIGGER IF NOT EXISTS eventsource_outbox AFTER INSERT ON events \
     BEGIN \
         INSERT INTO event_outbox (event_id, event_type, aggregate_id, aggregate_type, tenant_id, \
             global_position, event_data, created_at, status) \
         VALUES (NEW.event_id, NEW.event_type, NEW.aggregate_id, NEW.aggregate_type, NEW.tenant_id, \
             NEW.global_position, NEW.payload, NEW.created_at, 'pending'); \
     END";

/// Turns the database's outbox on (idempotent).
pub(super) async fn enable_outbox(store: &SqliteEventStore) -> Result<()> {
    const OP: &str = "enable_outbox";
    store.ready(OP, Need::Table("event_outbox"), true).await?;
    sqlx::raw_sql(OUTBOX_TRIGGER)
        .execute(&store.pool)
        .await
        .map_err(db_error(OP))?;
    Ok(())
}

/// Turns the database's outbox off (idempotent): entries already written stay.
pub(super) async fn disable_outbox(store: &SqliteEventStore) -> Result<()> {
    const OP: &str = "disable_outbox";
    store.ready(OP, Need::ReadEvents, true).await?;
    sqlx::raw_sql("DROP TRIGGER IF EXISTS eventsource_outbox")
        .execute(&store.pool)
        .await
        .map_err(db_error(OP))?;
    Ok(())
}

/// `true` when the database keeps an outbox.
pub(super) async fn outbox_enabled(store: &SqliteEventStore) -> Result<bool> {
    const OP: &str = "outbox_enabled";
    store.ensure_open()?;
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'eventsource_outbox'",
    )
    .fetch_optional(&store.pool)
    .await
    .map_err(db_error(OP))?;
    Ok(found.is_some())
}
