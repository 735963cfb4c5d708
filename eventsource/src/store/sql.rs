//! What the SQL backends share: sqlx errors to [`Error`], and integer conversions between
//! the stores' `u64` positions and SQL's signed 64-bit integers.

use crate::error::Error;

/// Maps a sqlx error to [`Error`]: one place for every operation of the SQL backends.
pub(crate) fn db_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match e {
        sqlx::Error::PoolClosed => Error::StoreClosed,
        other => Error::Database {
            operation,
            source: Box::new(other),
        },
    }
}

/// `true` for a violation of a unique key.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// A position or count as a SQL integer (saturating: no store holds 2^63 events).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A SQL integer as a position or count (a negative one reads as 0).
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
