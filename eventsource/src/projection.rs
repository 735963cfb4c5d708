//! Projections: read models built from events. The [`Projection`] trait is implemented by
//! `#[projection]` on an `impl` block whose `#[handles]` async methods each take one event
//! type; a [`crate::SubscriptionManager`] feeds it from the store.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::envelope::EventEnvelope;
use crate::error::BoxError;
use crate::event::EventPayload;
use crate::stored::StoredEvent;

/// What a `#[handles]` method may be told about the event beyond its payload.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    event: &'a StoredEvent,
}

impl<'a> EventContext<'a> {
    /// The context of a stored event.
    pub fn new(event: &'a StoredEvent) -> Self {
        EventContext { event }
    }

    /// The envelope (ids, versions, timestamp, tenant, actor, metadata).
    pub fn envelope(&self) -> &'a EventEnvelope {
        &self.event.envelope
    }

    /// The aggregate the event belongs to.
    pub fn aggregate_id(&self) -> Uuid {
        self.event.envelope.aggregate_id
    }

    /// The position across all events.
    pub fn global_position(&self) -> u64 {
        self.event.global_position
    }

    /// The position in the aggregate's stream.
    pub fn stream_position(&self) -> u64 {
        self.event.stream_position
    }

    /// The whole stored event.
    pub fn stored_event(&self) -> &'a StoredEvent {
        self.event
    }
}

/// A read model fed with events in global order.
///
/// Usually implemented by `#[projection]`:
///
/// ```
/// use std::collections::HashMap;
/// use eventsource::{projection, DomainEvent, EventContext};
/// use serde::{Deserialize, Serialize};
/// use uuid::Uuid;
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// struct TaskCreated { title: String }
///
/// #[derive(Debug, Default)]
/// struct TaskList { titles: HashMap<Uuid, String> }
///
/// #[projection(name = "TaskList")]
/// impl TaskList {
///     #[handles]
///     async fn created(&mut self, event: &TaskCreated, ctx: &EventContext<'_>) {
///         self.titles.insert(ctx.aggregate_id(), event.title.clone());
///     }
///
///     #[reset]
///     async fn clear(&mut self) {
///         self.titles.clear();
///     }
/// }
///
/// use eventsource::Projection;
/// let list = TaskList::default();
/// assert_eq!(list.name(), "TaskList");
/// assert_eq!(list.handled_event_types(), ["TaskCreated"]);
/// ```
#[async_trait]
pub trait Projection: Send + 'static {
    /// The projection's name (checkpoints and dead letters are kept under the name its
    /// subscription is given).
    fn name(&self) -> &str;

    /// The event types it handles; reads from the store are filtered to these in SQL.
    fn handled_event_types(&self) -> &'static [&'static str];

    /// Applies one event to the read model. Events of types it does not handle are
    /// skipped (`Ok`).
    ///
    /// # Errors
    /// The handler's error: the subscription retries by its policy, then dead-letters the
    /// event and goes on.
    async fn handle(&mut self, event: &StoredEvent) -> Result<(), BoxError>;

    /// `true` when the read model outlives the process (its handlers write it to a
    /// database), so that [`StartFrom::Checkpoint`](crate::StartFrom::Checkpoint) may
    /// resume it from a checkpoint saved by an earlier process. `false` for a read model
    /// in memory: a new process starts it empty, so it is rebuilt from the beginning
    /// instead of silently missing every event before the checkpoint.
    ///
    /// `#[projection]` generates `false`, or `true` with `#[projection(durable = true)]`.
    /// There is no default: a hand-written projection says which it is, since a wrong
    /// answer either loses events (in memory, resumed) or applies them twice (durable,
    /// rebuilt).
    fn is_durable(&self) -> bool;

    /// Clears the read model before a rebuild.
    ///
    /// # Errors
    /// The reset's error, or (by default) that the projection cannot be reset.
    async fn reset(&mut self) -> Result<(), BoxError> {
        Err(format!(
            "projection `{}` has no #[reset] method; it cannot be rebuilt",
            self.name()
        )
        .into())
    }
}

