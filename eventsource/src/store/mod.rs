//! The [`EventStore`] trait and the types of its operations.
//!
//! Backends: [`InMemoryEventStore`] (always available) and `SqliteEventStore`
//! (feature `sqlite`, the default). All of them pass one conformance suite.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use uuid::Uuid;

use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::stored::{EventStream, StoredEvent};

/// Runs an operation's body inside a `debug` tracing span named after the operation, with
/// the given fields (`traced!("append_events", backend = "sqlite", %aggregate_id, { .. })`).
macro_rules! traced {
    ($name:literal, $($field:tt)*) => {
        traced!(@split $name, [] $($field)*)
    };
    (@split $name:literal, [$($fields:tt)*] { $($body:tt)* }) => {{
        let span = tracing::debug_span!($name, $($fields)*);
        tracing::Instrument::instrument(async move { $($body)* }, span).await
    }};
    (@split $name:literal, [$($fields:tt)*] $next:tt $($rest:tt)*) => {
        traced!(@split $name, [$($fields)* $next] $($rest)*)
    };
}

mod expand;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod group_commit;
mod memory;
mod options;
pub(crate) mod page;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod runner;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod schema_state;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
mod validate;

pub use memory::InMemoryEventStore;
pub use options::{GetEventsOptions, ReadDirection, ReadOptions};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use runner::ProjectionRunnerHandle;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use validate::clamp_timestamp;
#[cfg(feature = "sqlite")]
pub(crate) use validate::quoted;
pub(crate) use validate::{capped, check_batch, check_json};

/// An async stream of stored events, as returned by [`EventStore::read_all`] and
/// [`EventStore::read_stream`]. Rows are fetched in pages, never all at once.
///
/// An item is an error when a row cannot be read back (e.g. [`Error::CorruptEvent`]); the
/// stream goes on with the next row after it. A database failure ends the stream, and so
/// does a `read_stream` row whose version itself does not read on SQLite (the next page
/// would start after it).
pub type StoredEventStream<'a> = BoxStream<'a, Result<StoredEvent>>;

/// The version a stream must be at for an append to succeed (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check: append at whatever version the stream is. Disables conflict detection.
    Any,
    /// The stream must not exist yet (version 0): creating a new aggregate.
    NoStream,
    /// The stream must exist (version > 0).
    StreamExists,
    /// The stream must be at exactly this version; `Exact(0)` is the same as `NoStream`.
    Exact(u64),
}

impl ExpectedVersion {
    /// `true` when a stream at `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::StreamExists => actual > 0,
            ExpectedVersion::Exact(n) => actual == n,
        }
    }
}

impl From<u64> for ExpectedVersion {
    /// `0` is [`ExpectedVersion::NoStream`], anything else [`ExpectedVersion::Exact`].
    fn from(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("0 (no stream)"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// The outcome of [`EventStore::append_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
///
/// A returned result means the events are stored: a conflict is
/// [`Error::OptimisticLock`], not a flag (eventsource-py's `success` and `conflict` are
/// the `Ok` and the error here).
pub struct AppendResult {
    /// The stream's version after the append.
    pub new_version: u64,
    /// The global position of the last event of the batch (of the store, for an empty
    /// batch).
    pub global_position: u64,
    /// `true` when every event of the (non-empty) batch was stored already, in this
    /// stream, by an earlier call: a retried batch whose acknowledgement was lost, for
    /// which nothing was written and the version check was skipped.
    pub already_stored: bool,
}

/// The stream of one aggregate: `"<aggregate id>:<aggregate type>"` as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamId {
    /// The aggregate id.
    pub aggregate_id: Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
}

impl StreamId {
    /// The stream of an aggregate.
    pub fn new(aggregate_id: Uuid, aggregate_type: impl Into<String>) -> Self {
        StreamId {
            aggregate_id,
            aggregate_type: aggregate_type.into(),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.aggregate_id, self.aggregate_type)
    }
}

impl FromStr for StreamId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidStreamId {
            stream_id: capped(s),
        };
        let (id, aggregate_type) = s.split_once(':').ok_or_else(invalid)?;
        if aggregate_type.is_empty() {
            return Err(invalid());
        }
        let aggregate_id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(StreamId::new(aggregate_id, aggregate_type))
    }
}

/// How many events of one type and version a store holds (see
/// [`EventStore::event_type_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeCount {
    /// The event type name.
    pub event_type: String,
    /// The schema version.
    pub event_version: u32,
    /// The number of stored events.
    pub count: u64,
}

