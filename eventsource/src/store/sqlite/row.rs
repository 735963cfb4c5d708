//! Rows of the `events` table to [`StoredEvent`], and the text formats of its columns.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::ReplayedEvent;
use crate::store::{capped, quoted};
use crate::stored::StoredEvent;

/// The separator of the packed envelope (U+001F, the ASCII unit separator). Appends
/// refuse it in aggregate types, event types and actor ids.
pub(super) const SEPARATOR: char = '\u{1f}';

/// The envelope columns, packed in SQL into one text value with the position before them
/// and the payload after them, in the order [`Packed::parse`] reads them. sqlx copies
/// every column value of every row (an allocation each): one value per row reads several
/// times faster than fifteen.
const PACKED: [&str; 13] = [
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "tenant_id",
    "ifnull(actor_id, char(30))",
    "version",
    "timestamp",
    "created_at",
    "event_version",
    "correlation_id",
    "causation_id",
    "metadata",
];

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

/// The index of the first `byte` (ASCII) in `text`: a char boundary. A byte loop: it
/// looks through a few digits.
fn find_byte(text: &str, byte: u8) -> Option<usize> {
    text.bytes().position(|b| b == byte)
}

/// `text` split at every U+001F into exactly `N` fields, in one pass; `None` for any other
/// number of fields.
///
/// The pass reads eight bytes at a time and finds the separators among them with word
/// arithmetic: envelope fields are 30-odd bytes, too short for `memchr` to make up its
/// cost per call, and a byte loop spends most of a page's decoding here.
fn split_fields<const N: usize>(text: &str) -> Option<[&str; N]> {
    let bytes = text.as_bytes();
    let mut fields = [""; N];
    let (mut start, mut n) = (0, 0);
    let mut cut = |i: usize| -> Option<()> {
        // U+001F is ASCII: `start` and `i` are char boundaries.
        *fields.get_mut(n)? = &text[start..i];
        n += 1;
        start = i + 1;
        Some(())
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let mut found = separators_in(u64::from_le_bytes(word));
        while found != 0 {
            cut(base + found.trailing_zeros() as usize / 8)?;
            found &= found - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == SEPARATOR as u8 {
            cut(base + i)?;
        }
    }
    *fields.get_mut(n)? = &text[start..];
    (n + 1 == N).then_some(fields)
}

/// The high bit of every byte of `word` that is U+001F, and no other bit.
fn separators_in(word: u64) -> u64 {
    bytes_equal(word, SEPARATOR as u8)
}

/// The high bit of every byte of `word` that equals `byte`, and no other bit. Exact per
/// byte: adding 0x7F to the low seven bits never carries into the next byte.
pub(super) fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (0x0101_0101_0101_0101 * u64::from(byte));
    // A byte of `x` is zero exactly where `word` holds `byte`.
    !(((x & LOW_SEVEN) + LOW_SEVEN) | x) & HIGH
}

/// A packed row split into its position and the rest: the envelope fields and the
/// payload, which [`Packed::parse`] splits.
fn split_row(text: &str) -> Option<(&str, &str)> {
    let first = find_byte(text, SEPARATOR as u8)?;
    Some((&text[..first], &text[first + 1..]))
}

/// The version (stream position) of a row, if its packed envelope reads that far.
pub(super) fn stream_version(row: &str) -> Option<u64> {
    let (_, rest) = split_row(row)?;
    rest.split(SEPARATOR).nth(6)?.parse().ok()
}

/// The columns of a page row in their packed order: the position, the envelope
/// ([`PACKED`]), the payload.
pub(super) const PAGE_COLUMNS: [&str; 15] = [
    "global_position",
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "tenant_id",
    "actor_id",
    "version",
    "timestamp",
    "created_at",
    "event_version",
    "correlation_id",
    "causation_id",
    "metadata",
    "payload",
];

/// The columns of a `replay_stream` row in their packed order.
pub(super) const REPLAY_COLUMNS: [&str; 5] = [
    "global_position",
    "version",
    "event_version",
    "event_type",
    "payload",
];

/// What can be told of a row whose bytes are not all UTF-8.
#[derive(Debug)]
pub(super) struct Unreadable {
    /// Its global position.
    pub(super) position: u64,
    /// Its stream version, when that column reads.
    pub(super) version: Option<u64>,
    /// [`Error::CorruptEvent`] naming the columns that do not read.
    pub(super) error: Error,
}

