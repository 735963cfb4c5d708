//! Packing a row's columns in Rust, byte for byte as the SQL select lists of
//! [`super::row`] pack them with `printf` (U+001F between fields), for the native reader
//! ([`super::source`]): it reads the plain columns, which SQLite hands over without
//! formatting anything, and one decoder ([`super::row::decode`], with its handling of
//! rows written by other tools) serves both ways of reading.
//!
//! Where the SQL packing loses information, this one keeps it: `printf`'s `%s` ends a
//! value at its first NUL, so a payload or an id holding one read cut short; here the
//! whole value is packed, and such a row fails to decode instead of reading as
//! something it is not.

use std::collections::HashSet;
use std::io::Write as _;

use rusqlite::types::ValueRef;

use super::fields::SEPARATOR;

/// How a column is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pack {
    /// As text: NULL as nothing, numbers in decimal.
    Plain,
    /// An integer in decimal; anything else as its type and SQL literal (`text 'five'`),
    /// as `row::VERSION_TEXT`.
    Version,
    /// A name: one holding NUL as `row::HOLDS_NUL`.
    Name,
    /// An actor id: as a name, and NULL as U+001E (an empty actor id stays empty).
    Actor,
}

/// The columns of a page row (see `row::PACKED`), in their packed order.
pub(super) const PAGE: [(&str, Pack); 15] = [
    ("global_position", Pack::Plain),
    ("version", Pack::Version),
    ("event_id", Pack::Plain),
    ("aggregate_id", Pack::Plain),
    ("aggregate_type", Pack::Name),
    ("event_type", Pack::Name),
    ("tenant_id", Pack::Plain),
    ("actor_id", Pack::Actor),
    ("timestamp", Pack::Plain),
    ("created_at", Pack::Plain),
    ("event_version", Pack::Plain),
    ("correlation_id", Pack::Plain),
    ("causation_id", Pack::Plain),
    ("metadata", Pack::Plain),
    ("payload", Pack::Plain),
];

/// The columns of a `replay_stream` row, in their packed order.
pub(super) const REPLAY: [(&str, Pack); 5] = [
    ("global_position", Pack::Plain),
    ("version", Pack::Version),
    ("event_version", Pack::Plain),
    ("event_type", Pack::Name),
    ("payload", Pack::Plain),
];

/// What a name holding NUL is packed as (see `row::HOLDS_NUL`).
const HOLDS_NUL: &[u8] = "\u{1e}NUL".as_bytes();

/// The select list of `columns` for an `events` table with the columns `present`: a
/// column the table lacks (an eventsource-py table not initialized) reads as NULL.
pub(super) fn select_list(columns: &[(&str, Pack)], present: &HashSet<String>) -> String {
    columns
        .iter()
        .map(|(name, _)| {
            if present.is_empty() || present.contains(*name) {
                *name
            } else {
                "NULL"
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends the packed form of `value` to `out`.
pub(super) fn pack(value: ValueRef<'_>, how: Pack, out: &mut Vec<u8>) {
    match (how, value) {
        (Pack::Version, ValueRef::Integer(i)) => push_integer(out, i),
        (Pack::Version, other) => push_literal(out, other),
        (Pack::Name | Pack::Actor, ValueRef::Text(bytes) | ValueRef::Blob(bytes))
            if bytes.contains(&0) =>
        {
            out.extend_from_slice(HOLDS_NUL);
        }
        (Pack::Actor, ValueRef::Null) => out.extend_from_slice("\u{1e}".as_bytes()),
        (_, ValueRef::Null) => {}
        (_, ValueRef::Integer(i)) => push_integer(out, i),
        (_, ValueRef::Real(f)) => push_real(out, f),
        (_, ValueRef::Text(bytes) | ValueRef::Blob(bytes)) => out.extend_from_slice(bytes),
    }
}

/// Appends the separator between two fields.
pub(super) fn separate(out: &mut Vec<u8>) {
    out.push(SEPARATOR as u8);
}

fn push_integer(out: &mut Vec<u8>, i: i64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{i}");
}

fn push_real(out: &mut Vec<u8>, f: f64) {
    let _ = write!(out, "{f:?}");
}

/// `typeof(value) || ' ' || quote(value)`, as SQLite writes it.
fn push_literal(out: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.extend_from_slice(b"null NULL"),
        ValueRef::Integer(i) => {
            out.extend_from_slice(b"integer ");
            push_integer(out, i);
        }
        ValueRef::Real(f) => {
            out.extend_from_slice(b"real ");
            push_real(out, f);
        }
        ValueRef::Text(bytes) => {
            out.extend_from_slice(b"text '");
            for &b in bytes {
                if b == b'\'' {
                    out.push(b'\'');
                }
                out.push(b);
            }
            out.push(b'\'');
        }
        ValueRef::Blob(bytes) => {
            out.extend_from_slice(b"blob X'");
            for b in bytes {
                let _ = write!(out, "{b:02X}");
            }
            out.push(b'\'');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(value: ValueRef<'_>, how: Pack) -> String {
        let mut out = Vec::new();
        pack(value, how, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn columns_pack_as_the_sql_select_list_packs_them() {
        assert_eq!(packed(ValueRef::Integer(42), Pack::Version), "42");
        assert_eq!(
            packed(ValueRef::Text(b"it's"), Pack::Version),
            "text 'it''s'"
        );
        assert_eq!(packed(ValueRef::Real(2.5), Pack::Version), "real 2.5");
        assert_eq!(packed(ValueRef::Blob(b"5"), Pack::Version), "blob X'35'");
        assert_eq!(packed(ValueRef::Null, Pack::Version), "null NULL");
        assert_eq!(packed(ValueRef::Null, Pack::Plain), "");
        assert_eq!(packed(ValueRef::Null, Pack::Actor), "\u{1e}");
        assert_eq!(packed(ValueRef::Text(b""), Pack::Actor), "");
        assert_eq!(packed(ValueRef::Text(b"a\0b"), Pack::Name), "\u{1e}NUL");
        assert_eq!(packed(ValueRef::Integer(-7), Pack::Plain), "-7");
        assert_eq!(packed(ValueRef::Text(b"x\0y"), Pack::Plain), "x\0y");
    }

    #[test]
    fn a_missing_column_reads_as_null() {
        let present: HashSet<String> = ["global_position", "version", "payload"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            select_list(&REPLAY, &present),
            "global_position, version, NULL, NULL, payload"
        );
        assert_eq!(
            select_list(&REPLAY, &HashSet::new()),
            "global_position, version, event_version, event_type, payload"
        );
    }
}
