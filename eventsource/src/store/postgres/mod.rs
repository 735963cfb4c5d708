//! [`PostgresEventStore`]: the backend for deployments with several processes or machines.
//!
//! # Global order under concurrent writers
//!
//! PostgreSQL hands out identity values when a row is inserted, not when its transaction
//! commits. With two writers, position 12 can commit while position 11 is still in flight;
//! a reader that saw 12 and moved its cursor past it would never see 11. Recording each
//! row's transaction id and reading only rows older than the oldest running transaction
//! (`pg_snapshot_xmin(pg_current_snapshot())`) is not enough on its own: a transaction
//! with an older id can still take a *larger* position than a younger one, so a reader
//! that orders by position must also order by transaction id, and then subscribers no
//! longer see global-position order.
//!
//! This store therefore makes positions follow commit order: every append takes a
//! transaction-scoped advisory lock of its schema (`pg_advisory_xact_lock`) before it
//! reads the stream version and inserts, and holds it until its commit is visible. A
//! committed position `p` thus implies that every smaller position is committed (or was
//! rolled back and is a gap no one will ever fill), so `read_all` and every catch-up can
//! page by position with no sleep and no gap timeout. The price is that appends to one
//! schema are serialized for the few statements of the append (like SQLite's write
//! lock); reads never wait for it. Rows written around this store (raw SQL without the
//! lock) lose the guarantee.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::group_commit::GroupCommit;
use crate::store::schema_state::{Need, SchemaSnapshot, SchemaState};
use crate::store::sql::{db_error, is_unique_violation, to_i64, to_u64};

mod append;
mod append_function;
mod bus;
mod checkpoint;
mod dlq;
mod events;
#[cfg(feature = "sqlite")]
mod import;
mod outbox;
mod projection;
mod reads;
mod row;
mod schema;
mod snapshot;
mod tables;
mod timestamp;

pub use bus::PostgresEventBus;
pub use projection::{PostgresProjection, PostgresProjectionHandle, PostgresProjectionRunner};
use tables::Tables;

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "public";

/// Longest schema name: the notification channel `eventsource_<schema>` must stay within
/// PostgreSQL's 63-byte identifiers.
const MAX_SCHEMA_LEN: usize = 48;

/// Options of a [`PostgresEventStore`]; [`PostgresStoreOptions::connect`] connects.
///
/// ```no_run
/// # async fn f() -> eventsource::Result<()> {
/// use eventsource::PostgresEventStore;
///
/// let store = PostgresEventStore::options("postgres://app@localhost/app")
///     .schema("billing")
///     .max_connections(20)
///     .connect()
///     .await?;
/// store.initialize().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStoreOptions {
    url: String,
    schema: String,
    max_connections: u32,
    acquire_timeout: Duration,
    registry: Option<Arc<EventRegistry>>,
    outbox: bool,
}

