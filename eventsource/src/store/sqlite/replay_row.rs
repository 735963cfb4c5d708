//! Rows of `replay_stream` to [`ReplayedEvent`], through one decoder whichever way they
//! were read: as packed text (the pool's page values, and any row the native reader packs
//! because it is not an ordinary row) or as typed columns (the native reader's ordinary
//! rows, see [`super::replay_page`]), which skip formatting numbers as text, splitting
//! the row and parsing the numbers back.

use serde_json::Value;

use super::fields::SEPARATOR;
use super::row::HOLDS_NUL;
use crate::error::{DatabaseErrorKind, Error, Result};
use crate::registry::EventRegistry;
use crate::store::quoted;
use crate::store::ReplayedEvent;

/// A number column as the decoder takes it: the integer SQLite stored, or its packed
/// text (where a value that is not an integer is its type and SQL literal, see
/// `row::VERSION_TEXT`, and NULL is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column<'a> {
    Int(i64),
    Text(&'a str),
}

impl std::fmt::Display for Column<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Int(i) => write!(f, "{i}"),
            Column::Text(text) => f.write_str(text),
        }
    }
}

/// The columns of one replay row (see `pack::REPLAY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReplayColumns<'a> {
    pub(super) position: i64,
    pub(super) version: Column<'a>,
    /// NULL (a row of eventsource-py) is `Text("")`.
    pub(super) event_version: Column<'a>,
    pub(super) event_type: &'a str,
    pub(super) payload: &'a str,
}

/// Decodes a packed record of `replay_stream`: `position, version, event_version,
/// event_type, payload`, U+001F between them.
///
/// # Errors
/// [`Error::CorruptEvent`] for a record that does not read; [`Error::Database`] when not
/// even its position does.
pub(super) fn decode_packed(record: &str, registry: &EventRegistry) -> Result<ReplayedEvent> {
    let mut fields = record.splitn(5, SEPARATOR);
    let mut next = || fields.next().unwrap_or_default();
    let position: i64 = next().parse().map_err(|_| Error::Database {
        operation: "replay_stream",
        kind: DatabaseErrorKind::Corrupt,
        source: "a row without a readable global_position".into(),
    })?;
    let (version, event_version, event_type, payload) = (next(), next(), next(), next());
    decode(
        ReplayColumns {
            position,
            version: Column::Text(version),
            event_version: Column::Text(event_version),
            event_type,
            payload,
        },
        registry,
    )
}

/// Decodes the columns of one replay row.
///
/// # Errors
/// [`Error::CorruptEvent`] for a row that does not read.
pub(super) fn decode(row: ReplayColumns<'_>, registry: &EventRegistry) -> Result<ReplayedEvent> {
    let ReplayColumns {
        position: stored,
        version,
        event_version,
        event_type,
        payload,
    } = row;
    let position = u64::try_from(stored).ok().filter(|p| *p >= 1);
    let corrupt = |reason: String| Error::CorruptEvent {
        global_position: position.unwrap_or(0),
        event_id: None,
        event_type: event_type.to_owned(),
        reason,
    };
    let position = position.ok_or_else(|| {
        corrupt(format!(
            "global_position {stored} is not a position (they start at 1)"
        ))
    })?;
    let parsed = match version {
        Column::Int(v) => u64::try_from(v).ok(),
        Column::Text(text) => text.parse().ok(),
    };
    let version: u64 = parsed.filter(|v| *v >= 1).ok_or_else(|| {
        corrupt(format!(
            "version {} is not a stream version",
            quoted(&version.to_string())
        ))
    })?;
    if event_type == HOLDS_NUL {
        return Err(corrupt(
            "event_type holds a NUL character (written by another tool)".into(),
        ));
    }
    let not_schema_version = || {
        corrupt(format!(
            "event_version `{event_version}` is not a schema version"
        ))
    };
    let event_version: u32 = match event_version {
        // A row written by eventsource-py: the schema version is in the payload.
        Column::Text("") => serde_json::from_str::<Value>(payload)
            .ok()
            .and_then(|json| json.get("event_version").and_then(Value::as_u64))
            .map_or(Ok(1), u32::try_from)
            .map_err(|_| corrupt("event_version in the payload is not a schema version".into()))?,
        Column::Int(v) => u32::try_from(v).map_err(|_| not_schema_version())?,
        Column::Text(text) => text.parse().map_err(|_| not_schema_version())?,
    };
    let payload = registry.decode_str(position, event_type, event_version, payload)?;
    Ok(ReplayedEvent {
        global_position: position,
        version,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed text of typed columns, as `pack::pack` writes integers and NULL.
    fn packed(row: &ReplayColumns<'_>) -> String {
        let sep = SEPARATOR.to_string();
        [
            row.position.to_string(),
            row.version.to_string(),
            row.event_version.to_string(),
            row.event_type.to_owned(),
            row.payload.to_owned(),
        ]
        .join(&sep)
    }

    #[test]
    fn typed_columns_decode_as_their_packed_text_does() {
        let registry = &EventRegistry::global();
        let payload = r#"{"event_version": 3, "x": 1}"#;
        let mut rows = Vec::new();
        for position in [-1, 0, 1, 7, i64::MAX] {
            for version in [i64::MIN, -1, 0, 1, 42] {
                for event_version in [
                    Column::Text(""),
                    Column::Int(-1),
                    Column::Int(0),
                    Column::Int(2),
                    Column::Int(i64::from(u32::MAX) + 1),
                ] {
                    for event_type in ["Unregistered", "", HOLDS_NUL] {
                        for payload in [payload, "{}", "not json"] {
                            rows.push(ReplayColumns {
                                position,
                                version: Column::Int(version),
                                event_version,
                                event_type,
                                payload,
                            });
                        }
                    }
                }
            }
        }
        for row in rows {
            let typed = decode(row, registry);
            let text = decode_packed(&packed(&row), registry);
            assert_eq!(format!("{typed:?}"), format!("{text:?}"), "{row:?}");
        }
    }

    #[test]
    fn a_version_that_is_not_an_integer_reads_as_none() {
        let registry = &EventRegistry::global();
        let sep = SEPARATOR;
        let error = decode_packed(&format!("3{sep}text '5'{sep}1{sep}T{sep}{{}}"), registry)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a stream version"), "{error}");
        assert!(decode_packed("x", registry).is_err());
    }
}