/// Reports a packed row (laid out as `columns`) holding bytes that are not UTF-8 (a
/// column written by another tool, or as a BLOB): the other rows of its page read on.
///
/// # Errors
/// [`Error::Database`] when not even its position reads.
pub(super) fn unreadable(record: &[u8], columns: &[&str]) -> Result<Unreadable> {
    let fields: Vec<&[u8]> = record
        .splitn(columns.len(), |b| *b == SEPARATOR as u8)
        .collect();
    let text = |i: usize| fields.get(i).and_then(|f| std::str::from_utf8(f).ok());
    let column = |name: &str| columns.iter().position(|c| *c == name);
    let position: u64 = text(0)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| Error::Database {
            operation: "decode row",
            kind: crate::error::DatabaseErrorKind::Corrupt,
            source: "a row without a readable global_position".into(),
        })?;
    let bad: Vec<&str> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| std::str::from_utf8(f).is_err())
        .map(|(i, _)| columns.get(i).copied().unwrap_or("a column"))
        .collect();
    let event_type = column("event_type")
        .and_then(|i| fields.get(i))
        .map(|f| capped(&String::from_utf8_lossy(f)))
        .unwrap_or_default();
    Ok(Unreadable {
        position,
        version: column("version")
            .and_then(text)
            .and_then(|v| v.parse().ok()),
        error: Error::CorruptEvent {
            global_position: position,
            event_id: column("event_id")
                .and_then(text)
                .and_then(|id| Uuid::parse_str(id).ok()),
            event_type,
            reason: format!(
                "{} {} bytes that are not UTF-8 (written by another tool, or as a BLOB)",
                bad.join(", "),
                if bad.len() == 1 { "holds" } else { "hold" }
            ),
        },
    })
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

/// Decodes a record of `replay_stream`: `position, version, event_version, event_type,
/// payload`.
///
/// # Errors
/// [`Error::CorruptEvent`] for a record that does not read; [`Error::Database`] when not
/// even its position does.
pub(super) fn decode_replayed(record: &str, registry: &EventRegistry) -> Result<ReplayedEvent> {
    let mut fields = record.splitn(5, SEPARATOR);
    let mut next = || fields.next().unwrap_or_default();
    let position: u64 = next().parse().map_err(|_| Error::Database {
        operation: "replay_stream",
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: "a row without a readable global_position".into(),
    })?;
    let (version, event_version, event_type, payload) = (next(), next(), next(), next());
    let corrupt = |reason: String| Error::CorruptEvent {
        global_position: position,
        event_id: None,
        event_type: event_type.to_owned(),
        reason,
    };
    let version: u64 = version
        .parse()
        .map_err(|_| corrupt(format!("version `{version}` is not a stream version")))?;
    let event_version: u32 = if event_version.is_empty() {
        // A row written by eventsource-py: the schema version is in the payload.
        serde_json::from_str::<Value>(payload)
            .ok()
            .and_then(|json| json.get("event_version").and_then(Value::as_u64))
            .map_or(Ok(1), u32::try_from)
            .map_err(|_| corrupt("event_version in the payload is not a schema version".into()))?
    } else {
        event_version.parse().map_err(|_| {
            corrupt(format!(
                "event_version `{event_version}` is not a schema version"
            ))
        })?
    };
    let payload = registry.decode_str(position, event_type, event_version, payload)?;
    Ok(ReplayedEvent {
        global_position: position,
        version,
        payload,
    })
}

/// A timestamp as stored: ISO 8601 with microseconds and an explicit UTC offset, the
/// format of Python's `datetime.isoformat()`. Text order is time order.
pub(super) fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Parses ISO 8601 / RFC 3339 with an offset, or SQLite's `datetime('now')` format (UTC).
pub(super) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = parse_stored_timestamp(text) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