impl PostgresStoreOptions {
    /// Options for the database at `url` (`postgres://user:password@host:port/database`,
    /// or `postgres:///database?host=/run/postgresql` for a unix socket), with the
    /// defaults: schema `public`, at most 10 connections, a 30 s acquire timeout, the
    /// global registry, no outbox.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresStoreOptions {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            registry: None,
            outbox: false,
        }
    }

    /// The schema that holds the tables (created by `initialize` when missing), so that
    /// several applications can share one database. A letter or `_`, then letters, digits
    /// and `_`, at most 48 bytes, not starting with `pg_` (reserved by PostgreSQL).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The size of the connection pool (at least 1). A [`PostgresEventBus`] keeps one of
    /// them for `LISTEN`.
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// How long an operation waits for a free connection (or for the server to accept
    /// one) before it fails.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The registry that decodes events read back (default: [`EventRegistry::global`]).
    pub fn registry(mut self, registry: Arc<EventRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// `true` turns the schema's outbox on (at [`PostgresEventStore::initialize`], or at
    /// the first append on a schema initialized elsewhere): every appended event gets an
    /// `event_outbox` entry in the append's transaction. The setting is recorded in the
    /// database (a trigger), so every handle and process keeps it; `false` (the default)
    /// leaves the schema as it is; [`PostgresEventStore::disable_outbox`] turns it off.
    /// See [`crate::OutboxStore`] and [`crate::OutboxRelay`].
    pub fn outbox(mut self, on: bool) -> Self {
        self.outbox = on;
        self
    }

    fn check(&self) -> Result<PgConnectOptions> {
        let invalid = |message: String| Err(Error::InvalidConfiguration { message });
        if !valid_schema_name(&self.schema) {
            return invalid(format!(
                "schema name {:?} is not a plain identifier (a letter or `_`, then letters, digits or `_`, at most {MAX_SCHEMA_LEN} bytes)",
                self.schema
            ));
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1".into());
        }
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return invalid(format!(
                "`{}` is not a PostgreSQL URL (postgres://user:password@host:port/database)",
                redact(&self.url)
            ));
        }
        if self.acquire_timeout.is_zero() {
            return invalid("acquire_timeout must be positive".into());
        }
        PgConnectOptions::from_str(&self.url)
            .map(|options| options.application_name("eventsource"))
            .or_else(|e| invalid(format!("invalid PostgreSQL URL: {e}")))
    }

    /// Connects (the server must be reachable). Call [`PostgresEventStore::initialize`]
    /// to create the schema.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for invalid options or URL; [`Error::Connection`]
    /// when the server cannot be reached or refuses the login.
    pub async fn connect(self) -> Result<PostgresEventStore> {
        let connect = self.check()?;
        // Every connection is verified before it is handed out: one whose transaction
        // failed, or whose socket died with the server, is closed instead of reused (a
        // queued ROLLBACK is completed by the same round trip).
        let pool = PgPoolOptions::new()
            .test_before_acquire(true)
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| Error::Connection {
                database: redact(&self.url),
                source: Box::new(e),
            })?;
        Ok(self.with_pool(pool))
    }

    /// A store on an existing pool (its size and timeouts are the pool's; the URL of
    /// these options is not used).
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for an invalid schema name.
    pub fn open_with_pool(self, pool: PgPool) -> Result<PostgresEventStore> {
        if !valid_schema_name(&self.schema) {
            return Err(Error::InvalidConfiguration {
                message: format!("schema name {:?} is not a plain identifier", self.schema),
            });
        }
        Ok(self.with_pool(pool))
    }

    fn with_pool(self, pool: PgPool) -> PostgresEventStore {
        let tables = Tables::new(&self.schema);
        PostgresEventStore {
            pool,
            registry: self.registry.unwrap_or_else(EventRegistry::global),
            schema: Arc::new(SchemaState::new(
                format!("{} (schema {})", redact(&self.url), self.schema),
                &schema::REQUIRED_COLUMNS,
                &[],
                &[],
            )),
            database: redact(&self.url),
            tables: Arc::new(tables),
            outbox: self.outbox,
            outbox_pending: Arc::new(AtomicBool::new(self.outbox)),
            group: Arc::default(),
            append_function_missing: Arc::new(AtomicBool::new(false)),
            append_in_transaction: Arc::new(AtomicBool::new(false)),
            outbox_floor: Arc::default(),
            outbox_claims_missing: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// `true` for a schema name this store accepts (and can splice into SQL unquoted-safe).
fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && !name.to_ascii_lowercase().starts_with("pg_")
        && name.len() <= MAX_SCHEMA_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// An event store in a PostgreSQL database, shared by any number of processes.
///
/// One value owns the connection pool; clones share it. [`initialize`](Self::initialize)
/// creates the schema: the `events`, `event_outbox`, `projection_checkpoints`,
/// `dead_letter_queue` and `snapshots` tables, with native `UUID`, `JSONB`,
/// `TIMESTAMPTZ` and `BIGINT` identity columns. Optimistic concurrency is enforced by an
/// append lock per schema and the unique `(aggregate_id, aggregate_type, version)` key;
/// positions follow commit order (see the [module docs](self)), and every append
/// notifies the channel `eventsource_<schema>` on commit, which [`PostgresEventBus`]
/// listens to.
#[derive(Debug, Clone)]
pub struct PostgresEventStore {
    pool: PgPool,
    registry: Arc<EventRegistry>,
    database: String,
    tables: Arc<Tables>,
    /// The options asked for an outbox: `initialize` records it in the database.
    outbox: bool,
    /// The outbox was asked for and is not known to be installed yet: the next append
    /// installs it (the schema may have been initialized by another handle).
    outbox_pending: Arc<AtomicBool>,
    /// The tables and columns the schema has (read at first use).
    schema: Arc<SchemaState>,
    /// Concurrent appends waiting to be written together.
    group: Arc<GroupCommit>,
    /// The schema has no append function (initialized by an older version): appends go
    /// statement by statement until `initialize()` creates it.
    append_function_missing: Arc<AtomicBool>,
    /// The server's default isolation is stricter than READ COMMITTED: each call of the
    /// append function runs in a READ COMMITTED transaction of its own.
    append_in_transaction: Arc<AtomicBool>,
    /// An outbox id below every pending entry, as far as this handle has seen (where the
    /// relay's claims start scanning).
    outbox_floor: Arc<std::sync::atomic::AtomicI64>,
    /// The outbox has no `claimed_until` column (created by an older version): entries
    /// are read without a claim until `initialize()` adds it.
    outbox_claims_missing: Arc<AtomicBool>,
}

impl PostgresEventStore {
    /// Connects to `url` with the default options.
    ///
    /// # Errors
    /// See [`PostgresStoreOptions::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        PostgresStoreOptions::new(url).connect().await
    }

    /// Options to connect to `url` with.
    pub fn options(url: impl Into<String>) -> PostgresStoreOptions {
        PostgresStoreOptions::new(url)
    }

    /// Creates the schema, tables and indexes that do not exist yet; safe to call any
    /// number of times, from any number of processes at once.
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] when an `events` table exists without the event store's
    /// columns; [`Error::StoreClosed`]; database errors.
    pub async fn initialize(&self) -> Result<()> {
        schema::initialize(self).await
    }

    /// Closes every connection; later operations fail with [`Error::StoreClosed`], and a
    /// [`PostgresEventBus`] on this store stops.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// `true` until [`close`](Self::close) is called.
    pub fn is_connected(&self) -> bool {
        !self.pool.is_closed()
    }

    /// The database URL, with the password masked.
    pub fn url(&self) -> &str {
        &self.database
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.tables.schema
    }

    /// The `LISTEN/NOTIFY` channel on which committed appends are announced (the payload
    /// is the global position of the batch's last event).
    pub fn notification_channel(&self) -> &str {
        &self.tables.channel
    }

    /// The registry that decodes events read back.
    pub fn registry(&self) -> &Arc<EventRegistry> {
        &self.registry
    }

    /// This store reading with another registry, on the same pool.
    pub fn with_registry(&self, registry: Arc<EventRegistry>) -> Self {
        PostgresEventStore {
            registry,
            ..self.clone()
        }
    }

    /// The connection pool, for read models that live in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn ensure_open(&self) -> Result<()> {
        if self.pool.is_closed() {
            Err(Error::StoreClosed)
        } else {
            Ok(())
        }
    }

    /// Reads which tables the schema has and which columns its `events` table has.
    async fn refresh_schema(&self) -> Result<()> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT t.table_name::text, c.column_name::text \
             FROM information_schema.tables t \
             LEFT JOIN information_schema.columns c \
               ON c.table_schema = t.table_schema AND c.table_name = t.table_name AND t.table_name = 'events' \
             WHERE t.table_schema = $1",
        )
        .bind(&self.tables.schema)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("check_schema"))?;
        let mut snapshot = SchemaSnapshot::default();
        for (table, column) in rows {
            if let Some(column) = column {
                snapshot.event_columns.insert(column);
            }
            snapshot.tables.insert(table);
        }
        self.schema.set(snapshot);
        Ok(())
    }

    /// Checks, before an operation, that the store is open and its schema serves `need`
    /// (read again once if it did not).
    ///
    /// # Errors
    /// [`Error::StoreClosed`], [`Error::SchemaNotInitialized`], [`Error::SchemaMismatch`].
    pub(super) async fn ready(&self, need: Need) -> Result<()> {
        self.ensure_open()?;
        if self.schema.check(need).is_ok() {
            return Ok(());
        }
        self.refresh_schema().await?;
        self.schema.check(need)
    }

    /// Installs the outbox the options asked for, once.
    pub(super) async fn ensure_outbox(&self) -> Result<()> {
        if self.outbox_pending.load(Ordering::Acquire) {
            schema::enable_outbox(self).await?;
            self.outbox_pending.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Turns the schema's outbox on: from now on every append, by any handle or process,
    /// writes an `event_outbox` entry in its own transaction (the database keeps the
    /// rule, as a trigger on `events`). [`PostgresStoreOptions::outbox`] does this at
    /// [`initialize`](Self::initialize).
    ///
    /// # Errors
    /// [`Error::SchemaNotInitialized`], database errors.
    pub async fn enable_outbox(&self) -> Result<()> {
        schema::enable_outbox(self).await
    }

    /// Turns the schema's outbox off, for every handle and process (entries written stay,
    /// for the relay to finish). Connecting without [`PostgresStoreOptions::outbox`] does
    /// not turn it off; only this does.
    ///
    /// # Errors
    /// Database errors.
    pub async fn disable_outbox(&self) -> Result<()> {
        schema::disable_outbox(self).await
    }

    /// `true` when the schema keeps an outbox (whoever turned it on).
    ///
    /// # Errors
    /// Database errors.
    pub async fn outbox_enabled(&self) -> Result<bool> {
        schema::outbox_enabled(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["public", "billing_v2", "_x", "A1"] {
            assert!(valid_schema_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a\"b",
            "a b",
            "é",
            "pg_temp",
            &"x".repeat(49),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact("postgres:///app"), "postgres:///app");
    }

    #[test]
    fn lock_keys_differ_by_schema_and_are_stable() {
        assert_eq!(Tables::new("a").append_lock, Tables::new("a").append_lock);
        assert_ne!(Tables::new("a").append_lock, Tables::new("b").append_lock);
        assert_eq!(crate::canonical::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
