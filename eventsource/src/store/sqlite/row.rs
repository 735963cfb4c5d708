//! Rows of the `events` table, packed into one text value each, to [`StoredEvent`].

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::quoted;
use crate::stored::StoredEvent;

use super::fields::{split_fields, split_row, SEPARATOR};
use super::timestamp::parse_timestamp;

/// The envelope columns, packed in SQL into one text value with the position before them
/// and the payload after them, in the order [`Packed::parse`] reads them. sqlx copies
/// every column value of every row (an allocation each): one value per row reads several
/// times faster than fifteen.
///
/// The version comes first, before any column a user or another tool fills with text: a
/// reader paging a stream by version finds it even in a row whose other columns do not
/// read.
const PACKED: [&str; 13] = [
    VERSION_TEXT,
    "event_id",
    "aggregate_id",
    "CASE WHEN instr(aggregate_type, char(0)) THEN char(30, 78, 85, 76) ELSE aggregate_type END",
    EVENT_TYPE_TEXT,
    "tenant_id",
    "CASE WHEN instr(actor_id, char(0)) THEN char(30, 78, 85, 76) ELSE ifnull(actor_id, char(30)) END",
    "timestamp",
    "created_at",
    "event_version",
    "correlation_id",
    "causation_id",
    "metadata",
];

/// The version column as packed text. A version that is not an integer (text, a fraction
/// or a BLOB, which another tool may store) is packed as its type and SQL literal
/// (`text 'five'`), which no reader mistakes for a version.
pub(super) const VERSION_TEXT: &str =
    "CASE typeof(version) WHEN 'integer' THEN version ELSE typeof(version) || ' ' || quote(version) END";

/// The event type as packed text. printf's `%s` ends a value at its first NUL, so a name
/// holding one (refused by appends, possible in another tool's row) would read back cut
/// short, as another name: such a name, an aggregate type or an actor id is packed as
/// [`HOLDS_NUL`] instead.
pub(super) const EVENT_TYPE_TEXT: &str =
    "CASE WHEN instr(event_type, char(0)) THEN char(30, 78, 85, 76) ELSE event_type END";

/// What a name holding NUL is packed as: U+001E and `NUL`, which no name we store holds
/// (appends refuse control characters in names).
pub(super) const HOLDS_NUL: &str = "\u{1e}NUL";

/// Columns that eventsource-py's `events` table does not have; `initialize()` adds them.
const ADDED: [&str; 4] = [
    "event_version",
    "correlation_id",
    "causation_id",
    "metadata",
];

/// The select list for an `events` table with these columns: `global_position, payload`
/// and the packed envelope. An eventsource-py table that was not (or cannot be, read-only)
/// initialized reads with NULL for the added columns.
pub(super) fn select_list(present: &std::collections::HashSet<String>) -> String {
    let args: Vec<&str> = PACKED
        .iter()
        .map(|column| {
            if !present.is_empty() && ADDED.contains(column) && !present.contains(*column) {
                "NULL"
            } else {
                column
            }
        })
        .collect();
    let sep = SEPARATOR.to_string();
    let format = format!("%d{sep}{}{sep}%s", vec!["%s"; PACKED.len()].join(&sep));
    format!(
        "printf('{format}', global_position, {}, payload)",
        args.join(", ")
    )
}

/// The version (stream position) of a row, if it reads: the field after the position,
/// whatever the fields after it hold.
pub(super) fn stream_version(row: &str) -> Option<u64> {
    let (_, rest) = split_row(row)?;
    rest.split(SEPARATOR).next()?.parse().ok()
}

