//! Pages of rows read as one text value: the SQL that builds the value, how its rows are
//! told apart, and the read that falls back to a safe framing when they cannot be.
//!
//! sqlx hands every row from SQLite's worker thread to the caller through a channel, and
//! copies every value: a page as one value costs one hand-over instead of one per row.

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqlitePool};
use sqlx::Row;

use super::{db_error, fields};
use crate::error::{Error, Result};

/// The separator of the rows of a [`Framing::Separated`] page (U+001D, the ASCII group
/// separator).
const ROW_SEPARATOR: char = '\u{1d}';

/// How the rows of a page value are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Joined with U+001D. The cheap form (about a third less time per page than
    /// length prefixes, which SQLite builds by copying every row twice more); right
    /// unless a value holds U+001D, which [`read`] detects.
    Separated,
    /// Each row prefixed by its length in bytes and a comma: right whatever the values
    /// hold.
    LengthPrefixed,
}

/// The two forms of a page query over `inner`, whose select list is `<packed row> AS r,
/// <position> AS n`, ordered by `n` `ASC` or `DESC`. Each returns the rows as one text
/// value (NULL when there are none), the number of rows, and the last row's `n` (the
/// next page's cursor).
///
/// `group_concat` takes the rows in the order the subquery yields them; SQLite does not
/// promise that order, and an `ORDER BY` inside `group_concat` sorts every page again
/// through a temporary B-tree (a quarter of a `read_all`). So readers put the decoded
/// rows [`in_order`] instead, which costs a check when they are in order already.
#[derive(Debug)]
pub(super) struct PageQuery {
    separated: String,
    length_prefixed: String,
}

impl PageQuery {
    pub(super) fn new(inner: &str, order: &str) -> Self {
        let last = if order == "DESC" { "min" } else { "max" };
        let rest = format!("count(*), {last}(n) FROM ({inner})");
        PageQuery {
            separated: format!("SELECT group_concat(r, char(29)), {rest}"),
            length_prefixed: format!(
                "SELECT group_concat(octet_length(r) || ',' || r, ''), {rest}"
            ),
        }
    }

    fn sql(&self, framing: Framing) -> &str {
        match framing {
            Framing::Separated => &self.separated,
            Framing::LengthPrefixed => &self.length_prefixed,
        }
    }
}

/// A page value as read: its bytes, its framing, how many rows SQLite counted, and the
/// last row's position.
#[derive(Debug)]
pub(super) struct PageText {
    body: Body,
    framing: Framing,
    pub(super) len: usize,
    pub(super) last: Option<i64>,
}

/// The bytes of a page: text (the rule), or bytes that are not all UTF-8 (a column of a
/// row written by another tool, or as a BLOB), split into rows one by one so that only
/// the rows holding them are unreadable.
#[derive(Debug)]
enum Body {
    Text(String),
    Bytes(Vec<u8>),
}

impl Body {
    fn from_bytes(bytes: Vec<u8>) -> Self {
        String::from_utf8(bytes).map_or_else(|e| Body::Bytes(e.into_bytes()), Body::Text)
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Text(text) => text.as_bytes(),
            Body::Bytes(bytes) => bytes,
        }
    }
}

/// One row of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Record<'a> {
    /// Its packed text.
    Text(&'a str),
    /// Its bytes, which are not UTF-8: see [`super::unreadable::unreadable`].
    NotUtf8(&'a [u8]),
}

impl<'a> Record<'a> {
    pub(super) fn of(bytes: &'a [u8]) -> Self {
        std::str::from_utf8(bytes).map_or(Record::NotUtf8(bytes), Record::Text)
    }
}

impl PageText {
    /// A page of length-prefixed records packed in Rust (by the native reader).
    pub(super) fn length_prefixed(bytes: Vec<u8>, len: usize, last: Option<i64>) -> Self {
        PageText {
            body: Body::from_bytes(bytes),
            framing: Framing::LengthPrefixed,
            len,
            last,
        }
    }

    #[cfg(test)]
    fn new(text: &str, framing: Framing, len: usize) -> Self {
        PageText {
            body: Body::Text(text.to_owned()),
            framing,
            len,
            last: None,
        }
    }

    /// A page of these bytes, as SQLite could return it.
    #[cfg(test)]
    pub(super) fn from_bytes(bytes: Vec<u8>, framing: Framing, len: usize) -> Self {
        PageText {
            body: Body::from_bytes(bytes),
            framing,
            len,
            last: None,
        }
    }

    /// `true` when splitting the text at U+001D finds exactly the rows SQLite counted:
    /// no value holds U+001D. Always `true` for length-prefixed pages.
    fn rows_tell_apart(&self) -> bool {
        let bytes = self.body.as_bytes();
        match self.framing {
            Framing::LengthPrefixed => true,
            Framing::Separated if self.len == 0 => bytes.is_empty(),
            Framing::Separated => count_byte(bytes, ROW_SEPARATOR as u8) + 1 == self.len,
        }
    }

    /// The packed rows of the page.
    ///
    /// # Errors
    /// [`Error::Database`] when a length-prefixed value is not length-prefixed records.
    pub(super) fn records(&self) -> Box<dyn Iterator<Item = Result<Record<'_>>> + Send + '_> {
        match (self.framing, &self.body) {
            (Framing::Separated, _) if self.len == 0 => Box::new(std::iter::empty()),
            (Framing::Separated, Body::Text(text)) => {
                Box::new(text.split(ROW_SEPARATOR).map(|r| Ok(Record::Text(r))))
            }
            (Framing::Separated, Body::Bytes(bytes)) => Box::new(
                bytes
                    .split(|b| *b == ROW_SEPARATOR as u8)
                    .map(|r| Ok(Record::of(r))),
            ),
            (Framing::LengthPrefixed, body) => Box::new(length_prefixed(body.as_bytes())),
        }
    }
}

/// A bound parameter of a dynamically built query.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Text(String),
    Int(i64),
}

