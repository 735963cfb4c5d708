//! The store's own connections to a SQLite file, on rusqlite: one writer for appends and
//! a few readers for the paged reads and replays (the hot paths).
//!
//! sqlx runs every statement of a SQLite connection on that connection's worker thread
//! and hands each one over and back through channels: an append of five statements paid
//! ten hand-overs between threads, which cost more than SQLite's own work. Here an
//! operation is one call into SQLite:
//!
//! - **Appends run on the caller's thread** when the writer connection is free and the
//!   database's write lock can be taken at once (`BEGIN IMMEDIATE` with no busy wait),
//!   which is the rule for a store with one process writing: no hand-over at all. When
//!   the lock is held (by another process, or a long transaction of a read model), the
//!   append goes to tokio's blocking pool and waits there, up to the busy timeout, so
//!   that no runtime thread ever sleeps on a lock. A group larger than
//!   [`INLINE_EVENTS`] goes to the blocking pool too: it is long enough to be worth a
//!   thread of its own.
//! - **Reads run in the blocking pool**, one hand-over per page of rows (a thousand by
//!   default), and decode their rows there, straight from SQLite's buffers.
//!
//! sqlx's pool stays for everything else (read models' transactions, checkpoints, the
//! outbox, snapshots, dead letters), on the same file: SQLite's locks order the two, in
//! one process as across processes. A `:memory:` database lives in its one sqlx
//! connection and has no native connections.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::error::{DatabaseErrorKind, Error, Result};
use crate::store::sql::sqlite_error_kind;

/// A group of appends of at most this many events is written on the caller's thread
/// (when the write lock is free); a larger one in the blocking pool.
pub(super) const INLINE_EVENTS: usize = 256;

/// Prepared statements kept per connection (rusqlite's cache is keyed by SQL text).
const STATEMENT_CACHE: usize = 64;

/// How the native connections open the database.
#[derive(Debug, Clone)]
pub(super) struct NativeOptions {
    pub(super) path: PathBuf,
    pub(super) read_only: bool,
    pub(super) wal: bool,
    pub(super) busy_timeout: Duration,
    pub(super) cache_kib: u32,
    /// The user's pragmas ([`super::SqliteStoreOptions::pragma`]), checked already.
    pub(super) pragmas: Vec<(String, String)>,
    pub(super) readers: usize,
}

/// The native connections of a store (see the module documentation).
pub(super) struct Native {
    options: NativeOptions,
    /// The writer; `None` once closed (or for a read-only store).
    writer: Mutex<Option<Connection>>,
    /// Reader connections not in use.
    idle_readers: Mutex<Vec<Connection>>,
    /// Bounds the readers open at once (and so their page caches).
    reader_permits: Semaphore,
    closed: AtomicBool,
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native")
            .field("path", &self.options.path)
            .field("closed", &self.closed.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

/// Maps a rusqlite error to [`Error`], as [`crate::store::sql::db_error`] does sqlx's.
pub(super) fn native_error(operation: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::Database {
        operation,
        kind: native_error_kind(&e),
        source: Box::new(e),
    }
}

fn native_error_kind(error: &rusqlite::Error) -> DatabaseErrorKind {
    match error {
        rusqlite::Error::SqliteFailure(e, _) => sqlite_error_kind(e.extended_code),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnType(..) => DatabaseErrorKind::Corrupt,
        _ => DatabaseErrorKind::Other,
    }
}

/// `true` when `error` is a rusqlite violation of a unique key (or primary key).
pub(super) fn is_native_unique_violation(error: &Error) -> bool {
    // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
    matches!(error, Error::Database { source, .. }
    if source.downcast_ref::<rusqlite::Error>().is_some_and(|e| matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == 2067 || f.extended_code == 1555
    )))
}

fn is_busy(error: &rusqlite::Error) -> bool {
    native_error_kind(error) == DatabaseErrorKind::Busy
}

impl Native {
    /// Opens the writer (unless read-only); readers open when first needed.
    ///
    /// # Errors
    /// [`Error::Connection`] when the file cannot be opened.
    pub(super) fn open(options: NativeOptions) -> Result<Self> {
        let writer = if options.read_only {
            None
        } else {
            Some(connect(&options).map_err(|e| Error::Connection {
                database: options.path.display().to_string(),
                source: Box::new(e),
            })?)
        };
        Ok(Native {
            reader_permits: Semaphore::new(options.readers.max(1)),
            options,
            writer: Mutex::new(writer),
            idle_readers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// Closes every connection not in use now; those in use close when handed back.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reader_permits.close();
        drop(
            self.writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        self.idle_readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// `true` once [`close`](Self::close) was called.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::StoreClosed)
        } else {
            Ok(())
        }
    }

    /// Runs `work` on the writer on this thread, inside a transaction begun with `BEGIN
    /// IMMEDIATE` without waiting: `None` when the writer is in use or the database's
    /// write lock is held elsewhere (nothing was done). `work` runs with the busy
    /// timeout restored, so a statement after the `BEGIN` waits as usual.
    pub(super) fn write_now<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&mut Connection) -> T,
    ) -> Option<Result<T>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let mut guard = self.writer.try_lock().ok()?;
        let conn = guard.as_mut()?;
        if let Err(error) = leave_transaction(conn) {
            return Some(Err(native_error(operation)(error)));
        }
        let begun = conn
            .busy_timeout(Duration::ZERO)
            .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"));
        if let Err(error) = conn.busy_timeout(self.options.busy_timeout) {
            return Some(Err(native_error(operation)(error)));
        }
        match begun {
            Ok(()) => Some(Ok(work(conn))),
            Err(error) if is_busy(&error) => None,
            Err(error) => Some(Err(native_error(operation)(error))),
        }
    }