/// Indexes of the envelope fields of [`PACKED`].
mod field {
    pub(super) const VERSION: usize = 0;
    pub(super) const EVENT_ID: usize = 1;
    pub(super) const AGGREGATE_ID: usize = 2;
    pub(super) const AGGREGATE_TYPE: usize = 3;
    pub(super) const EVENT_TYPE: usize = 4;
    pub(super) const TENANT_ID: usize = 5;
    pub(super) const ACTOR_ID: usize = 6;
    pub(super) const TIMESTAMP: usize = 7;
    pub(super) const CREATED_AT: usize = 8;
    pub(super) const EVENT_VERSION: usize = 9;
    pub(super) const CORRELATION_ID: usize = 10;
    pub(super) const CAUSATION_ID: usize = 11;
    pub(super) const METADATA: usize = 12;
}

/// The packed envelope of one row, split into its fields, and its payload.
struct Packed<'a> {
    fields: [&'a str; 13],
    payload: &'a str,
}

impl<'a> Packed<'a> {
    /// Exactly 13 fields and the payload: a type or actor id holding U+001F (refused by
    /// appends, but possible in rows written by others) makes more, and the row does not
    /// read. The payload is JSON text, which holds no raw U+001F.
    fn parse(text: &'a str) -> Option<Self> {
        let [fields @ .., payload] = split_fields::<14>(text)?;
        Some(Packed { fields, payload })
    }

    /// A nullable field: printf writes NULL as "".
    fn optional(&self, i: usize) -> Option<&'a str> {
        Some(self.fields[i]).filter(|f| !f.is_empty())
    }
}

/// Decodes one row; the position is returned even when the rest is corrupt, so a reader
/// can report it and move past it.
///
/// # Errors
/// The outer error is a database error (no readable position); the inner one is
/// [`Error::CorruptEvent`] for the row at that position.
pub(super) fn decode(row: &str, registry: &EventRegistry) -> Result<(u64, Result<StoredEvent>)> {
    // A row cut short after its position is still reported at that position.
    let (position, envelope) = split_row(row).unwrap_or((row, ""));
    let position: i64 = position.parse().map_err(|_| Error::Database {
        operation: "decode row",
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: "a row without a readable global_position".into(),
    })?;
    let event_id = || {
        envelope
            .split(SEPARATOR)
            .nth(field::EVENT_ID)
            .and_then(|id| Uuid::parse_str(id).ok())
    };
    // Positions start at 1: a row at 0 or below (another tool's) is reported as such.
    let Some(position) = u64::try_from(position).ok().filter(|p| *p >= 1) else {
        let event_type = Packed::parse(envelope).map_or("", |p| p.fields[field::EVENT_TYPE]);
        return Ok((
            0,
            Err(Error::CorruptEvent {
                global_position: 0,
                event_id: event_id(),
                event_type: event_type.to_owned(),
                reason: format!("global_position {position} is not a position (they start at 1)"),
            }),
        ));
    };
    let event = decode_at(envelope, position, registry).map_err(|error| match error {
        // Name the event id in the error when that column at least reads.
        Error::CorruptEvent {
            global_position,
            event_type,
            reason,
            ..
        } => Error::CorruptEvent {
            global_position,
            event_id: event_id(),
            event_type,
            reason,
        },
        other => other,
    });
    Ok((position, event))
}

