//! Rows of the `events` table to [`StoredEvent`].

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::StoredTime;
use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::sql::db_error;
use crate::stored::StoredEvent;

/// The select list [`decode`] reads, in its order.
pub(super) const SELECT: &str = "global_position, event_id, aggregate_id, aggregate_type, \
     event_type, event_version, tenant_id, actor_id, version, timestamp, created_at, \
     correlation_id, causation_id, metadata::text, payload::text";

/// Decodes one row; the position is returned even when the rest does not decode, so a
/// reader can report the row and move past it.
///
/// # Errors
/// The outer error is a database error (no readable position); the inner one is
/// [`Error::CorruptEvent`] for the row at that position.
pub(super) fn decode(row: &PgRow, registry: &EventRegistry) -> Result<(u64, Result<StoredEvent>)> {
    let stored: i64 = row.try_get(0).map_err(db_error("decode row"))?;
    let event_id: Option<Uuid> = row.try_get(1).ok();
    let event_type: String = row.try_get(4).unwrap_or_default();
    // Positions start at 1: a row below (another tool's) is reported at 0.
    let position = u64::try_from(stored).ok().filter(|p| *p >= 1);
    let corrupt = |reason: String| Error::CorruptEvent {
        global_position: position.unwrap_or(0),
        event_id,
        event_type: event_type.clone(),
        reason,
    };
    let Some(position) = position else {
        return Ok((
            0,
            Err(corrupt(format!(
                "global_position {stored} is not a position (they start at 1)"
            ))),
        ));
    };
    let event = decode_at(row, position, registry, &event_type, corrupt).map_err(|e| match e {
        // The registry does not know the event id: name it.
        Error::CorruptEvent {
            global_position,
            event_id: None,
            event_type,
            reason,
        } => Error::CorruptEvent {
            global_position,
            event_id,
            event_type,
            reason,
        },
        other => other,
    });
    Ok((position, event))
}

fn decode_at(
    row: &PgRow,
    global_position: u64,
    registry: &EventRegistry,
    event_type: &str,
    corrupt: impl Fn(String) -> Error,
) -> Result<StoredEvent> {
    let column =
        |i: usize, name: &str, e: sqlx::Error| corrupt(format!("column {i} ({name}): {e}"));
    let event_id: Uuid = row.try_get(1).map_err(|e| column(1, "event_id", e))?;
    let aggregate_id: Uuid = row.try_get(2).map_err(|e| column(2, "aggregate_id", e))?;
    let aggregate_type: String = row.try_get(3).map_err(|e| column(3, "aggregate_type", e))?;
    let event_version: i32 = row.try_get(5).map_err(|e| column(5, "event_version", e))?;
    let event_version = u32::try_from(event_version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            corrupt(format!(
                "event_version {event_version} is not a schema version"
            ))
        })?;
    let tenant_id: Option<Uuid> = row.try_get(6).map_err(|e| column(6, "tenant_id", e))?;
    let actor_id: Option<String> = row.try_get(7).map_err(|e| column(7, "actor_id", e))?;
    let version: i64 = row.try_get(8).map_err(|e| column(8, "version", e))?;
    let aggregate_version = u64::try_from(version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| corrupt(format!("version {version} is not a stream version")))?;
    let time = |i: usize, name: &str| -> Result<DateTime<Utc>> {
        row.try_get::<StoredTime, _>(i)
            .map_err(|e| column(i, name, e))?
            .time()
            .map_err(|e| corrupt(format!("{name}: {e}")))
    };
    let timestamp = time(9, "timestamp")?;
    let stored_at = time(10, "created_at")?;
    let correlation_id: Option<Uuid> = row
        .try_get(11)
        .map_err(|e| column(11, "correlation_id", e))?;
    let causation_id: Option<Uuid> = row.try_get(12).map_err(|e| column(12, "causation_id", e))?;
    let metadata: String = row.try_get(13).map_err(|e| column(13, "metadata", e))?;
    let payload: &str = row.try_get(14).map_err(|e| column(14, "payload", e))?;
    let metadata = match serde_json::from_str::<Value>(&metadata) {
        Ok(Value::Object(map)) => map,
        Ok(other) => return Err(corrupt(format!("metadata {other} is not a JSON object"))),
        Err(e) => return Err(corrupt(format!("metadata is not JSON: {e}"))),
    };
    let envelope = EventEnvelope {
        event_id,
        aggregate_id,
        aggregate_type,
        event_type: event_type.to_owned(),
        event_version,
        aggregate_version,
        timestamp,
        tenant_id,
        actor_id,
        correlation_id,
        causation_id,
        metadata,
    };
    let payload = registry.decode_str(global_position, event_type, event_version, payload)?;
    Ok(StoredEvent {
        envelope,
        global_position,
        stream_position: aggregate_version,
        stored_at,
        payload,
    })
}