/// `query` with `binds` bound, in order.
fn bind_all<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments<'q>>,
    binds: &[Bind],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    query
}

/// Reads a page: separated first and, when a value holds U+001D (the rows found are not
/// the rows counted), once more length-prefixed. `binds` are the parameters of the inner
/// query.
///
/// # Errors
/// [`Error::Database`] when a query fails.
pub(super) async fn read(
    pool: &SqlitePool,
    query: &PageQuery,
    binds: &[Bind],
    operation: &'static str,
) -> Result<PageText> {
    let page = run(pool, query, binds, Framing::Separated, operation).await?;
    if page.rows_tell_apart() {
        return Ok(page);
    }
    tracing::debug!(
        operation,
        "a value holds U+001D: reading the page again with length-prefixed rows"
    );
    run(pool, query, binds, Framing::LengthPrefixed, operation).await
}

async fn run(
    pool: &SqlitePool,
    query: &PageQuery,
    binds: &[Bind],
    framing: Framing,
    operation: &'static str,
) -> Result<PageText> {
    let row = bind_all(sqlx::query(query.sql(framing)), binds)
        .fetch_one(pool)
        .await
        .map_err(db_error(operation))?;
    // As bytes: a value that is not UTF-8 makes its row unreadable, not the page.
    let bytes: Option<Vec<u8>> = row.try_get(0).map_err(db_error(operation))?;
    let len: i64 = row.try_get(1).map_err(db_error(operation))?;
    // An integer on every paged read (their filters keep only rows at integer
    // positions); `None` for a read of a whole stream ordered by versions that another
    // tool stored as text, which needs no cursor.
    let last: Option<i64> = row.try_get(2).unwrap_or(None);
    Ok(PageText {
        body: Body::from_bytes(bytes.unwrap_or_default()),
        framing,
        len: usize::try_from(len).unwrap_or_default(),
        last,
    })
}

/// How many times `byte` occurs in `text`, counted eight bytes at a time.
fn count_byte(text: &[u8], byte: u8) -> usize {
    let mut chunks = text.chunks_exact(8);
    let mut count = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        count += fields::bytes_equal(u64::from_le_bytes(word), byte).count_ones() as usize;
    }
    count + chunks.remainder().iter().filter(|&&b| b == byte).count()
}

/// The records of a length-prefixed page value.
fn length_prefixed(page: &[u8]) -> impl Iterator<Item = Result<Record<'_>>> + Send + '_ {
    let mut rest = page;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let malformed = || Error::Database {
            operation: "decode page",
            kind: crate::error::DatabaseErrorKind::Corrupt,
            source: "a page of rows is not length-prefixed records".into(),
        };
        let record = rest.iter().position(|b| *b == b',').and_then(|comma| {
            let len: usize = std::str::from_utf8(&rest[..comma]).ok()?.parse().ok()?;
            let tail = &rest[comma + 1..];
            let record = tail.get(..len)?;
            rest = &tail[len..];
            Some(Record::of(record))
        });
        Some(record.ok_or_else(|| {
            rest = &[];
            malformed()
        }))
    })
}