/// The format this library writes, `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, without the
/// general parser.
fn parse_stored_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 32
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if b[19] != b'.' || &b[26..] != b"+00:00" {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 26)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// Decodes one row; the position is returned even when the rest is corrupt, so a reader
/// can report it and move past it.
///
/// # Errors
/// The outer error is a database error (no readable position); the inner one is
/// [`Error::CorruptEvent`] for the row at that position.
pub(super) fn decode(row: &str, registry: &EventRegistry) -> Result<(u64, Result<StoredEvent>)> {
    let parts = split_row(row);
    let position: i64 = parts
        .and_then(|(position, _)| position.parse().ok())
        .ok_or_else(|| Error::Database {
            operation: "decode row",
            kind: crate::error::DatabaseErrorKind::Corrupt,
            source: "a row without a readable global_position".into(),
        })?;
    let position = u64::try_from(position).map_err(|_| Error::Database {
        operation: "decode row",
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: format!("negative global_position {position}").into(),
    })?;
    let envelope = parts.map_or("", |(_, rest)| rest);
    let event = decode_at(envelope, position, registry).map_err(|error| match error {
        // Name the event id in the error when that column at least reads.
        Error::CorruptEvent {
            global_position,
            event_type,
            reason,
            ..
        } => Error::CorruptEvent {
            global_position,
            event_id: envelope
                .split(SEPARATOR)
                .next()
                .and_then(|id| Uuid::parse_str(id).ok()),
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
    let event_type = packed.as_ref().map_or("", |p| p.fields[3]);
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

    let event_id = uuid(required(0)?, "event_id")?;
    let aggregate_id = uuid(required(1)?, "aggregate_id")?;
    let aggregate_type = required(2)?.to_owned();
    required(3)?;
    let tenant_id = optional_uuid(4)?;
    // NULL is written as U+001E, so that an empty actor id stays empty.
    let actor_id = match packed.fields[5] {
        "\u{1e}" => None,
        actor => Some(actor.to_owned()),
    };
    let version = required(6)?;
    let aggregate_version: u64 = version
        .parse()
        .map_err(|_| corrupt(format!("version `{version}` is not a stream version")))?;
    let event_timestamp = timestamp(7)?;
    let stored_at = timestamp(8)?;
    let event_version = match packed.optional(9) {
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
        correlation_id: optional_uuid(10)?,
        causation_id: optional_uuid(11)?,
        metadata: Map::new(),
    };
    match packed.optional(12) {
        Some(metadata) => {
            if metadata != "{}" {
                envelope.metadata = serde_json::from_str(metadata)
                    .map_err(|e| corrupt(format!("metadata is not a JSON object: {e}")))?;
            }
            envelope.event_version = event_version
                .and_then(|v| u32::try_from(v).ok())
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
    fn timestamps_round_trip_in_python_format() {
        let t = crate::envelope::now();
        let text = format_timestamp(t);
        assert!(text.ends_with("+00:00"), "{text}");
        assert_eq!(parse_timestamp(&text), Some(t));
    }

    #[test]
    fn the_fast_path_agrees_with_chrono() {
        for text in [
            "2024-02-29T23:59:59.999999+00:00",
            "1999-01-01T00:00:00.000000+00:00",
        ] {
            let fast = parse_stored_timestamp(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(
                fast,
                DateTime::parse_from_rfc3339(text)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            );
        }
        for not_ours in [
            "2024-02-30T00:00:00.000000+00:00",
            "2024-01-01T00:00:00.000000+01:00",
            "2024-01-01T00:00:00+00:00",
        ] {
            assert_eq!(parse_stored_timestamp(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn fields_split_at_every_separator_into_exactly_n() {
        assert_eq!(split_fields::<3>("a\u{1f}\u{1f}é"), Some(["a", "", "é"]));
        assert_eq!(split_fields::<3>("a\u{1f}b"), None);
        assert_eq!(split_fields::<2>("a\u{1f}b\u{1f}c"), None);
        assert_eq!(
            split_row("1\u{1f}x\u{1f}y\u{1f}{}"),
            Some(("1", "x\u{1f}y\u{1f}{}"))
        );
        assert_eq!(split_row("1{}"), None);
    }

    #[test]
    fn word_at_a_time_splitting_agrees_with_str_split() {
        // Separators at every offset of an eight-byte word, beside U+001E (one borrow away
        // from U+001F), U+009F-like multibyte text and the other control bytes.
        let pieces = [
            "",
            "a",
            "\u{1e}",
            "é",
            "0123456",
            "\u{1e}\u{1e}x",
            "\u{9f}",
            "\u{3f}",
        ];
        for len in 0..40 {
            for seed in 0..pieces.len() {
                let fields: Vec<String> = (0..4)
                    .map(|k| {
                        let piece = pieces[(seed + k * 3) % pieces.len()];
                        piece.repeat(1 + (len + k) % 5)
                    })
                    .collect();
                let text = format!("{}{}", "z".repeat(len), fields.join("\u{1f}"));
                let expected: Vec<&str> = text.split('\u{1f}').collect();
                assert_eq!(
                    split_fields::<4>(&text).map(Vec::from),
                    Some(expected),
                    "{text:?}"
                );
                assert_eq!(split_fields::<5>(&text), None, "{text:?}");
            }
        }
        assert_eq!(
            separators_in(u64::from_le_bytes(*b"\x1f\x1e\x1f\x9f\x00\x1f\xff\x3f")),
            0x8000_0080_0080
        );
    }

    #[test]
    fn packed_envelopes_split_into_thirteen_fields_and_the_payload() {
        let sep = SEPARATOR.to_string();
        let ok = [
            "a",
            "b",
            "Task",
            "Created",
            "",
            "\u{1e}",
            "1",
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
        assert_eq!(packed.fields[3], "Created");
        assert_eq!(packed.optional(4), None);
        assert_eq!(packed.payload, "{\"x\":1}");
        assert!(Packed::parse(&["a", "b"].join(&sep)).is_none());
        let extra = format!("{ok}{sep}x");
        assert!(
            Packed::parse(&extra).is_none(),
            "a separator inside a field is detected"
        );
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
