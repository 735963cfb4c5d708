//! Schema creation and the upgrade of databases written by eventsource-py.

use std::collections::HashSet;

use super::{db_error, SqliteEventStore};
use crate::error::{Error, Result};

const TABLES: &str = include_str!("schema.sql");
const INDEXES: &str = include_str!("indexes.sql");

/// Columns every events table has, from eventsource-py's schema on.
const REQUIRED_COLUMNS: [&str; 11] = [
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
    store.ensure_open()?;
    const OP: &str = "initialize";
    // One write transaction, so two processes initializing at once do not interleave.
    let mut tx = store
        .pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_error(OP))?;
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
    tx.commit().await.map_err(db_error(OP))?;
    store.refresh_columns().await
}
