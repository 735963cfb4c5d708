//! [`SqliteStoreOptions`]: how a [`SqliteEventStore`] opens its database (file or
//! `:memory:`, `sqlite:` URLs, WAL, busy timeout, pool size, read-only, outbox), and the
//! connection pool it builds.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Connection;

use super::native::{Native, NativeOptions};
use super::{schema, SqliteEventStore, MEMORY};
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::schema_state::{Need, SchemaState};

/// SQLite's default page cache per connection, in KiB.
const DEFAULT_CACHE_KIB: u32 = 2000;

/// Options of a [`SqliteEventStore`]; [`SqliteStoreOptions::open`] connects.
///
/// ```no_run
/// # async fn f() -> eventsource::Result<()> {
/// use std::time::Duration;
/// use eventsource::SqliteEventStore;
///
/// let store = SqliteEventStore::options("./events.db")
///     .wal_mode(true)
///     .busy_timeout(Duration::from_secs(10))
///     .open()
///     .await?;
/// store.initialize().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStoreOptions {
    database: PathBuf,
    wal_mode: bool,
    busy_timeout: Duration,
    registry: Option<Arc<EventRegistry>>,
    max_connections: u32,
    /// Each connection's page cache, in KiB (`PRAGMA cache_size = -N`).
    cache_kib: u32,
    /// `PRAGMA name = value` run on every connection the store opens.
    pragmas: Vec<(String, String)>,
    read_only: bool,
    outbox: bool,
    group_commit: bool,
    /// What is wrong with a `sqlite:` URL given as the database.
    url_error: Option<String>,
}

/// How many transactions (and savepoints) sqlx believes `conn` is inside.
fn transaction_depth(conn: &SqliteConnection) -> usize {
    <<sqlx::Sqlite as sqlx::Database>::TransactionManager as sqlx::TransactionManager>::get_transaction_depth(conn)
}

/// The database and read-only flag of a `sqlite:` URL.
fn parse_url(url: &str) -> std::result::Result<(PathBuf, bool), String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut read_only = false;
    let mut memory = path == MEMORY;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("mode", "ro")) => read_only = true,
            Some(("mode", "rw" | "rwc")) => {}
            Some(("mode", "memory")) => memory = true,
            _ => {
                return Err(format!(
                    "unsupported parameter `{pair}` in SQLite URL `{url}`: only mode=ro, rw, rwc or memory are understood; use SqliteStoreOptions for the rest"
                ))
            }
        }
    }
    if memory {
        return Ok((PathBuf::from(MEMORY), read_only));
    }
    if path.is_empty() {
        return Err(format!("SQLite URL `{url}` names no database file"));
    }
    Ok((PathBuf::from(path), read_only))
}

impl SqliteStoreOptions {
    /// Options for the database at `database`, with the defaults: WAL mode on (ignored
    /// for `:memory:`), a 5 s busy timeout, the global registry, at most 4 connections
    /// (1 for `:memory:`) with SQLite's default page cache of 2,000 KiB each, read-write.
    ///
    /// `database` is a file path, `":memory:"`, or a sqlx-style URL: `sqlite::memory:`,
    /// `sqlite://path/to/events.db` or `sqlite:events.db`, optionally with `?mode=ro`
    /// (read-only), `?mode=rw` or `?mode=rwc`. Any other URL parameter is refused by
    /// [`open`](Self::open) with [`Error::InvalidConfiguration`] rather than ignored.
    pub fn new(database: impl AsRef<Path>) -> Self {
        let given = database.as_ref();
        let mut options = SqliteStoreOptions {
            database: given.to_path_buf(),
            wal_mode: true,
            busy_timeout: Duration::from_millis(5000),
            registry: None,
            max_connections: 4,
            cache_kib: DEFAULT_CACHE_KIB,
            pragmas: Vec::new(),
            read_only: false,
            outbox: false,
            group_commit: true,
            url_error: None,
        };
        if let Some(url) = given.to_str().filter(|s| s.starts_with("sqlite:")) {
            match parse_url(url) {
                Ok((database, read_only)) => {
                    options.database = database;
                    options.read_only = read_only;
                }
                Err(message) => options.url_error = Some(message),
            }
        }
        options
    }