    /// Runs `work` on the writer in the blocking pool, inside a transaction begun with
    /// `BEGIN IMMEDIATE` (waiting up to the busy timeout for the write lock).
    ///
    /// # Errors
    /// [`Error::StoreClosed`]; the `BEGIN`'s error.
    pub(super) async fn write_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        operation: &'static str,
        work: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> Result<T> {
        self.ensure_open()?;
        let native = self.clone();
        blocking(operation, move || {
            let mut guard = native.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = guard.as_mut().ok_or(Error::StoreClosed)?;
            leave_transaction(conn)
                .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"))
                .map_err(native_error(operation))?;
            Ok(work(conn))
        })
        .await
    }

    /// Runs `work` on a reader connection in the blocking pool.
    ///
    /// # Errors
    /// [`Error::StoreClosed`]; [`Error::Connection`] when a reader cannot be opened;
    /// `work`'s error.
    pub(super) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        operation: &'static str,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.ensure_open()?;
        let permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| Error::StoreClosed)?;
        let native = self.clone();
        let result = blocking(operation, move || {
            let idle = native
                .idle_readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match idle {
                Some(conn) => conn,
                None => connect(&native.options).map_err(|e| Error::Connection {
                    database: native.options.path.display().to_string(),
                    source: Box::new(e),
                })?,
            };
            let result = work(&conn);
            // A reader left inside a transaction (it cannot be: reads run in
            // autocommit) is not handed out again.
            if conn.is_autocommit() && !native.closed.load(Ordering::Acquire) {
                native
                    .idle_readers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
            }
            result
        })
        .await;
        drop(permit);
        result
    }
}

/// Runs `work` in tokio's blocking pool; a panic in it is an error, not a lost task.
async fn blocking<T: Send + 'static>(
    operation: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => Err(Error::Database {
            operation,
            kind: DatabaseErrorKind::Other,
            source: format!("the SQLite call ended without an answer: {join}").into(),
        }),
    }
}

/// Rolls back a transaction a panic left open, so the connection can begin another.
fn leave_transaction(conn: &Connection) -> rusqlite::Result<()> {
    if conn.is_autocommit() {
        Ok(())
    } else {
        tracing::warn!("a native SQLite connection was left inside a transaction; rolling it back");
        conn.execute_batch("ROLLBACK")
    }
}

/// A connection with the store's settings (those sqlx's pool connections get too).
fn connect(options: &NativeOptions) -> rusqlite::Result<Connection> {
    let flags = if options.read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(Path::new(&options.path), flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "cache_size", format!("-{}", options.cache_kib))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if !options.read_only {
        // The journal mode is the file's (sqlx's pool set it at open); the sync level
        // is each connection's own.
        conn.pragma_update(
            None,
            "synchronous",
            if options.wal { "NORMAL" } else { "FULL" },
        )?;
    }
    for (name, value) in &options.pragmas {
        // Both are words (checked by the options), as sqlx's pool runs them too.
        conn.execute_batch(&format!("PRAGMA {name} = {value}"))?;
    }
    Ok(conn)
}