/// `rows` ordered by `key` (ascending, or descending when `descending`): as they are
/// when already so, sorted otherwise. See [`PageQuery`].
pub(super) fn in_order<T>(mut rows: Vec<T>, key: impl Fn(&T) -> u64, descending: bool) -> Vec<T> {
    let ordered = if descending {
        rows.is_sorted_by(|a, b| key(a) >= key(b))
    } else {
        rows.is_sorted_by_key(&key)
    };
    if !ordered {
        if descending {
            rows.sort_by_key(|row| std::cmp::Reverse(key(row)));
        } else {
            rows.sort_by_key(key);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_put_in_order_whatever_order_they_came_in() {
        let key = |row: &(u64, char)| row.0;
        let ordered = vec![(1, 'a'), (2, 'b'), (5, 'c')];
        assert_eq!(in_order(ordered.clone(), key, false), ordered);
        assert_eq!(
            in_order(vec![(5, 'c'), (1, 'a'), (2, 'b')], key, false),
            ordered
        );
        let descending = vec![(5, 'c'), (2, 'b'), (1, 'a')];
        assert_eq!(in_order(descending.clone(), key, true), descending);
        assert_eq!(in_order(ordered, key, true), descending);
    }

    #[test]
    fn pages_split_into_length_prefixed_records() {
        let page = PageText::new("3,abc0,5,é\u{1f}x,", Framing::LengthPrefixed, 3);
        let split: Vec<_> = page.records().collect::<Result<_>>().unwrap();
        assert_eq!(
            split,
            [
                Record::Text("abc"),
                Record::Text(""),
                Record::Text("é\u{1f}x,")
            ]
        );
        for bad in ["3,ab", "x,abc", "abc", "1,é"] {
            let page = PageText::new(bad, Framing::LengthPrefixed, 1);
            let items: Vec<_> = page.records().collect();
            assert!(
                matches!(items.last(), Some(Err(Error::Database { .. }))),
                "{bad}: {items:?}"
            );
        }
    }

    #[test]
    fn bytes_are_counted_at_every_offset() {
        for len in 0..40 {
            let text: String = (0..len)
                .map(|i| ['\u{1d}', 'a', '\u{1c}', 'é', '\u{1e}'][i % 5])
                .collect();
            let expected = text.bytes().filter(|&b| b == 0x1d).count();
            assert_eq!(count_byte(text.as_bytes(), 0x1d), expected, "{text:?}");
        }
    }

    #[test]
    fn separated_pages_tell_their_rows_apart_only_when_no_value_holds_the_separator() {
        let page = PageText::new("1\u{1f}a\u{1d}2\u{1f}é", Framing::Separated, 2);
        assert!(page.rows_tell_apart());
        let split: Vec<_> = page.records().collect::<Result<_>>().unwrap();
        assert_eq!(split, [Record::Text("1\u{1f}a"), Record::Text("2\u{1f}é")]);

        let empty = PageText::new("", Framing::Separated, 0);
        assert!(empty.rows_tell_apart());
        assert_eq!(empty.records().count(), 0);

        // Two rows, one of which holds U+001D: three pieces, not two.
        let held = PageText::new("1\u{1f}a\u{1d}b\u{1d}2\u{1f}c", Framing::Separated, 2);
        assert!(!held.rows_tell_apart());
        // A single row that is empty text is one (unreadable) record, not "no rows".
        let blank = PageText::new("", Framing::Separated, 1);
        assert!(blank.rows_tell_apart());
        assert_eq!(blank.records().count(), 1);
    }

    #[test]
    fn bytes_that_are_not_utf8_spoil_their_row_only() {
        let mut bytes = b"1\x1fa\x1d2\x1f".to_vec();
        bytes.extend([0xff, 0xfe]);
        bytes.extend(b"\x1d3\x1fc");
        for framing in [Framing::Separated, Framing::LengthPrefixed] {
            let body = match framing {
                Framing::Separated => bytes.clone(),
                Framing::LengthPrefixed => bytes
                    .split(|b| *b == 0x1d)
                    .flat_map(|r| [format!("{},", r.len()).into_bytes(), r.to_vec()].concat())
                    .collect(),
            };
            let page = PageText {
                body: Body::from_bytes(body),
                framing,
                len: 3,
                last: None,
            };
            assert!(page.rows_tell_apart());
            let split: Vec<_> = page.records().collect::<Result<_>>().unwrap();
            assert_eq!(
                split,
                [
                    Record::Text("1\u{1f}a"),
                    Record::NotUtf8(&[b'2', 0x1f, 0xff, 0xfe]),
                    Record::Text("3\u{1f}c"),
                ],
                "{framing:?}"
            );
        }
    }
}
