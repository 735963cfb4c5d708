//! What can be told of a packed row whose bytes are not all UTF-8: its position, its
//! version, and which columns do not read.

use uuid::Uuid;

use super::fields::SEPARATOR;
use crate::error::{Error, Result};
use crate::store::capped;

/// The columns of a page row in their packed order: the position, the envelope
/// (see `row::PACKED`), the payload.
pub(super) const PAGE_COLUMNS: [&str; 15] = [
    "global_position",
    "version",
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "tenant_id",
    "actor_id",
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
    let stored: i64 = text(0)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| Error::Database {
            operation: "decode row",
            kind: crate::error::DatabaseErrorKind::Corrupt,
            source: "a row without a readable global_position".into(),
        })?;
    // A row at a position below 1 (another tool's) is reported at 0.
    let position = u64::try_from(stored).unwrap_or(0);
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