    /// Write-ahead logging: readers do not block the writer. Default on; ignored for
    /// `:memory:`, which has no WAL.
    pub fn wal_mode(mut self, on: bool) -> Self {
        self.wal_mode = on;
        self
    }

    /// How long a connection waits for a lock held by another connection or process.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The registry that decodes events read back (default: [`EventRegistry::global`]).
    pub fn registry(mut self, registry: Arc<EventRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The size of the connection pool (at least 1; `:memory:` always uses 1).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Each connection's page cache, in KiB (at least 64; default 2,000, SQLite's own).
    /// The caches fill as the database is read and then stay at this size: a store's
    /// resident memory grows by up to `max_connections` times this after it opens, then
    /// stays flat.
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_kib = kib;
        self
    }

    /// Runs `PRAGMA name = value` on every connection the store opens (its pool's and
    /// its own), after its own settings: for example `("mmap_size", "268435456")` or
    /// `("temp_store", "memory")`. `name` is a pragma's name and `value` a number or a
    /// bare word; anything else, and the pragmas these options own (`journal_mode`:
    /// [`wal_mode`](Self::wal_mode); `busy_timeout`; `cache_size`:
    /// [`cache_size_kib`](Self::cache_size_kib)), is refused by [`open`](Self::open)
    /// with [`Error::InvalidConfiguration`].
    pub fn pragma(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.pragmas.push((name.into(), value.into()));
        self
    }

    /// Group commit (on by default): appends that arrive while another append is being
    /// written wait for it, then go to the database together, in one transaction, so
    /// that many concurrent writers share one commit and one turn at the write lock
    /// instead of queueing for it one by one. Each append keeps its own outcome: its
    /// expected version is checked against its stream (appends earlier in the same
    /// group included) and a refused append fails alone; an append is acknowledged only
    /// once its group is committed; an append whose caller stops waiting (a dropped
    /// future, a timeout) may still be written, as a statement already sent would be (its
    /// event ids make a retry safe). A single writer sees no difference: an append that
    /// finds no other waiting is written on its own, as with `false`, which makes every
    /// append its own transaction.
    pub fn group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// Opens the database read-only (reporting tools, replicas): every write fails with
    /// [`Error::ReadOnly`] before it reaches the database.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// `true` turns the database's outbox on (at open, or at
    /// [`SqliteEventStore::initialize`] for a new database): every appended event gets an
    /// `event_outbox` entry in the append's transaction (see [`crate::OutboxStore`],
    /// [`crate::OutboxRelay`]). The setting is recorded in the database, so every handle
    /// and every process appending to it keeps the outbox, with or without this option;
    /// `false` (the default) leaves the database as it is. Turning an outbox off is
    /// [`SqliteEventStore::disable_outbox`].
    pub fn outbox(mut self, on: bool) -> Self {
        self.outbox = on;
        self
    }

    fn is_memory(&self) -> bool {
        self.database.as_os_str() == MEMORY
    }

    fn check(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidConfiguration { message });
        if let Some(message) = &self.url_error {
            return invalid(message.clone());
        }
        if self.database.as_os_str().is_empty() {
            return invalid("the database path is empty".into());
        }
        if self.outbox && self.read_only {
            return invalid("a read-only store cannot keep an outbox: it writes nothing".into());
        }
        if self.is_memory() && self.read_only {
            return invalid(
                "a `:memory:` database cannot be read-only: it starts empty and only this store can write it"
                    .into(),
            );
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1".into());
        }
        if self.cache_kib < 64 {
            return invalid(format!(
                "cache_size_kib {} is below 64 KiB: SQLite would thrash its cache",
                self.cache_kib
            ));
        }
        for (name, value) in &self.pragmas {
            let word = |s: &str, extra: &[char]| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
            };
            if !word(name, &[]) || !word(value, &['-', '.']) {
                return invalid(format!(
                    "pragma `{name} = {value}`: the name must be a pragma's name and the value a number or a bare word"
                ));
            }
            if ["journal_mode", "busy_timeout", "cache_size"]
                .contains(&name.to_ascii_lowercase().as_str())
            {
                return invalid(format!(
                    "pragma `{name}` is set by the store's own options (wal_mode, busy_timeout, cache_size_kib)"
                ));
            }
        }
        if i32::try_from(self.busy_timeout.as_millis()).is_err() {
            return invalid(format!("busy_timeout {:?} is too long", self.busy_timeout));
        }
        if self.is_memory() {
            return Ok(());
        }
        let connection_error = |message: String| {
            Err(Error::Connection {
                database: self.database.display().to_string(),
                source: message.into(),
            })
        };
        if self.database.is_dir() {
            return connection_error("the path is a directory".into());
        }
        match self.database.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                connection_error(format!("directory `{}` does not exist", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Connects to the database (creating the file if it does not exist). Call
    /// [`SqliteEventStore::initialize`] to create the schema.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for invalid options; [`Error::Connection`] when the
    /// database cannot be opened (missing directory, not a SQLite file, no permission).
    pub async fn open(self) -> Result<SqliteEventStore> {
        self.check()?;
        let memory = self.is_memory();
        let wal = self.wal_mode && !memory && !self.read_only;
        let connect = if memory {
            // A private in-memory database on the pool's single, never recycled connection.
            SqliteConnectOptions::new().filename(MEMORY).in_memory(true)
        } else if self.read_only {
            // A read-only connection cannot switch the journal mode: keep the file's.
            SqliteConnectOptions::new()
                .filename(&self.database)
                .create_if_missing(false)
                .read_only(true)
        } else {
            SqliteConnectOptions::new()
                .filename(&self.database)
                .create_if_missing(true)
                .journal_mode(if wal {
                    SqliteJournalMode::Wal
                } else {
                    SqliteJournalMode::Delete
                })
                .synchronous(if wal {
                    SqliteSynchronous::Normal
                } else {
                    SqliteSynchronous::Full
                })
        }
        .busy_timeout(self.busy_timeout)
        .pragma("cache_size", format!("-{}", self.cache_kib));
        let connect = self.pragmas.iter().fold(connect, |connect, (name, value)| {
            connect.pragma(name.clone(), value.clone())
        });
        // No ping before each use: a SQLite connection is a handle in this process, and
        // sqlx's ping is a round trip through the connection's worker thread that
        // doubled the hand-overs of every read and append. A connection whose worker
        // has died fails its next statement with a typed error instead.
        let pool_options = SqlitePoolOptions::new().test_before_acquire(false);
        let pool_options = if memory {
            pool_options
        } else {
            // A connection handed back inside a transaction is in a state nobody knows:
            // its transaction was dropped (a cancelled or failed operation), or even its
            // ROLLBACK failed because SQLite had already rolled back by itself (a full
            // disk, an I/O error). Handed out again, it would fail every later
            // transaction ("non-zero transaction depth"); it is closed instead, and the
            // pool opens a new one. Every operation of this crate ends its transactions
            // explicitly, so a healthy connection is never closed by this.
            // (`:memory:` keeps its one connection: the database lives in it.)
            pool_options.after_release(|conn, _| {
                Box::pin(async move {
                    if transaction_depth(conn) == 0 {
                        return Ok(true);
                    }
                    // A dropped transaction (a cancelled operation) queues its ROLLBACK on
                    // the connection's worker: a round trip runs it. Only when the
                    // connection is still inside a transaction after that is it closed.
                    conn.ping().await?;
                    let depth = transaction_depth(conn);
                    if depth > 0 {
                        tracing::warn!(
                            depth,
                            "a SQLite connection came back inside a transaction it cannot leave; closing it"
                        );
                    }
                    Ok(depth == 0)
                })
            })
        };
        let pool_options = if memory {
            // The database lives as long as its connection: keep exactly one, for ever.
            pool_options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool_options.max_connections(self.max_connections)
        };
        let pool = pool_options
            .connect_with(connect.clone())
            .await
            .map_err(|e| Error::Connection {
                database: self.database.display().to_string(),
                source: Box::new(e),
            })?;
        // The mode the database really runs in (a read-only store keeps the file's).
        let journal_mode: String = if memory {
            "memory".into()
        } else {
            sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&pool)
                .await
                .map_err(|e| Error::Connection {
                    database: self.database.display().to_string(),
                    source: Box::new(e),
                })?
        };
        let wal_mode = journal_mode.eq_ignore_ascii_case("wal");
        let native = if memory {
            None
        } else {
            let opened = Native::open(NativeOptions {
                path: self.database.clone(),
                read_only: self.read_only,
                wal: wal_mode,
                busy_timeout: self.busy_timeout,
                cache_kib: self.cache_kib,
                pragmas: self.pragmas.clone(),
                readers: usize::try_from(self.max_connections).unwrap_or(4),
            });
            match opened {
                Ok(native) => Some(Arc::new(native)),
                Err(error) => {
                    pool.close().await;
                    return Err(error);
                }
            }
        };
        let store = SqliteEventStore {
            native,
            pool,
            registry: self.registry.clone().unwrap_or_else(EventRegistry::global),
            schema: Arc::new(SchemaState::new(
                self.database.display().to_string(),
                &schema::REQUIRED_COLUMNS,
                &schema::ADDED_EVENT_COLUMNS,
                &schema::ADDED_TABLE_COLUMNS,
            )),
            database: self.database,
            wal_mode,
            busy_timeout: self.busy_timeout,
            connect_options: connect,
            read_only: self.read_only,
            outbox: self.outbox,
            outbox_pending: Arc::new(AtomicBool::new(self.outbox)),
            select_columns: Arc::default(),
            python_payloads: Arc::new(AtomicBool::new(false)),
            group: self.group_commit.then(Arc::default),
        };
        store.refresh_columns().await?;
        if store.outbox && store.schema.check(Need::WriteEvents).is_ok() {
            store.ensure_outbox().await?;
        }
        Ok(store)
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn sqlite_urls_are_understood_or_refused() {
        let memory = SqliteStoreOptions::new("sqlite::memory:");
        assert!(memory.is_memory() && memory.url_error.is_none());
        let file = SqliteStoreOptions::new("sqlite://data/events.db?mode=ro");
        assert_eq!(file.database, PathBuf::from("data/events.db"));
        assert!(file.read_only);
        let relative = SqliteStoreOptions::new("sqlite:events.db?mode=rwc");
        assert_eq!(relative.database, PathBuf::from("events.db"));
        assert!(!relative.read_only);
        let absolute = SqliteStoreOptions::new("sqlite:///tmp/events.db");
        assert_eq!(absolute.database, PathBuf::from("/tmp/events.db"));
        assert!(SqliteStoreOptions::new("sqlite://x.db?cache=shared")
            .url_error
            .is_some_and(|e| e.contains("cache=shared")));
        assert!(SqliteStoreOptions::new("sqlite://").url_error.is_some());
        // A plain path that only looks odd stays a path.
        assert_eq!(
            SqliteStoreOptions::new("./sqlite.db").database,
            PathBuf::from("./sqlite.db")
        );
    }

    #[tokio::test]
    async fn the_page_cache_is_set_on_every_connection_and_bounded_below() {
        let dir = std::env::temp_dir().join(format!("eventsource-cache-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStoreOptions::new(dir.join("events.db"))
            .cache_size_kib(256)
            .open()
            .await
            .unwrap();
        for _ in 0..3 {
            let mut conn = store.pool().acquire().await.unwrap();
            let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(size, -256);
        }
        store.close().await;
        let refused = SqliteStoreOptions::new(dir.join("other.db"))
            .cache_size_kib(8)
            .open()
            .await;
        assert!(matches!(refused, Err(Error::InvalidConfiguration { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
