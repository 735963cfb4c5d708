//! Where a read's rows come from: the store's native reader (row by row, straight from
//! SQLite's buffers, see [`super::native`]), or, for `:memory:`, the sqlx pool (the
//! rows as one page value, see [`super::page`]). Either way a read is a [`PageText`] of
//! packed rows, decoded by one decoder, so both read exactly the same.

use std::io::Write as _;
use std::sync::Arc;

use rusqlite::types::ValueRef;
use sqlx::sqlite::SqlitePool;

use super::native::{native_error, Native};
use super::pack::{pack, separate, Pack};
use super::page::{self as page_text, Bind, PageQuery, PageText};
use super::replay_page::{self, ReplayRead};
use super::SqliteEventStore;
use crate::error::Result;

/// The bytes a native page starts with room for.
const PAGE_BYTES: usize = 512 * 1024;

/// The connections a read runs on.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Native(Arc<Native>),
    Pool(SqlitePool),
}

/// A read's query in its two forms: for the native reader, the plain columns of
/// `packing` and the position `n`; for the pool, the page value of `<packed row> AS r,
/// <position> AS n` (see [`PageQuery`]). Ordered by `n`, `order` being `ASC` or `DESC`.
#[derive(Debug)]
pub(super) struct SourceQuery {
    native: Arc<str>,
    packing: &'static [(&'static str, Pack)],
    page: PageQuery,
}

impl SourceQuery {
    /// The same query with `sql` for the native reader.
    pub(super) fn with_native(mut self, sql: &str) -> Self {
        self.native = Arc::from(sql);
        self
    }

    /// The query for the native reader.
    pub(super) fn native_sql(&self) -> &Arc<str> {
        &self.native
    }

    /// `packed` is the row packed in SQL, `columns` the select list of `packing`, and
    /// `tail` what follows the select list: `, <position> AS n FROM ... ORDER BY ...`.
    pub(super) fn new(
        packed: &str,
        columns: &str,
        packing: &'static [(&'static str, Pack)],
        tail: &str,
        order: &str,
    ) -> Self {
        SourceQuery {
            native: Arc::from(format!("SELECT {columns}{tail}")),
            packing,
            page: PageQuery::new(&format!("SELECT {packed} AS r{tail}"), order),
        }
    }
}

impl Source {
    pub(super) fn of(store: &SqliteEventStore) -> Self {
        match &store.native {
            Some(native) => Source::Native(native.clone()),
            None => Source::Pool(store.pool.clone()),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        match self {
            Source::Native(native) => native.is_closed(),
            Source::Pool(pool) => pool.is_closed(),
        }
    }

    /// Reads the rows of the replay query `query` with `binds` (see
    /// [`super::replay_page`]).
    ///
    /// # Errors
    /// [`crate::Error::StoreClosed`]; [`crate::Error::Database`] when the query fails.
    pub(super) async fn read_replay(
        &self,
        query: &SourceQuery,
        binds: Vec<Bind>,
        operation: &'static str,
    ) -> Result<ReplayRead> {
        match self {
            Source::Pool(pool) => page_text::read(pool, &query.page, &binds, operation)
                .await
                .map(ReplayRead::Text),
            Source::Native(native) => {
                let sql = query.native.clone();
                native
                    .read(operation, move |conn| {
                        replay_page::read(conn, &sql, &binds, operation)
                    })
                    .await
                    .map(ReplayRead::Native)
            }
        }
    }

    /// Reads the rows of `query` with `binds` as one page (decoded by the caller, on
    /// its own thread, while the next page is read).
    ///
    /// # Errors
    /// [`crate::Error::StoreClosed`]; [`crate::Error::Database`] when the query fails.
    pub(super) async fn read(
        &self,
        query: &SourceQuery,
        binds: Vec<Bind>,
        operation: &'static str,
    ) -> Result<PageText> {
        match self {
            Source::Pool(pool) => page_text::read(pool, &query.page, &binds, operation).await,
            Source::Native(native) => {
                let (sql, packing) = (query.native.clone(), query.packing);
                native
                    .read(operation, move |conn| {
                        read_rows(conn, &sql, packing, &binds, operation)
                    })
                    .await
            }
        }
    }
}

/// The rows of `sql` on a native connection (the columns of `packing`, then the
/// position), each packed as SQLite steps into one length-prefixed page.
fn read_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    packing: &[(&str, Pack)],
    binds: &[Bind],
    operation: &'static str,
) -> Result<PageText> {
    let error = native_error(operation);
    let mut statement = bound(conn, sql, binds, operation)?;
    let mut rows = statement.raw_query();
    // Room for a default page of 1,000 rows of a few hundred bytes: growing the buffer
    // as the rows come would copy it several times over.
    let mut page = Vec::with_capacity(PAGE_BYTES);
    let mut record = Vec::with_capacity(512);
    let (mut len, mut last) = (0, None);
    while let Some(row) = rows.next().map_err(&error)? {
        record.clear();
        for (i, (_, how)) in packing.iter().enumerate() {
            if i > 0 {
                separate(&mut record);
            }
            pack(row.get_ref(i).map_err(&error)?, *how, &mut record);
        }
        // Writing into a Vec cannot fail.
        let _ = write!(page, "{},", record.len());
        page.extend_from_slice(&record);
        len += 1;
        last = match row.get_ref(packing.len()).map_err(&error)? {
            ValueRef::Integer(n) => Some(n),
            _ => None,
        };
    }
    Ok(PageText::length_prefixed(page, len, last))
}

/// The cached statement of `sql` on a native connection, with `binds` bound in order.
///
/// # Errors
/// [`crate::Error::Database`] when it does not prepare or a parameter does not bind.
pub(super) fn bound<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    binds: &[Bind],
    operation: &'static str,
) -> Result<rusqlite::CachedStatement<'c>> {
    let error = native_error(operation);
    let mut statement = conn.prepare_cached(sql).map_err(&error)?;
    for (i, bind) in binds.iter().enumerate() {
        match bind {
            Bind::Text(text) => statement.raw_bind_parameter(i + 1, text.as_str()),
            Bind::Int(int) => statement.raw_bind_parameter(i + 1, int),
        }
        .map_err(&error)?;
    }
    Ok(statement)
}
