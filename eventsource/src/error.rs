//! The error type of every fallible operation in `eventsource`.

use uuid::Uuid;

use crate::store::ExpectedVersion;

/// A boxed error from a backend driver (SQLite, PostgreSQL) or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `eventsource`.
///
/// Each variant names what it is about (aggregate, event type, global position, database)
/// so that a log line is enough to find the cause. Variants are added over time, so the
/// enum is `#[non_exhaustive]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream was not at the expected version when events were appended.
    ///
    /// Another writer appended first. Handling: reload the aggregate, re-run the command
    /// against the new state, and append again with the new version.
    #[error(
        "optimistic lock failed for {aggregate_type} {aggregate_id}: expected version {expected}, actual version {actual}"
    )]
    OptimisticLock {
        /// The aggregate whose stream was appended to.
        aggregate_id: Uuid,
        /// The aggregate type of the stream.
        aggregate_type: String,
        /// The version the caller expected.
        expected: ExpectedVersion,
        /// The version the stream actually had.
        actual: u64,
    },

    /// A typed event was asked for, but the stored event's type has no registration.
    ///
    /// The event is kept as raw JSON (see [`crate::RawEvent`]); register the type
    /// (`#[derive(DomainEvent)]` or [`crate::EventRegistry::register`]) to decode it.
    #[error("event type `{event_type}` (version {version}) is not registered")]
    UnknownEventType {
        /// The stored event type name.
        event_type: String,
        /// The stored event schema version.
        version: u32,
    },

    /// No events are stored for the aggregate that was loaded.
    #[error("{aggregate_type} {aggregate_id} not found")]
    AggregateNotFound {
        /// The aggregate id.
        aggregate_id: Uuid,
        /// The aggregate type.
        aggregate_type: String,
    },

    /// An aggregate met an event it has no `#[apply]` method for, or whose type is not
    /// registered. Loading fails rather than skip an event and build a wrong state.
    #[error(
        "aggregate {aggregate_type} cannot apply event `{event_type}`{}: {}",
        .global_position.map(|p| format!(" at global position {p}")).unwrap_or_default(),
        if *.registered { "it has no #[apply] method for this type" } else { "the event type is not registered" }
    )]
    UnhandledEvent {
        /// The aggregate type.
        aggregate_type: String,
        /// The event type.
        event_type: String,
        /// Where the event is stored (`None` for a new event).
        global_position: Option<u64>,
        /// `false` when the event type has no registration at all.
        registered: bool,
    },

    /// The events were stored, but handing them to the event publisher failed. Nothing is
    /// lost: the events are in the store (subscriptions reading the store will see them).
    #[error("events stored up to version {new_version} (global position {global_position}) but publishing failed: {source}")]
    PublishFailed {
        /// The stream version after the save.
        new_version: u64,
        /// The global position of the last saved event.
        global_position: u64,
        /// Why publishing failed.
        #[source]
        source: BoxError,
    },

    /// A durable read model's `#[reset]` failed (or it has none) at the start of a
    /// rebuild; its transaction was rolled back, so the read model and the checkpoint are
    /// as they were.
    #[error("the read model of `{projection}` could not be reset, nothing was changed: {source}")]
    ResetFailed {
        /// The projection (runner) name.
        projection: String,
        /// The reset's error.
        #[source]
        source: BoxError,
    },

    /// A projection's handler failed on an event.
    #[error("projection `{projection}` failed on `{event_type}` at global position {global_position}: {source}")]
    HandlerFailed {
        /// The projection (subscription) name.
        projection: String,
        /// The event type.
        event_type: String,
        /// The event's global position.
        global_position: u64,
        /// The handler's error.
        #[source]
        source: BoxError,
    },

    /// A subscription did not reach a position in time.
    #[error(
        "subscription `{subscription}` did not reach position {position} in time: it is {state:?} at position {reached}, the store's head is {head}{}",
        .last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    WaitTimeout {
        /// The subscription.
        subscription: String,
        /// The position waited for.
        position: u64,
        /// The position it had reached.
        reached: u64,
        /// What it was doing when the wait gave up.
        state: crate::subscription::SubscriptionState,
        /// The store's head at its last read.
        head: u64,
        /// Its last error, if any (why it may be stuck).
        last_error: Option<String>,
    },

    /// The event waited for was not handled: the subscription's handler failed on it on
    /// every attempt and it was dead-lettered. The read model does not contain it.
    ///
    /// Handling: look at the dead letter (its error says why), fix the cause, and
    /// replay it (`replay_dead_letter`).
    #[error("subscription `{subscription}` dead-lettered the event at position {position} (`{event_type}`): {error}")]
    DeadLettered {
        /// The subscription.
        subscription: String,
        /// The event's global position.
        position: u64,
        /// Its event type.
        event_type: String,
        /// The handler's last error (or panic message).
        error: String,
    },

    /// The subscription stopped (or failed for good) before it reached the position
    /// waited for.
    #[error("subscription `{subscription}` is {state:?} at position {reached}; it will not reach position {position}{}",
        .last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    SubscriptionStopped {
        /// The subscription.
        subscription: String,
        /// The position waited for.
        position: u64,
        /// The position it had reached.
        reached: u64,
        /// Its state ([`Stopped`](crate::SubscriptionState::Stopped) or
        /// [`Failed`](crate::SubscriptionState::Failed)).
        state: crate::subscription::SubscriptionState,
        /// Why it failed, if it did.
        last_error: Option<String>,
    },

    /// No outbox entry with this id.
    #[error("no outbox entry {id}")]
    OutboxEntryNotFound {
        /// The id asked for.
        id: i64,
    },

    /// No dead letter with this id (or its event is no longer in the store).
    #[error("no dead letter {id}")]
    DeadLetterNotFound {
        /// The id asked for.
        id: i64,
    },

    /// An event id given to an append is already stored in another stream.
    #[error("event id {event_id} is already stored in another stream (global position {global_position})")]
    DuplicateEventId {
        /// The event id.
        event_id: Uuid,
        /// Where it is stored.
        global_position: u64,
    },

    /// A stored event was asked for as a Rust type other than the one it decodes to.
    #[error("event is a `{actual}`, not a `{expected}`")]
    EventTypeMismatch {
        /// The event type name of the requested Rust type.
        expected: &'static str,
        /// The stored event type name.
        actual: String,
    },

    /// Two Rust types claim the same event type name and schema version.
    #[error(
        "event type `{name}` version {version} is claimed by two Rust types: `{first}` and `{second}`; give one of them another `#[event(name = \"...\")]` or `version`"
    )]
    DuplicateEventType {
        /// The event type name both types claim.
        name: String,
        /// The schema version both types claim.
        version: u32,
        /// The first Rust type.
        first: &'static str,
        /// The second Rust type.
        second: &'static str,
    },

    /// The store holds event types that the registry cannot decode.
    ///
    /// Returned by [`crate::EventRegistry::verify_store`] so that a missing
    /// registration is found at start-up.
    #[error("the store holds event types with no registration: {}", .missing.join(", "))]
    UnregisteredEventTypes {
        /// `name@version (count events)` for every unregistered type.
        missing: Vec<String>,
    },

    /// A stored event could not be read back: bad JSON, a payload that does not fit the
    /// registered type, or an envelope column that does not parse.
    #[error("corrupt event at global position {global_position} (type `{event_type}`): {reason}")]
    CorruptEvent {
        /// Global position of the offending row.
        global_position: u64,
        /// Its event id, when that column at least is readable.
        event_id: Option<Uuid>,
        /// Its stored event type name.
        event_type: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An event could not be serialized to JSON.
    #[error("could not serialize event `{event_type}`: {source}")]
    Serialization {
        /// The event type name.
        event_type: String,
        /// The serde_json error.
        #[source]
        source: serde_json::Error,
    },

    /// A stream id string is not `"<uuid>:<aggregate type>"`.
    #[error("invalid stream id `{stream_id}`: expected \"<uuid>:<aggregate type>\"")]
    InvalidStreamId {
        /// The string that was given (its first 64 characters).
        stream_id: String,
    },

    /// The store was closed with `close()`; open a new one.
    #[error("the event store is closed")]
    StoreClosed,

    /// An argument is not acceptable (e.g. a control character the stores use as a
    /// separator in an aggregate type, event type or actor id).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
    },

    /// A configuration value is invalid.
    #[error("invalid configuration: {message}")]
    InvalidConfiguration {
        /// What is wrong.
        message: String,
    },

    /// The database could not be opened.
    #[error("could not open database `{database}`: {source}")]
    Connection {
        /// The database path or URL.
        database: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },

    /// The database exists but is not an event store this library can use.
    #[error("table `{table}` does not have the event store schema: {detail}")]
    SchemaMismatch {
        /// The table that does not fit.
        table: String,
        /// What is missing or wrong.
        detail: String,
    },

    /// A migration between stores cannot go on, or its result does not match its source
    /// (see `migrate_sqlite_to_postgres`). Nothing is deleted on either side.
    #[error("migration failed: {message}")]
    Migration {
        /// What does not fit.
        message: String,
    },

    /// A saved checkpoint cannot be trusted: it is beyond the store's head (the store was
    /// replaced or restored from an older backup) or does not read. A durable read model
    /// does not start from it; an in-memory one is rebuilt from the beginning instead.
    ///
    /// Handling: reset the checkpoint ([`crate::CheckpointStore::reset`], after clearing
    /// the read model) or save the position the read model really has.
    #[error("the checkpoint of `{projection}` cannot be trusted: {detail}; reset it (with its read model) or save the position the read model really has")]
    InvalidCheckpoint {
        /// The projection (subscription) name.
        projection: String,
        /// What is wrong with it.
        detail: String,
    },

    /// The store's schema is not there yet, or not complete: `initialize()` was not
    /// called on this database (or, on a database of eventsource-py, not yet to add the
    /// columns this library writes).
    #[error("the event store schema is not initialized in `{database}`: {detail}; call initialize() once before using the store")]
    SchemaNotInitialized {
        /// The database path, or the PostgreSQL schema.
        database: String,
        /// What is missing.
        detail: String,
    },

    /// A write was asked of a store opened read-only. (A database file the process may
    /// not write, opened read-write, fails its writes with [`Error::Database`] of kind
    /// [`DatabaseErrorKind::ReadOnly`].)
    #[error("`{operation}` needs to write, but the store `{database}` is read-only")]
    ReadOnly {
        /// The operation that was refused.
        operation: &'static str,
        /// The database path or URL.
        database: String,
    },

    /// The database reported an error. [`kind`](Error::Database::kind) tells whether it
    /// is worth retrying ([`Error::is_transient`]).
    #[error("database error during {operation} ({kind}): {source}")]
    Database {
        /// The store operation that failed (`append_events`, `read_all`, ...).
        operation: &'static str,
        /// What kind of failure it is.
        kind: DatabaseErrorKind,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

/// What kind of failure an [`Error::Database`] is: whether retrying can help.
///
/// | kind | transient | typical cause | what to do |
/// |---|---|---|---|
/// | `Busy` | yes | SQLite `database is locked` past the busy timeout; PostgreSQL deadlock, serialization failure, lock timeout | retry after a short wait |
/// | `ConnectionLost` | yes | server restart, dropped socket, refused connection, a crashed SQLite worker | retry; the pool opens a new connection |
/// | `PoolTimeout` | yes | every pooled connection stayed busy for the acquire timeout | retry, or give the pool more connections |
/// | `StorageFull` | no | disk or database full | free space, then retry |
/// | `ReadOnly` | no | the file or server refuses writes | open the store read-write |
/// | `Io` | no | the database file could not be read or written | check the disk |
/// | `Corrupt` | no | a row or the file does not read as the schema says | see the message; the rest of the store is readable |
/// | `Other` | no | anything else (SQL errors, constraint violations) | see the message |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DatabaseErrorKind {
    /// The database is locked by another connection or process, or a transaction lost a
    /// race it can win on a second try.
    Busy,
    /// The connection was lost or could not be made.
    ConnectionLost,
    /// No pooled connection became free in time.
    PoolTimeout,
    /// The disk or the database is full.
    StorageFull,
    /// The database refuses writes.
    ReadOnly,
    /// Reading or writing the database file failed.
    Io,
    /// Stored data does not read as the schema says.
    Corrupt,
    /// Anything else.
    Other,
}