fn decode_at(
    packed_text: &str,
    global_position: u64,
    registry: &EventRegistry,
) -> Result<StoredEvent> {
    let packed = Packed::parse(packed_text);
    let event_type = packed.as_ref().map_or("", |p| p.fields[field::EVENT_TYPE]);
    let corrupt = |reason: String| Error::CorruptEvent {
        global_position,
        event_id: None,
        event_type: event_type.to_owned(),
        reason,
    };
    let Some(packed) = packed else {
        return Err(corrupt(
            "the envelope columns do not read (a type or actor id holding U+001F?)".into(),
        ));
    };
    let payload = packed.payload;
    let required = |i: usize| {
        packed
            .optional(i)
            .ok_or_else(|| corrupt(format!("{} is NULL", PACKED[i])))
    };
    let uuid = |value: &str, name: &str| {
        Uuid::parse_str(value)
            .map_err(|e| corrupt(format!("{name} {} is not a UUID: {e}", quoted(value))))
    };
    let optional_uuid = |i: usize| packed.optional(i).map(|v| uuid(v, PACKED[i])).transpose();
    let timestamp = |i: usize| {
        let value = required(i)?;
        parse_timestamp(value).ok_or_else(|| {
            corrupt(format!(
                "{} `{value}` is not an ISO 8601 timestamp",
                PACKED[i]
            ))
        })
    };

    let version = required(field::VERSION)?;
    // Versions start at 1; text, a fraction or a BLOB (another tool's) is not one.
    let aggregate_version: u64 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
        corrupt(format!(
            "version {} is not a stream version",
            quoted(version)
        ))
    })?;
    let event_id = uuid(required(field::EVENT_ID)?, "event_id")?;
    let aggregate_id = uuid(required(field::AGGREGATE_ID)?, "aggregate_id")?;
    let holds_nul = |i: usize, name: &str| -> Result<()> {
        if packed.fields[i] == HOLDS_NUL {
            return Err(corrupt(format!(
                "{name} holds a NUL character (written by another tool)"
            )));
        }
        Ok(())
    };
    holds_nul(field::AGGREGATE_TYPE, "aggregate_type")?;
    holds_nul(field::EVENT_TYPE, "event_type")?;
    holds_nul(field::ACTOR_ID, "actor_id")?;
    let aggregate_type = required(field::AGGREGATE_TYPE)?.to_owned();
    required(field::EVENT_TYPE)?;
    let tenant_id = optional_uuid(field::TENANT_ID)?;
    // NULL is written as U+001E, so that an empty actor id stays empty.
    let actor_id = match packed.fields[field::ACTOR_ID] {
        "\u{1e}" => None,
        actor => Some(actor.to_owned()),
    };
    let event_timestamp = timestamp(field::TIMESTAMP)?;
    let stored_at = timestamp(field::CREATED_AT)?;
    let event_version = match packed.optional(field::EVENT_VERSION) {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| corrupt(format!("event_version `{v}` is not a schema version")))?,
        ),
    };

    let mut envelope = EventEnvelope {
        event_id,
        aggregate_id,
        aggregate_type,
        event_type: event_type.to_owned(),
        event_version: 1,
        aggregate_version,
        timestamp: event_timestamp,
        tenant_id,
        actor_id,
        correlation_id: optional_uuid(field::CORRELATION_ID)?,
        causation_id: optional_uuid(field::CAUSATION_ID)?,
        metadata: Map::new(),
    };
    match packed.optional(field::METADATA) {
        Some(metadata) => {
            if metadata != "{}" {
                envelope.metadata = serde_json::from_str(metadata)
                    .map_err(|e| corrupt(format!("metadata is not a JSON object: {e}")))?;
            }
            envelope.event_version = event_version
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v >= 1)
                .ok_or_else(|| {
                    corrupt(format!(
                        "event_version {event_version:?} is not a schema version"
                    ))
                })?;
        }
        // A row written by eventsource-py: these envelope fields live in the payload.
        None => fill_from_payload(&mut envelope, payload, event_version, corrupt)?,
    }

    let payload =
        registry.decode_str(global_position, event_type, envelope.event_version, payload)?;
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
    fn packed_envelopes_split_into_thirteen_fields_and_the_payload() {
        let sep = SEPARATOR.to_string();
        let ok = [
            "1",
            "a",
            "b",
            "Task",
            "Created",
            "",
            "\u{1e}",
            "t",
            "t",
            "1",
            "",
            "",
            "{}",
            "{\"x\":1}",
        ]
        .join(&sep);
        let packed = Packed::parse(&ok).unwrap();
        assert_eq!(packed.fields[field::EVENT_TYPE], "Created");
        assert_eq!(packed.optional(field::TENANT_ID), None);
        assert_eq!(packed.payload, "{\"x\":1}");
        assert!(Packed::parse(&["a", "b"].join(&sep)).is_none());
        let extra = format!("{ok}{sep}x");
        assert!(
            Packed::parse(&extra).is_none(),
            "a separator inside a field is detected"
        );
    }
}
