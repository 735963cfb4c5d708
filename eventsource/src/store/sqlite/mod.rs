//! [`SqliteEventStore`]: the embedded default backend, on a file or `:memory:`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool};
use sqlx::Connection;

use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::group_commit::GroupCommit;
use crate::store::schema_state::{Need, SchemaSnapshot, SchemaState};
use crate::store::sql::{db_error, is_unique_violation};

/// The columns an append writes, in the order of its parameters.
macro_rules! columns {
    () => {
        "event_id, aggregate_id, aggregate_type, event_type, tenant_id, actor_id, version, \
         timestamp, payload, created_at, event_version, correlation_id, causation_id, metadata"
    };
}

mod append;
mod append_group;
mod append_native;
mod checkpoint;
#[cfg(test)]
mod decode_fuzz;
mod dlq;
mod events;
mod fields;
mod native;
pub use options::SqliteStoreOptions;
pub use projection::{SqliteProjection, SqliteProjectionHandle, SqliteProjectionRunner};
pub use python::PayloadFormat;
mod options;
mod outbox;
mod pack;
mod page;
mod projection;
mod python;
mod reads;
mod replay;
mod replay_page;
mod replay_row;
mod row;
mod schema;
mod snapshot;
mod source;
mod timestamp;
mod unreadable;

/// The select lists of the `events` table, for the columns it has.
#[derive(Debug, Default)]
struct SelectLists {
    /// A page row packed in SQL (see [`row::select_list`]), for the pool.
    packed: String,
    /// A page row's plain columns, packed in Rust, for the native reader (see
    /// [`pack::PAGE`]).
    page: String,
    /// A `replay_stream` row's plain columns (see [`pack::REPLAY`]).
    replay: String,
    /// The table has the `event_version` column (not an eventsource-py table that was
    /// not initialized).
    event_version: bool,
}

impl SelectLists {
    fn new(present: &HashSet<String>) -> Self {
        SelectLists {
            packed: row::select_list(present),
            page: pack::select_list(&pack::PAGE, present),
            replay: pack::select_list(&pack::REPLAY, present),
            event_version: present.is_empty() || present.contains("event_version"),
        }
    }

    /// A query of page rows: `SELECT <row>` then `tail` (`, <position> AS n FROM ...`),
    /// ordered by `n` in `order`.
    fn page_query(&self, tail: &str, order: &str) -> source::SourceQuery {
        source::SourceQuery::new(&self.packed, &self.page, &pack::PAGE, tail, order)
    }
}

/// The name that opens an in-memory database.
const MEMORY: &str = ":memory:";

