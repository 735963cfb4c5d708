//! Replay pages: the rows of one `replay_stream` query, as the pool reads them (one
//! packed page value, see [`super::page`]) or as the native reader reads them.
//!
//! The native reader keeps each ordinary row as its typed columns: integer position and
//! version, an integer or NULL `event_version`, and an event type and payload that are
//! UTF-8 text (the type holding neither NUL nor U+001F). That is every row this crate
//! writes, and eventsource-py's: nothing is formatted as text to be parsed back. Any other
//! row (another tool's: a version stored as text, a BLOB, bytes that are not UTF-8) is
//! packed exactly as before ([`super::pack`]) and decoded by the same decoder, so it
//! reads, or fails, exactly as it did.

use std::ops::Range;
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use rusqlite::types::ValueRef;

use super::native::native_error;
use super::pack::{pack, separate, REPLAY};
use super::page::{Bind, PageText, Record};
use super::replay_row::{self, Column, ReplayColumns};
use super::source::bound;
use super::unreadable::{self, unreadable};
use crate::error::{DatabaseErrorKind, Error, Result};
use crate::registry::EventRegistry;
use crate::store::ReplayedEvent;

/// The rows of one replay query.
#[derive(Debug)]
pub(super) enum ReplayRead {
    /// As the pool reads them.
    Text(PageText),
    /// As the native reader reads them.
    Native(ReplayPage),
}

impl ReplayRead {
    /// How many rows the query returned.
    pub(super) fn len(&self) -> usize {
        match self {
            ReplayRead::Text(page) => page.len,
            ReplayRead::Native(page) => page.rows.len(),
        }
    }

    /// The version of the last row, when it is an integer (the next page's cursor).
    pub(super) fn last(&self) -> Option<i64> {
        match self {
            ReplayRead::Text(page) => page.last,
            ReplayRead::Native(page) => page.last,
        }
    }

    /// The events of the rows, in the order read (not yet put in version order, nor
    /// expanded by split upcasters); the first row that does not read fails them.
    pub(super) fn decode(&self, registry: &EventRegistry) -> Result<Vec<ReplayedEvent>> {
        match self {
            ReplayRead::Text(page) => page
                .records()
                .map(|r| decode_record(r?, registry))
                .collect(),
            ReplayRead::Native(page) => page
                .rows
                .iter()
                .map(|row| page.decode_row(row, registry))
                .collect(),
        }
    }
}

/// A packed replay record.
fn decode_record(record: Record<'_>, registry: &EventRegistry) -> Result<ReplayedEvent> {
    match record {
        Record::Text(r) => replay_row::decode_packed(r, registry),
        Record::NotUtf8(r) => Err(unreadable(r, &unreadable::REPLAY_COLUMNS)?.error),
    }
}

/// A replay page as the native reader reads it.
#[derive(Debug)]
pub(super) struct ReplayPage {
    /// The event types and payloads of the typed rows, one after the other.
    text: String,
    /// The packed records of the other rows.
    packed: Vec<u8>,
    rows: Vec<Row>,
    last: Option<i64>,
}

/// One row of a [`ReplayPage`].
#[derive(Debug)]
enum Row {
    /// An ordinary row: its numbers, and where its type and payload are in `text`.
    Typed {
        position: i64,
        version: i64,
        /// `None` for NULL.
        event_version: Option<i64>,
        event_type: Range<usize>,
        payload: Range<usize>,
    },
    /// Any other row: where its packed record is in `packed`.
    Packed(Range<usize>),
}

impl ReplayPage {
    fn decode_row(&self, row: &Row, registry: &EventRegistry) -> Result<ReplayedEvent> {
        match row {
            Row::Typed {
                position,
                version,
                event_version,
                event_type,
                payload,
            } => {
                let text = |range: &Range<usize>| {
                    self.text.get(range.clone()).ok_or_else(|| Error::Database {
                        operation: "replay_stream",
                        kind: DatabaseErrorKind::Other,
                        source: "a replay page's row is not where it was put".into(),
                    })
                };
                let columns = ReplayColumns {
                    position: *position,
                    version: Column::Int(*version),
                    event_version: event_version.map_or(Column::Text(""), Column::Int),
                    event_type: text(event_type)?,
                    payload: text(payload)?,
                };
                replay_row::decode(columns, registry)
            }
            Row::Packed(range) => {
                let bytes = self.packed.get(range.clone()).unwrap_or_default();
                decode_record(Record::of(bytes), registry)
            }
        }
    }
}

