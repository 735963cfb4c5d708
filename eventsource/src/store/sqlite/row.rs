//! Rows of the `events` table to [`StoredEvent`], and the text formats of its columns.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::stored::StoredEvent;

/// The columns every read selects, in the order [`decode`] expects.
const COLUMNS: &str = "global_position, event_id, aggregate_id, aggregate_type, event_type, \
     tenant_id, actor_id, version, timestamp, payload, created_at, event_version, correlation_id, \
     causation_id, metadata";

/// Columns that eventsource-py's `events` table does not have; `initialize()` adds them.
const ADDED: [&str; 4] = [
    "event_version",
    "correlation_id",
    "causation_id",
    "metadata",
];

/// The select list for an `events` table with these columns: an eventsource-py table that
/// was not (or cannot be, read-only) initialized reads with NULL for the added columns.
pub(super) fn select_list(present: &std::collections::HashSet<String>) -> String {
    let mut list = COLUMNS.to_owned();
    if !present.is_empty() {
        for column in ADDED {
            if !present.contains(column) {
                list = list.replace(&format!(", {column}"), &format!(", NULL AS {column}"));
            }
        }
    }
    list
}

/// A timestamp as stored: ISO 8601 with microseconds and an explicit UTC offset, the
/// format of Python's `datetime.isoformat()`. Text order is time order.
pub(super) fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Parses ISO 8601 / RFC 3339 with an offset, or SQLite's `datetime('now')` format (UTC).
pub(super) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

/// Decodes one row; the position is returned even when the rest is corrupt, so a reader
/// can report it and move past it.
///
/// # Errors
/// The outer error is a database error (no readable position); the inner one is
/// [`Error::CorruptEvent`] for the row at that position.
pub(super) fn decode(
    row: &SqliteRow,
    registry: &EventRegistry,
) -> Result<(u64, Result<StoredEvent>)> {
    let position: i64 = row.try_get(0).map_err(|e| Error::Database {
        operation: "decode row",
        source: Box::new(e),
    })?;
    let position = u64::try_from(position).map_err(|_| Error::Database {
        operation: "decode row",
        source: format!("negative global_position {position}").into(),
    })?;
    let event = decode_at(row, position, registry).map_err(|error| match error {
        // Name the event id in the error when that column at least reads.
        Error::CorruptEvent {
            global_position,
            event_type,
            reason,
            ..
        } => Error::CorruptEvent {
            global_position,
            event_id: row
                .try_get::<String, _>(1)
                .ok()
                .and_then(|id| Uuid::parse_str(&id).ok()),
            event_type,
            reason,
        },
        other => other,
    });
    Ok((position, event))
}