/// An event store in a SQLite database: a file (durable, WAL mode by default) or
/// `:memory:`.
///
/// One value owns the connection pool; clones share it. The schema (the `events`,
/// `event_outbox`, `projection_checkpoints`, `dead_letter_queue` and `snapshots` tables
/// of eventsource-py) is created by [`initialize`](Self::initialize). Optimistic
/// concurrency is enforced by the database's unique `(aggregate_id, aggregate_type,
/// version)` key and a write lock taken at the start of each append, so it holds across
/// processes sharing the file.
///
/// ```
/// use std::time::Duration;
/// use eventsource::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct TaskCreated { title: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// # let dir = std::env::temp_dir().join(uuid::Uuid::new_v4().to_string());
/// # std::fs::create_dir_all(&dir).expect("a temp dir");
/// # let path = dir.join("events.db");
/// // A file: WAL, durable; `SqliteEventStore::open(":memory:")` for tests.
/// let store = SqliteEventStore::options(&path)
///     .busy_timeout(Duration::from_secs(10))
///     .outbox(true)
///     .open()
///     .await?;
/// store.initialize().await?; // creates the schema; idempotent
///
/// let task = uuid::Uuid::new_v4();
/// let event = NewEvent::new(TaskCreated { title: "Write docs".into() });
/// store.append_events(task, "Task", vec![event], ExpectedVersion::NoStream).await?;
/// assert_eq!(store.get_stream_version(task, "Task").await?, 1);
///
/// // Another handle on the same file (another process would do the same).
/// let again = SqliteEventStore::open(&path).await?;
/// assert_eq!(again.get_global_position().await?, 1);
/// store.close().await;
/// # again.close().await;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    pool: SqlitePool,
    registry: Arc<EventRegistry>,
    database: PathBuf,
    wal_mode: bool,
    busy_timeout: Duration,
    connect_options: SqliteConnectOptions,
    /// Opened read-only: every write is refused with [`Error::ReadOnly`].
    read_only: bool,
    /// The options asked for an outbox: `initialize` (or `open`, on an initialized
    /// database) records it in the database.
    outbox: bool,
    /// The outbox was asked for and is not known to be installed yet: the next append
    /// installs it (the database may have been initialized by another handle since).
    outbox_pending: Arc<AtomicBool>,
    /// The tables and columns the database has.
    schema: Arc<SchemaState>,
    /// The `events` select lists for this database's columns.
    select_columns: Arc<RwLock<Arc<SelectLists>>>,
    /// Appends write eventsource-py's payload form ([`PayloadFormat::EventsourcePy`]).
    python_payloads: Arc<AtomicBool>,
    /// Concurrent appends waiting to be written together; `None` when each append is
    /// its own transaction ([`SqliteStoreOptions::group_commit`]).
    group: Option<Arc<GroupCommit>>,
    /// The store's own connections for appends and reads of a file database (`None`
    /// for `:memory:`, whose database lives in the pool's one connection).
    native: Option<Arc<native::Native>>,
}

impl SqliteEventStore {
    /// Opens `database` (a file path or `":memory:"`) with the default options.
    ///
    /// # Errors
    /// See [`SqliteStoreOptions::open`].
    pub async fn open(database: impl AsRef<Path>) -> Result<Self> {
        SqliteStoreOptions::new(database).open().await
    }

    /// Options to open `database` with.
    pub fn options(database: impl AsRef<Path>) -> SqliteStoreOptions {
        SqliteStoreOptions::new(database)
    }