/// An append-only store of events, grouped in streams (one per aggregate) and ordered
/// globally.
///
/// Object safe: `Arc<dyn EventStore>` works, and code written against it runs on every
/// backend (memory, SQLite, PostgreSQL):
///
/// ```
/// use eventsource::prelude::*;
/// use eventsource::Error;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # #[event(aggregate = "Task")]
/// # struct TaskCreated { title: String }
///
/// async fn append_and_read(store: &dyn EventStore) -> eventsource::Result<()> {
///     let id = uuid::Uuid::new_v4();
///     let first = NewEvent::new(TaskCreated { title: "a".into() });
///     let done = store.append_events(id, "Task", vec![first], ExpectedVersion::NoStream).await?;
///     assert_eq!((done.new_version, done.global_position), (1, 1));
///
///     // A writer that read version 0 is refused: optimistic concurrency.
///     let late = NewEvent::new(TaskCreated { title: "b".into() });
///     let refused = store.append_events(id, "Task", vec![late], ExpectedVersion::Exact(0)).await;
///     assert!(matches!(refused, Err(Error::OptimisticLock { actual: 1, .. })));
///
///     // The stream, and every stream in global order.
///     let stream = store.get_events(id, "Task", GetEventsOptions::default()).await?;
///     assert_eq!(stream.events[0].event::<TaskCreated>()?.title, "a");
///     let mut all = store.read_all(ReadOptions::new().event_types(["TaskCreated"]));
///     while let Some(event) = all.next().await {
///         println!("{}", event?.global_position);
///     }
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// append_and_read(&InMemoryEventStore::new()).await?;
/// let sqlite = SqliteEventStore::open(":memory:").await?;
/// sqlite.initialize().await?;
/// append_and_read(&sqlite).await
/// # }
/// ```
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug {
    /// Appends `events` to the stream of `aggregate_id`/`aggregate_type` atomically: all
    /// of them or none. The store assigns aggregate versions after the stream's current
    /// version.
    ///
    /// Events whose id is already stored are skipped; a batch that is stored entirely
    /// (re-sent after a lost acknowledgement) returns success with the stream's current
    /// version.
    ///
    /// # Errors
    /// [`Error::OptimisticLock`] when the stream is not at `expected_version`;
    /// [`Error::Serialization`] when an event does not serialize; database errors.
    async fn append_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        events: Vec<NewEvent>,
        expected_version: ExpectedVersion,
    ) -> Result<AppendResult>;

    /// The events of one aggregate, in version order, optionally filtered.
    ///
    /// # Errors
    /// [`Error::CorruptEvent`] when a stored event cannot be read back; database errors.
    async fn get_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        options: GetEventsOptions,
    ) -> Result<EventStream>;

    /// Streams the events of one aggregate.
    ///
    /// Reads page by page, so memory stays flat however long the stream. The SQL stores
    /// read the next pages ahead in a tokio task of their own, started at the first poll
    /// and stopped when the stream is dropped. A stream polled outside a tokio runtime
    /// yields [`Error::Database`].
    fn read_stream<'a>(
        &'a self,
        stream_id: &StreamId,
        options: ReadOptions,
    ) -> StoredEventStream<'a>;

    /// Streams all events in global order (or reverse), filtered by `options`. Read page
    /// by page and ahead of the caller, like [`EventStore::read_stream`].
    fn read_all(&self, options: ReadOptions) -> StoredEventStream<'_>;

    /// All events of an aggregate type, optionally of one tenant and from a time on, in
    /// global order. Loads the whole result: prefer [`EventStore::read_all`] for large
    /// sets.
    ///
    /// # Errors
    /// [`Error::CorruptEvent`] when a stored event cannot be read back; database errors.
    async fn get_events_by_type(
        &self,
        aggregate_type: &str,
        tenant_id: Option<Uuid>,
        from_timestamp: Option<DateTime<Utc>>,
    ) -> Result<Vec<StoredEvent>>;

    /// `true` when an event with this id is stored.
    ///
    /// # Errors
    /// Database errors.
    async fn event_exists(&self, event_id: Uuid) -> Result<bool>;

    /// The current version of a stream (0 when it does not exist).
    ///
    /// # Errors
    /// Database errors.
    async fn get_stream_version(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<u64>;

    /// The highest global position in the store (0 when empty).
    ///
    /// # Errors
    /// Database errors.
    async fn get_global_position(&self) -> Result<u64>;

    /// Every stored event type and schema version with its number of events, sorted by
    /// name and version. Used by [`crate::EventRegistry::verify_store`].
    ///
    /// # Errors
    /// Database errors.
    async fn event_type_counts(&self) -> Result<Vec<EventTypeCount>>;

    /// The payloads of one stream from `from_version` on (inclusive), in version order,
    /// without their envelopes: what rebuilding an aggregate needs
    /// ([`crate::AggregateRepository::load`]). The default reads
    /// [`get_events`](Self::get_events); the SQLite store reads less.
    ///
    /// # Errors
    /// [`Error::CorruptEvent`] when a stored event cannot be read back; database errors.
    async fn replay_stream(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        from_version: u64,
    ) -> Result<Vec<ReplayedEvent>> {
        let options = if from_version > 1 {
            GetEventsOptions::from_version(from_version)
        } else {
            GetEventsOptions::default()
        };
        let stream = self
            .get_events(aggregate_id, aggregate_type, options)
            .await?;
        Ok(stream
            .events
            .into_iter()
            .map(|e| ReplayedEvent {
                global_position: e.global_position,
                version: e.stream_position,
                payload: e.payload,
            })
            .collect())
    }

    /// [`replay_stream`](Self::replay_stream) a page at a time, in version order, so
    /// that a long stream is never held whole: what
    /// [`crate::AggregateRepository::load`] applies as it reads. The default returns
    /// `replay_stream`'s events as one page; the SQLite store reads pages of 1,000 by
    /// version, the next one while the caller applies this one. A page read after
    /// another writer appended to the stream includes its events: the replay ends at
    /// the stream's version when its last page is read.
    ///
    /// # Errors
    /// As [`replay_stream`](Self::replay_stream), as an item of the stream; it ends
    /// after an error.
    fn replay_stream_pages<'a>(
        &'a self,
        aggregate_id: Uuid,
        aggregate_type: &'a str,
        from_version: u64,
    ) -> BoxStream<'a, Result<Vec<ReplayedEvent>>> {
        Box::pin(futures::stream::once(self.replay_stream(
            aggregate_id,
            aggregate_type,
            from_version,
        )))
    }
}

