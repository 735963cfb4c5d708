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
    #[error("subscription `{subscription}` did not reach position {position} in time (it is at {reached})")]
    WaitTimeout {
        /// The subscription.
        subscription: String,
        /// The position waited for.
        position: u64,
        /// The position it had reached.
        reached: u64,
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
        /// The string that was given.
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

    /// The database reported an error.
    #[error("database error during {operation}: {source}")]
    Database {
        /// The store operation that failed (`append_events`, `read_all`, ...).
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// `true` for [`Error::OptimisticLock`]: the operation can be retried after a reload.
    pub fn is_optimistic_lock(&self) -> bool {
        matches!(self, Error::OptimisticLock { .. })
    }
}