fn decode_at(
    row: &SqliteRow,
    global_position: u64,
    registry: &EventRegistry,
) -> Result<StoredEvent> {
    let event_type: String = row.try_get(4).unwrap_or_default();
    let corrupt = |reason: String| Error::CorruptEvent {
        global_position,
        event_id: None,
        event_type: event_type.clone(),
        reason,
    };
    let text = |i: usize| -> Result<Option<String>> {
        row.try_get::<Option<String>, _>(i)
            .map_err(|e| corrupt(format!("column {i}: {e}")))
    };
    let required = |i: usize, name: &str| -> Result<String> {
        text(i)?.ok_or_else(|| corrupt(format!("{name} is NULL")))
    };
    let uuid = |value: &str, name: &str| {
        Uuid::parse_str(value).map_err(|e| corrupt(format!("{name} `{value}` is not a UUID: {e}")))
    };
    let optional_uuid =
        |value: Option<String>, name: &str| value.map(|v| uuid(&v, name)).transpose();
    let timestamp = |value: &str, name: &str| {
        parse_timestamp(value)
            .ok_or_else(|| corrupt(format!("{name} `{value}` is not an ISO 8601 timestamp")))
    };

    let event_id = uuid(&required(1, "event_id")?, "event_id")?;
    let aggregate_id = uuid(&required(2, "aggregate_id")?, "aggregate_id")?;
    let aggregate_type = required(3, "aggregate_type")?;
    let tenant_id = optional_uuid(text(5)?, "tenant_id")?;
    let actor_id = text(6)?;
    let version: i64 = row
        .try_get(7)
        .map_err(|e| corrupt(format!("version: {e}")))?;
    let aggregate_version =
        u64::try_from(version).map_err(|_| corrupt(format!("version {version} is negative")))?;
    let event_timestamp = timestamp(&required(8, "timestamp")?, "timestamp")?;
    let payload = required(9, "payload")?;
    let stored_at = timestamp(&required(10, "created_at")?, "created_at")?;
    let event_version: Option<i64> = row
        .try_get(11)
        .map_err(|e| corrupt(format!("event_version: {e}")))?;
    let metadata = text(14)?;

    let mut envelope = EventEnvelope {
        event_id,
        aggregate_id,
        aggregate_type,
        event_type: event_type.clone(),
        event_version: 1,
        aggregate_version,
        timestamp: event_timestamp,
        tenant_id,
        actor_id,
        correlation_id: optional_uuid(text(12)?, "correlation_id")?,
        causation_id: optional_uuid(text(13)?, "causation_id")?,
        metadata: Map::new(),
    };
    match metadata {
        Some(metadata) => {
            envelope.metadata = serde_json::from_str(&metadata)
                .map_err(|e| corrupt(format!("metadata is not a JSON object: {e}")))?;
            envelope.event_version = event_version
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    corrupt(format!(
                        "event_version {event_version:?} is not a schema version"
                    ))
                })?;
        }
        // A row written by eventsource-py: these envelope fields live in the payload.
        None => fill_from_payload(&mut envelope, &payload, event_version, corrupt)?,
    }

    let payload = registry.decode_str(
        global_position,
        &event_type,
        envelope.event_version,
        &payload,
    )?;
    Ok(StoredEvent {
        envelope,
        global_position,
        stream_position: aggregate_version,
        stored_at,
        payload,
    })
}

/// Reads `event_version`, `correlation_id`, `causation_id` and `metadata` from the payload
/// JSON of a row written by eventsource-py (its payload repeats the envelope).
fn fill_from_payload(
    envelope: &mut EventEnvelope,
    payload: &str,
    event_version: Option<i64>,
    corrupt: impl Fn(String) -> Error,
) -> Result<()> {
    let json: Value = serde_json::from_str(payload)
        .map_err(|e| corrupt(format!("payload is not valid JSON: {e}")))?;
    let field = |name: &str| json.get(name).filter(|v| !v.is_null());
    let uuid_field = |name: &str| -> Result<Option<Uuid>> {
        field(name)
            .map(|v| {
                v.as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| corrupt(format!("payload field {name} {v} is not a UUID")))
            })
            .transpose()
    };
    let version = event_version
        .or_else(|| field("event_version").and_then(Value::as_i64))
        .unwrap_or(1);
    envelope.event_version = u32::try_from(version)
        .map_err(|_| corrupt(format!("event_version {version} is not a schema version")))?;
    envelope.correlation_id = uuid_field("correlation_id")?.or(envelope.correlation_id);
    envelope.causation_id = uuid_field("causation_id")?.or(envelope.causation_id);
    if let Some(Value::Object(metadata)) = field("metadata") {
        envelope.metadata = metadata.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_python_format() {
        let t = crate::envelope::now();
        let text = format_timestamp(t);
        assert!(text.ends_with("+00:00"), "{text}");
        assert_eq!(parse_timestamp(&text), Some(t));
    }

    #[test]
    fn parses_python_and_sqlite_formats() {
        for text in [
            "2024-01-02T03:04:05+00:00",
            "2024-01-02T03:04:05.000000Z",
            "2024-01-02 03:04:05",
            "2024-01-02T03:04:05",
        ] {
            let t = parse_timestamp(text).unwrap_or_else(|| panic!("{text} did not parse"));
            assert_eq!(format_timestamp(t), "2024-01-02T03:04:05.000000+00:00");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