/// The columns of an ordinary row (see the module doc), `None` for any other.
fn ordinary<'r>(values: &[ValueRef<'r>; 5]) -> Option<(i64, i64, Option<i64>, &'r str, &'r str)> {
    let [ValueRef::Integer(position), ValueRef::Integer(version), event_version, ValueRef::Text(event_type), ValueRef::Text(payload)] =
        *values
    else {
        return None;
    };
    let event_version = match event_version {
        ValueRef::Integer(v) => Some(v),
        ValueRef::Null => None,
        _ => return None,
    };
    // The packed form would read a type holding U+001F as two fields, and one holding
    // NUL as `row::HOLDS_NUL`: such rows are packed, to read as they always have.
    if event_type.iter().any(|b| *b == 0 || *b == 0x1f) {
        return None;
    }
    let event_type = std::str::from_utf8(event_type).ok()?;
    let payload = std::str::from_utf8(payload).ok()?;
    Some((position, version, event_version, event_type, payload))
}

/// The rows of the replay query `sql` (the columns of [`REPLAY`]; the version is the
/// cursor) on a native connection.
pub(super) fn read(
    conn: &rusqlite::Connection,
    sql: &str,
    binds: &[Bind],
    operation: &'static str,
) -> Result<ReplayPage> {
    let error = native_error(operation);
    let mut statement = bound(conn, sql, binds, operation)?;
    let mut rows = statement.raw_query();
    let mut page = ReplayPage {
        text: String::with_capacity(128 * 1024),
        packed: Vec::new(),
        rows: Vec::with_capacity(1000),
        last: None,
    };
    while let Some(row) = rows.next().map_err(&error)? {
        let values = [
            row.get_ref(0).map_err(&error)?,
            row.get_ref(1).map_err(&error)?,
            row.get_ref(2).map_err(&error)?,
            row.get_ref(3).map_err(&error)?,
            row.get_ref(4).map_err(&error)?,
        ];
        let read = match ordinary(&values) {
            Some((position, version, event_version, event_type, payload)) => {
                let mut put = |text: &str| {
                    let start = page.text.len();
                    page.text.push_str(text);
                    start..page.text.len()
                };
                Row::Typed {
                    position,
                    version,
                    event_version,
                    event_type: put(event_type),
                    payload: put(payload),
                }
            }
            None => {
                let start = page.packed.len();
                for (i, (value, (_, how))) in values.iter().zip(REPLAY).enumerate() {
                    if i > 0 {
                        separate(&mut page.packed);
                    }
                    pack(*value, how, &mut page.packed);
                }
                Row::Packed(start..page.packed.len())
            }
        };
        page.rows.push(read);
        page.last = match values[1] {
            ValueRef::Integer(n) => Some(n),
            _ => None,
        };
    }
    Ok(page)
}

/// The queries of a replay's pages: the SQL and binds of the page after a cursor (`None`
/// for the first page), and where the page after a page starts.
pub(super) struct Pages<S, B, N> {
    pub(super) sql: S,
    pub(super) binds: B,
    pub(super) next: N,
}

/// Reads the replay's pages from `cursor` on, one after the other on `conn`, sending each
/// to `sent` for as long as the page before has been taken. Returns the page it holds
/// when it has not (the caller is behind), `None` when the replay is read or nobody takes
/// pages any more.
///
/// # Errors
/// [`Error::Database`] when a page's query fails (the pages sent before it stand).
pub(super) fn read_ahead<S, B, N>(
    conn: &rusqlite::Connection,
    mut cursor: Option<u64>,
    pages: &Pages<S, B, N>,
    sent: &mpsc::Sender<ReplayRead>,
    operation: &'static str,
) -> Result<Option<ReplayRead>>
where
    S: Fn(Option<u64>) -> Arc<str>,
    B: Fn(Option<u64>) -> Vec<Bind>,
    N: Fn(&ReplayRead) -> Option<u64>,
{
    loop {
        let page = read(
            conn,
            &(pages.sql)(cursor),
            &(pages.binds)(cursor),
            operation,
        )?;
        let page = ReplayRead::Native(page);
        let after = (pages.next)(&page);
        match sent.try_send(page) {
            Ok(()) => match after {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            },
            Err(TrySendError::Full(page)) => return Ok(Some(page)),
            Err(TrySendError::Closed(_)) => return Ok(None),
        }
    }
}