    /// Creates the tables and indexes that do not exist yet; safe to call any number of
    /// times. On a database written by eventsource-py it adds the extra nullable columns
    /// this library uses and keeps every row.
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] when an `events` table exists without the event store's
    /// columns; [`Error::StoreClosed`]; database errors.
    pub async fn initialize(&self) -> Result<()> {
        schema::initialize(self).await
    }

    /// Installs the outbox the options asked for, once.
    pub(super) async fn ensure_outbox(&self) -> Result<()> {
        if self.outbox_pending.load(Ordering::Acquire) {
            schema::enable_outbox(self).await?;
            self.outbox_pending.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Turns the database's outbox on: from now on every append, by any handle or
    /// process, writes an `event_outbox` entry in its own transaction (the database
    /// keeps the rule, as a trigger on `events`). [`SqliteStoreOptions::outbox`] does this
    /// at open or [`initialize`](Self::initialize).
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::SchemaNotInitialized`], database errors.
    pub async fn enable_outbox(&self) -> Result<()> {
        schema::enable_outbox(self).await
    }

    /// Turns the database's outbox off, for every handle and process: appends no longer
    /// write outbox entries (those written stay, for the relay to finish). Opening a
    /// store without [`SqliteStoreOptions::outbox`] does not turn it off; only this does.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], database errors.
    pub async fn disable_outbox(&self) -> Result<()> {
        schema::disable_outbox(self).await
    }

    /// `true` when the database keeps an outbox (whoever turned it on).
    ///
    /// # Errors
    /// Database errors.
    pub async fn outbox_enabled(&self) -> Result<bool> {
        schema::outbox_enabled(self).await
    }

    /// Closes every connection (waiting up to 5 s for connections still in use); then,
    /// unless another process has the database open, the WAL is checkpointed into the
    /// database file and removed. Later operations fail with [`Error::StoreClosed`].
    pub async fn close(&self) {
        if let Some(native) = &self.native {
            native.close();
        }
        self.pool.close().await;
        // sqlx's `Pool::close` can return while a connection that was being handed back
        // to the pool is still on its way; it then lands among the idle ones after the
        // close looked at them, and stays open. Closing again closes those; wait
        // (bounded) until every connection is gone, so the caller may move or delete the
        // file right away.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.pool.size() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.pool.close().await;
        }
        // Connections closing at the same moment can each see the other still open and
        // leave the WAL for the last one. One more connection, alone, closes last: it
        // checkpoints the WAL into the database file and removes it (unless another
        // process still has the database open).
        if self.wal_mode && self.pool.size() == 0 {
            if let Ok(conn) = SqliteConnection::connect_with(&self.connect_options).await {
                let _ = conn.close().await;
            }
        }
    }

    /// `true` until [`close`](Self::close) is called.
    pub fn is_connected(&self) -> bool {
        !self.pool.is_closed()
    }

    /// The database path (or `:memory:`).
    pub fn database(&self) -> &Path {
        &self.database
    }

    /// `true` when the database runs in WAL mode (never for `:memory:`; for a read-only
    /// store, whatever mode the file is in).
    pub fn wal_mode(&self) -> bool {
        self.wal_mode
    }

    /// The busy timeout.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The registry that decodes events read back.
    pub fn registry(&self) -> &Arc<EventRegistry> {
        &self.registry
    }

    /// This store reading with another registry, on the same pool (e.g. an empty
    /// [`EventRegistry::new`] reads every payload as raw JSON, exactly as stored).
    pub fn with_registry(&self, registry: Arc<EventRegistry>) -> Self {
        SqliteEventStore {
            registry,
            ..self.clone()
        }
    }

    /// The connection pool, for read models that live in the same database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The select lists of the `events` table.
    fn select_columns(&self) -> Arc<SelectLists> {
        self.select_columns
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads which tables the database has and which columns the `events` table has (at
    /// open, after `initialize`, and when a schema check fails).
    async fn refresh_columns(&self) -> Result<()> {
        let tables: HashSet<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("check_schema"))?
                .into_iter()
                .collect();
        let present: HashSet<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('events')")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("check_schema"))?
                .into_iter()
                .collect();
        *self
            .select_columns
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(SelectLists::new(&present));
        let mut table_columns = HashSet::new();
        for (table, column) in schema::ADDED_TABLE_COLUMNS {
            if !tables.contains(table) {
                continue;
            }
            let found: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
                    .bind(table)
                    .bind(column)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error("check_schema"))?;
            if found > 0 {
                table_columns.insert(format!("{table}.{column}"));
            }
        }
        self.schema.set(SchemaSnapshot {
            tables,
            event_columns: present,
            table_columns,
        });
        let python = python::read_format(self).await? == PayloadFormat::EventsourcePy;
        self.python_payloads.store(python, Ordering::Release);
        Ok(())
    }

    /// `true` when the database had `table` when its schema was last read.
    fn schema_has_table(&self, table: &str) -> bool {
        self.schema.snapshot().tables.contains(table)
    }

    /// Checks, before an operation, that the store is open, writable when `need` writes,
    /// and that the schema serves `need` (read again once if it did not).
    ///
    /// # Errors
    /// [`Error::StoreClosed`], [`Error::ReadOnly`], [`Error::SchemaNotInitialized`],
    /// [`Error::SchemaMismatch`].
    pub(super) async fn ready(
        &self,
        operation: &'static str,
        need: Need,
        writes: bool,
    ) -> Result<()> {
        self.ensure_open()?;
        if writes && self.read_only {
            return Err(Error::ReadOnly {
                operation,
                database: self.database.display().to_string(),
            });
        }
        if self.schema.check(need).is_ok() {
            return Ok(());
        }
        self.refresh_columns().await?;
        self.schema.check(need)
    }

    fn ensure_open(&self) -> Result<()> {
        if self.pool.is_closed() {
            Err(Error::StoreClosed)
        } else {
            Ok(())
        }
    }
}
