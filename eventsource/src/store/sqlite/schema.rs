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

/// Nullable columns this library adds to an eventsource-py table.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("event_version", "INTEGER"),
    ("correlation_id", "TEXT"),
    ("causation_id", "TEXT"),
    ("metadata", "TEXT"),
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
    for (name, kind) in ADDED_COLUMNS {
        if !columns.contains(name) {
            tracing::info!(
                column = name,
                "adding column to an eventsource-py events table"
            );
            sqlx::raw_sql(&format!("ALTER TABLE events ADD COLUMN {name} {kind}"))
                .execute(&mut *tx)
                .await
                .map_err(db_error(OP))?;
        }
    }
    sqlx::raw_sql(INDEXES)
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))
}