/// A durable read model whose writes go through the transaction that also moves its
/// checkpoint (and records its dead letters), so that after a crash at any point every
/// event is applied exactly once. `C` is the backend's connection inside that
/// transaction: `sqlx::SqliteConnection` (run by
/// [`SqliteProjectionRunner`](crate::SqliteProjectionRunner)) or `sqlx::PgConnection`
/// (run by `PostgresProjectionRunner`).
///
/// Usually implemented by `#[projection]` on handlers that take the connection:
///
/// ```
/// use eventsource::prelude::*;
/// use eventsource::sqlx::{self, SqliteConnection};
/// use eventsource::TransactionalProjection;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct OrderPlaced { total: f64 }
///
/// #[derive(Debug, Default)]
/// struct Revenue;
///
/// #[projection(name = "revenue")]
/// impl Revenue {
///     #[handles]
///     async fn placed(&mut self, e: &OrderPlaced, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
///         sqlx::query("UPDATE revenue SET total = total + ?").bind(e.total).execute(conn).await?;
///         Ok(())
///     }
///
///     #[reset]
///     async fn clear(&mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
///         sqlx::query("UPDATE revenue SET total = 0").execute(conn).await.map(|_| ())
///     }
/// }
///
/// let revenue = Revenue;
/// assert_eq!(TransactionalProjection::<SqliteConnection>::name(&revenue), "revenue");
/// ```
#[async_trait]
pub trait TransactionalProjection<C: Send + ?Sized>: Send + 'static {
    /// The projection's name (its checkpoint and dead letters are kept under the name the
    /// runner is given).
    fn name(&self) -> &str;

    /// The event types it handles; reads are filtered to these.
    fn handled_event_types(&self) -> &'static [&'static str];

    /// Applies one event to the read model, writing through `conn`.
    ///
    /// # Errors
    /// The handler's error: its writes for this event are rolled back, it is retried by
    /// the policy, then dead-lettered (in the same transaction).
    async fn handle(&mut self, event: &StoredEvent, conn: &mut C) -> Result<(), BoxError>;

    /// Clears the read model before a rebuild, in the transaction that resets the
    /// checkpoint.
    ///
    /// # Errors
    /// The reset's error, or (by default) that the projection cannot be reset.
    async fn reset(&mut self, conn: &mut C) -> Result<(), BoxError> {
        let _ = conn;
        Err(format!(
            "projection `{}` has no #[reset] method; it cannot be rebuilt",
            self.name()
        )
        .into())
    }
}

/// What one batch of a [`TransactionalProjection`]'s runner did (its read-model writes,
/// dead letters and checkpoint committed in one transaction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Events applied.
    pub applied: u64,
    /// Events dead-lettered.
    pub dead_lettered: u64,
    /// The checkpoint after the batch.
    pub position: u64,
    /// The store's head position when the batch was read.
    pub head: u64,
    /// `true` when the batch reached the head of the store.
    pub caught_up: bool,
    /// When a handler failed and will be retried: the batch ended before that event,
    /// and the runner waits this long (outside any transaction) before trying again.
    pub retry_after: Option<Duration>,
    /// With [`retry_after`](Self::retry_after): the handler's error.
    pub retry_error: Option<String>,
    /// The events this batch dead-lettered, in order (their dead letters are committed
    /// with it).
    pub dead_letters: Vec<BatchDeadLetter>,
}

/// How far a rebuild of a durable read model has come, after each batch (what a progress
/// bar draws).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// The position applied up to.
    pub position: u64,
    /// The store's head when the batch was read: the rebuild is done at it.
    pub head: u64,
    /// Events applied since the rebuild began.
    pub applied: u64,
    /// Events dead-lettered since the rebuild began.
    pub dead_lettered: u64,
}

/// An event a batch dead-lettered: the handler failed on it as often as the retry policy
/// allows, or its row could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDeadLetter {
    /// Its global position.
    pub global_position: u64,
    /// Its event type.
    pub event_type: String,
    /// Why.
    pub error: String,
}

/// The return types a `#[handles]` method may have: `()` or `Result<(), E>`.
pub trait IntoHandlerResult {
    /// The result as the subscription sees it.
    ///
    /// # Errors
    /// The handler's own error, boxed.
    fn into_handler_result(self) -> Result<(), BoxError>;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// For generated code: the error for an event of a handled type name whose payload did
/// not decode to a Rust type (its version is not registered).
#[doc(hidden)]
pub fn undecodable(projection: &str, payload: &EventPayload) -> Result<(), BoxError> {
    Err(format!(
        "projection `{projection}` handles `{}` but version {} of it is not registered",
        payload.event_type(),
        payload.event_version()
    )
    .into())
}