/// An event of a stream as [`EventStore::replay_stream`] returns it: positions and payload.
#[derive(Debug, Clone)]
pub struct ReplayedEvent {
    /// Its global position.
    pub global_position: u64,
    /// Its version in the stream.
    pub version: u64,
    /// The decoded payload, or raw JSON for an unregistered type.
    pub payload: crate::event::EventPayload,
}

/// What an append must write after the idempotency and version checks.
#[derive(Debug)]
pub(crate) enum AppendPlan {
    /// Every event is stored already (a retried batch), or the batch is empty.
    Nothing,
    /// Write these events (indexes into the batch) after the stream's current version.
    Write { fresh: Vec<usize> },
}

/// Where an event id is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredId {
    /// Not stored.
    No,
    /// Stored in the stream being appended to.
    InThisStream,
    /// Stored in another stream, at this global position.
    Elsewhere(u64),
}

/// The shared append rules: drop events already stored in this stream (or repeated in the
/// batch), refuse ids stored in another stream, then check the expected version.
pub(crate) fn plan_append(
    aggregate_id: Uuid,
    aggregate_type: &str,
    events: &[NewEvent],
    expected: ExpectedVersion,
    current: u64,
    stored: impl Fn(Uuid) -> StoredId,
) -> Result<AppendPlan> {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let mut fresh = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if !seen.insert(event.event_id) {
            continue;
        }
        match stored(event.event_id) {
            StoredId::No => fresh.push(i),
            StoredId::InThisStream => {}
            StoredId::Elsewhere(global_position) => {
                return Err(Error::DuplicateEventId {
                    event_id: event.event_id,
                    global_position,
                })
            }
        }
    }
    if fresh.is_empty() && !events.is_empty() {
        return Ok(AppendPlan::Nothing);
    }
    if !expected.matches(current) {
        return Err(Error::OptimisticLock {
            aggregate_id,
            aggregate_type: aggregate_type.to_owned(),
            expected,
            actual: current,
        });
    }
    if fresh.is_empty() {
        return Ok(AppendPlan::Nothing);
    }
    Ok(AppendPlan::Write { fresh })
}
