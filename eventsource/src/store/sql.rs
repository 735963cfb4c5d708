//! What the SQL backends share: sqlx errors to [`Error`], and integer conversions between
//! the stores' `u64` positions and SQL's signed 64-bit integers.

use crate::envelope::NewEvent;
use crate::error::{DatabaseErrorKind, Error, Result};
use crate::registry::EventRegistry;
use crate::store::check_json;

/// Maps a sqlx error to [`Error`]: one place for every operation of the SQL backends.
pub(crate) fn db_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match e {
        sqlx::Error::PoolClosed => Error::StoreClosed,
        other => Error::Database {
            operation,
            kind: error_kind(&other),
            source: Box::new(other),
        },
    }
}

/// What kind of failure a sqlx error is (see [`DatabaseErrorKind`]).
pub(crate) fn error_kind(error: &sqlx::Error) -> DatabaseErrorKind {
    match error {
        sqlx::Error::PoolTimedOut => DatabaseErrorKind::PoolTimeout,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => DatabaseErrorKind::ConnectionLost,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => DatabaseErrorKind::Corrupt,
        sqlx::Error::Database(db) => database_error_kind(db.as_ref()),
        _ => DatabaseErrorKind::Other,
    }
}

fn database_error_kind(db: &dyn sqlx::error::DatabaseError) -> DatabaseErrorKind {
    #[cfg(feature = "sqlite")]
    use sqlx::error::DatabaseError as _;
    #[cfg(feature = "sqlite")]
    if let Some(code) = db
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
    {
        return sqlite_error_kind(code);
    }
    #[cfg(feature = "postgres")]
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return postgres_error_kind(e.code());
    }
    DatabaseErrorKind::Other
}

/// SQLite's (extended) result codes: <https://www.sqlite.org/rescode.html>.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_error_kind(code: i32) -> DatabaseErrorKind {
    match code & 0xff {
        // SQLITE_BUSY, SQLITE_LOCKED
        5 | 6 => DatabaseErrorKind::Busy,
        // SQLITE_FULL
        13 => DatabaseErrorKind::StorageFull,
        // SQLITE_READONLY
        8 => DatabaseErrorKind::ReadOnly,
        // SQLITE_IOERR (SQLITE_IOERR_NOMEM aside), SQLITE_CANTOPEN
        10 if code == 3082 => DatabaseErrorKind::Other,
        10 | 14 => DatabaseErrorKind::Io,
        // SQLITE_CORRUPT, SQLITE_NOTADB
        11 | 26 => DatabaseErrorKind::Corrupt,
        _ => DatabaseErrorKind::Other,
    }
}

/// PostgreSQL's SQLSTATE codes: <https://www.postgresql.org/docs/current/errcodes-appendix.html>.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_error_kind(sqlstate: &str) -> DatabaseErrorKind {
    match sqlstate {
        // serialization_failure, deadlock_detected, lock_not_available
        "40001" | "40P01" | "55P03" => DatabaseErrorKind::Busy,
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
        // idle_session_timeout
        "57P01" | "57P02" | "57P03" | "53300" | "57P05" => DatabaseErrorKind::ConnectionLost,
        // disk_full, insufficient_resources, out_of_memory
        "53100" | "53000" | "53200" => DatabaseErrorKind::StorageFull,
        // read_only_sql_transaction
        "25006" => DatabaseErrorKind::ReadOnly,
        // data_corrupted, index_corrupted
        "XX001" | "XX002" => DatabaseErrorKind::Corrupt,
        // connection_exception and its subclasses
        code if code.starts_with("08") => DatabaseErrorKind::ConnectionLost,
        // io_error family of the server (e.g. 58030)
        code if code.starts_with("58") => DatabaseErrorKind::Io,
        _ => DatabaseErrorKind::Other,
    }
}

/// `true` for a violation of a unique key.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// What an append's transaction did.
pub(crate) enum Written {
    /// Events were inserted: commit.
    Yes(crate::store::AppendResult),
    /// Nothing to write (a retried batch, an empty one): roll back.
    Nothing(crate::store::AppendResult),
}

/// Why an append's transaction ends without a commit.
pub(crate) enum Failed {
    /// A unique-key violation on the version: another writer got there first.
    Conflict,
    /// Any other error.
    Error(Error),
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed::Error(error)
    }
}

/// The rows of a listing that decode, in order; each one that does not is reported
/// (logged as an error with why) and left out, so that one bad row does not hide the
/// others. (Single lookups report their row's error to the caller instead.)
pub(crate) fn readable_rows<T>(
    what: &'static str,
    rows: impl IntoIterator<Item = Result<T>>,
) -> Vec<T> {
    rows.into_iter()
        .filter_map(|row| {
            row.map_err(|error| {
                tracing::error!(listing = what, %error, "a row does not read; it is left out of the listing");
            })
            .ok()
        })
        .collect()
}

/// Ends an append's transaction by what its statements did: commit after writes, roll
/// back otherwise, so that its connection goes back to the pool outside any transaction
/// (and, on PostgreSQL, the append lock is released at once). `Ok(None)` for a conflict,
/// which the caller describes with the stream's version.
///
/// When even the rollback of a failed append fails (SQLite rolled back by itself, e.g.
/// on a full disk), the append's own error is returned, and the pool closes the
/// connection instead of handing it out again.
///
/// # Errors
/// The append's error; a failed commit, or rollback after a conflict.
pub(crate) async fn end_append<DB: sqlx::Database>(
    tx: sqlx::Transaction<'_, DB>,
    written: std::result::Result<Written, Failed>,
) -> Result<Option<crate::store::AppendResult>> {
    const OP: &str = "append_events";
    match written {
        Ok(Written::Yes(result)) => {
            tx.commit().await.map_err(db_error(OP))?;
            Ok(Some(result))
        }
        Ok(Written::Nothing(result)) => {
            tx.rollback().await.map_err(db_error(OP))?;
            Ok(Some(result))
        }
        Err(Failed::Conflict) => {
            tx.rollback().await.map_err(db_error(OP))?;
            Ok(None)
        }
        Err(Failed::Error(error)) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// A position or count as a SQL integer (saturating: no store holds 2^63 events).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A SQL integer as a position or count (a negative one reads as 0).
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// One event serialized for an INSERT: payload and metadata as JSON text.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    pub(crate) payload: String,
    pub(crate) metadata: String,
}

/// Serializes a batch before any lock is taken, checking that raw payloads of registered
/// types fit their type.
///
/// # Errors
/// [`Error::Serialization`]; [`Error::CorruptEvent`] for a raw payload that does not fit.
pub(crate) fn encode_batch(
    registry: &EventRegistry,
    events: &[NewEvent],
) -> Result<Vec<EncodedEvent>> {
    events
        .iter()
        .map(|event| {
            registry.resolve(event.payload.clone())?;
            let metadata =
                serde_json::to_string(&event.metadata).map_err(|source| Error::Serialization {
                    event_type: event.event_type().to_owned(),
                    source,
                })?;
            let payload = event.payload.to_json()?;
            check_json(event.event_type(), &payload, &metadata)?;
            Ok(EncodedEvent { payload, metadata })
        })
        .collect()
}
