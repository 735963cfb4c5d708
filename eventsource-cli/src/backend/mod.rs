//! What the commands ask of a store beyond the library's traits, in each backend's SQL
//! (mirrored files): counts for `info`, an aggregate's stream types for `stream`, and the
//! cross-table checks of `verify`.

mod postgres;
mod sqlite;

use serde::Serialize;
use uuid::Uuid;

use crate::error::CliError;
use crate::target::Target;

/// A table's size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TableSize {
    pub(crate) table: String,
    pub(crate) rows: u64,
    /// Bytes on disk, where the backend tells (PostgreSQL, with its indexes).
    pub(crate) bytes: Option<u64>,
}

/// The counts `info` shows that no trait method gives.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Counts {
    pub(crate) events: u64,
    pub(crate) streams: u64,
    pub(crate) tenants: u64,
    /// Events per aggregate type.
    pub(crate) aggregate_types: Vec<(String, u64)>,
    pub(crate) tables: Vec<TableSize>,
    /// The whole database's bytes on disk (SQLite: the file and its WAL).
    pub(crate) database_bytes: Option<u64>,
    /// Whether appends write outbox entries.
    pub(crate) outbox_enabled: bool,
}

/// A snapshot ahead of its stream.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SnapshotAhead {
    pub(crate) aggregate_id: String,
    pub(crate) aggregate_type: String,
    pub(crate) snapshot_version: i64,
    pub(crate) stream_version: i64,
}

/// An outbox entry naming an event the store does not hold.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrphanEntry {
    pub(crate) id: i64,
    pub(crate) event_id: String,
    pub(crate) global_position: i64,
}

/// The counts of `info`.
pub(crate) async fn counts(target: &Target) -> Result<Counts, CliError> {
    match target {
        Target::Sqlite(store) => sqlite::counts(store).await,
        Target::Postgres(store) => postgres::counts(store).await,
    }
}

/// The aggregate types `aggregate_id` has a stream of.
pub(crate) async fn aggregate_types_of(
    target: &Target,
    aggregate_id: Uuid,
) -> Result<Vec<String>, CliError> {
    match target {
        Target::Sqlite(store) => sqlite::aggregate_types_of(store, aggregate_id).await,
        Target::Postgres(store) => postgres::aggregate_types_of(store, aggregate_id).await,
    }
}

/// How many events are stored after `position`.
pub(crate) async fn events_after(target: &Target, position: u64) -> Result<u64, CliError> {
    match target {
        Target::Sqlite(store) => sqlite::events_after(store, position).await,
        Target::Postgres(store) => postgres::events_after(store, position).await,
    }
}

/// Snapshots whose version is beyond their stream's.
pub(crate) async fn snapshots_ahead(target: &Target) -> Result<Vec<SnapshotAhead>, CliError> {
    match target {
        Target::Sqlite(store) => sqlite::snapshots_ahead(store).await,
        Target::Postgres(store) => postgres::snapshots_ahead(store).await,
    }
}

/// Outbox entries whose event is not stored.
pub(crate) async fn orphan_outbox_entries(target: &Target) -> Result<Vec<OrphanEntry>, CliError> {
    match target {
        Target::Sqlite(store) => sqlite::orphan_outbox_entries(store).await,
        Target::Postgres(store) => postgres::orphan_outbox_entries(store).await,
    }
}

impl From<(String, String, i64, i64)> for SnapshotAhead {
    fn from(
        (aggregate_id, aggregate_type, snapshot_version, stream_version): (
            String,
            String,
            i64,
            i64,
        ),
    ) -> Self {
        SnapshotAhead {
            aggregate_id,
            aggregate_type,
            snapshot_version,
            stream_version,
        }
    }
}

impl From<(i64, String, i64)> for OrphanEntry {
    fn from((id, event_id, global_position): (i64, String, i64)) -> Self {
        OrphanEntry {
            id,
            event_id,
            global_position,
        }
    }
}

/// A database error of one of these queries, as the library's typed error.
fn query_failed(operation: &'static str) -> impl Fn(eventsource::sqlx::Error) -> CliError {
    move |error| {
        CliError::Store(eventsource::Error::Database {
            operation,
            kind: eventsource::DatabaseErrorKind::Other,
            source: Box::new(error),
        })
    }
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
