//! What the SQL backends share: sqlx errors to [`Error`], and integer conversions between
//! the stores' `u64` positions and SQL's signed 64-bit integers.

use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;

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
            Ok(EncodedEvent {
                payload: event.payload.to_json()?,
                metadata,
            })
        })
        .collect()
}