impl DatabaseErrorKind {
    /// `true` for the kinds a plain retry can cure: [`Busy`](Self::Busy),
    /// [`ConnectionLost`](Self::ConnectionLost), [`PoolTimeout`](Self::PoolTimeout).
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Busy | Self::ConnectionLost | Self::PoolTimeout)
    }
}

impl std::fmt::Display for DatabaseErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Busy => "busy",
            Self::ConnectionLost => "connection lost",
            Self::PoolTimeout => "pool timeout",
            Self::StorageFull => "storage full",
            Self::ReadOnly => "read-only",
            Self::Io => "I/O error",
            Self::Corrupt => "corrupt data",
            Self::Other => "other",
        })
    }
}

impl Error {
    /// `true` for [`Error::OptimisticLock`]: the operation can be retried after a reload.
    pub fn is_optimistic_lock(&self) -> bool {
        matches!(self, Error::OptimisticLock { .. })
    }

    /// `true` when the same operation, retried unchanged after a short wait, may
    /// succeed: a busy database, a lost connection or an exhausted pool (see
    /// [`DatabaseErrorKind`]). An [`OptimisticLock`](Error::OptimisticLock) is not
    /// transient: it needs a reload first.
    ///
    /// ```
    /// use eventsource::{DatabaseErrorKind, Error};
    /// let busy = Error::Database {
    ///     operation: "append_events",
    ///     kind: DatabaseErrorKind::Busy,
    ///     source: "database is locked".into(),
    /// };
    /// assert!(busy.is_transient());
    /// assert!(!Error::StoreClosed.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database { kind, .. } => kind.is_transient(),
            _ => false,
        }
    }

    /// The [`DatabaseErrorKind`] of an [`Error::Database`].
    pub fn database_kind(&self) -> Option<DatabaseErrorKind> {
        match self {
            Error::Database { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}
