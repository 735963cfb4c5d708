//! Given events, handled by a projection: envelopes and positions built for the test.

use std::collections::HashMap;
use std::fmt;

use chrono::Utc;
use uuid::Uuid;

use super::round_trip;
use crate::envelope::NewEvent;
use crate::error::BoxError;
use crate::projection::Projection;
use crate::stored::StoredEvent;

/// The aggregate type given to events that declare none (`#[event(aggregate = ...)]`).
pub const UNDECLARED_AGGREGATE_TYPE: &str = "Test";

/// Stored events made for a test, as a store would return them: global positions from 1
/// in the order given, stream versions per aggregate, the envelope fields of each
/// [`NewEvent`] (with a tenant for all of them when [`tenant`](Self::tenant) is set), and
/// payloads that went through the JSON round trip of a store.
///
/// ```
/// use eventsource::prelude::*;
/// use eventsource::testing::TestEvents;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Task")]
/// struct TaskCreated { title: String }
///
/// let task = uuid::Uuid::new_v4();
/// let events = TestEvents::new()
///     .event(task, TaskCreated { title: "a".into() })
///     .event(uuid::Uuid::new_v4(), TaskCreated { title: "b".into() })
///     .event(task, TaskCreated { title: "c".into() })
///     .into_events();
/// let positions: Vec<_> = events.iter().map(|e| (e.global_position, e.stream_position)).collect();
/// assert_eq!(positions, [(1, 1), (2, 1), (3, 2)]);
/// assert_eq!(events[2].aggregate_type(), "Task");
/// ```
#[derive(Debug, Clone, Default)]
pub struct TestEvents {
    events: Vec<StoredEvent>,
    versions: HashMap<(Uuid, String), u64>,
    tenant_id: Option<Uuid>,
}

impl TestEvents {
    /// No events yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives every event added from now on this tenant (unless it sets its own).
    pub fn tenant(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    /// Adds an event of `aggregate_id`, whose aggregate type is the one the event
    /// declares ([`UNDECLARED_AGGREGATE_TYPE`] when it declares none).
    ///
    /// # Panics
    /// When the event does not survive the JSON round trip a store would give it.
    #[track_caller]
    pub fn event(self, aggregate_id: Uuid, event: impl Into<NewEvent>) -> Self {
        let event = event.into();
        let aggregate_type = match event.payload() {
            crate::EventPayload::Typed(typed) => typed.aggregate_type(),
            crate::EventPayload::Raw(_) => None,
        }
        .unwrap_or(UNDECLARED_AGGREGATE_TYPE);
        self.event_in(aggregate_id, aggregate_type, event)
    }

    /// Adds an event to the stream `aggregate_id` of `aggregate_type`.
    ///
    /// # Panics
    /// When the event does not survive the JSON round trip a store would give it.
    #[track_caller]
    pub fn event_in(
        mut self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        event: impl Into<NewEvent>,
    ) -> Self {
        let mut event = event.into();
        if event.tenant_id.is_none() {
            event.tenant_id = self.tenant_id;
        }
        let global_position = self.events.len() as u64 + 1;
        let version = self
            .versions
            .entry((aggregate_id, aggregate_type.to_owned()))
            .or_insert(0);
        *version += 1;
        let event = round_trip(event, global_position);
        self.events.push(StoredEvent {
            envelope: event.envelope(aggregate_id, aggregate_type, *version),
            global_position,
            stream_position: *version,
            stored_at: Utc::now(),
            payload: event.payload,
        });
        self
    }

    /// The events so far.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The events, in order.
    pub fn into_events(self) -> Vec<StoredEvent> {
        self.events
    }
}

/// A handler that failed in a [`ProjectionTest`]: the event and the error.
#[derive(Debug)]
pub struct HandlerFailure {
    /// The event the handler failed on.
    pub event: StoredEvent,
    /// The handler's error.
    pub error: BoxError,
}

impl fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the handler of `{}` at global position {} failed: {}",
            self.event.event_type(),
            self.event.global_position,
            self.error
        )
    }
}

impl std::error::Error for HandlerFailure {}

/// A projection test: events given to a read model in order, then checks on it.
///
/// Each event is handed to [`Projection::handle`] as a subscription would, but only when
/// the projection handles its type (a subscription reads only those from the store).
///
/// ```
/// use std::collections::HashMap;
/// use eventsource::prelude::*;
/// use eventsource::testing::ProjectionTest;
/// use serde::{Deserialize, Serialize};
/// use uuid::Uuid;
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Task")]
/// struct TaskCreated { title: String }
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Task")]
/// struct TaskCompleted {}
///
/// #[derive(Debug, Default)]
/// struct OpenTasks { titles: HashMap<Uuid, String> }
///
/// #[projection]
/// impl OpenTasks {
///     #[handles]
///     async fn created(&mut self, e: &TaskCreated, ctx: &EventContext<'_>) {
///         self.titles.insert(ctx.aggregate_id(), e.title.clone());
///     }
///     #[handles]
///     async fn completed(&mut self, _: &TaskCompleted, ctx: &EventContext<'_>) {
///         self.titles.remove(&ctx.aggregate_id());
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
/// let open = ProjectionTest::new(OpenTasks::default())
///     .given(a, TaskCreated { title: "write".into() })
///     .given(b, TaskCreated { title: "test".into() })
///     .given(a, TaskCompleted {})
///     .run()
///     .await;
/// assert_eq!(open.titles.values().collect::<Vec<_>>(), ["test"]);
/// # }
/// ```
#[derive(Debug)]
pub struct ProjectionTest<P: Projection> {
    projection: P,
    events: TestEvents,
}

impl<P: Projection> ProjectionTest<P> {
    /// A test of `projection`, with no events yet.
    pub fn new(projection: P) -> Self {
        ProjectionTest {
            projection,
            events: TestEvents::new(),
        }
    }

    /// Gives every event from now on this tenant (unless it sets its own).
    pub fn tenant(mut self, tenant_id: Uuid) -> Self {
        self.events = self.events.tenant(tenant_id);
        self
    }

    /// Adds an event of `aggregate_id` (see [`TestEvents::event`]).
    ///
    /// # Panics
    /// When the event does not survive a store's JSON round trip.
    #[track_caller]
    pub fn given(mut self, aggregate_id: Uuid, event: impl Into<NewEvent>) -> Self {
        self.events = self.events.event(aggregate_id, event);
        self
    }

    /// Adds an event to a stream of `aggregate_type` (see [`TestEvents::event_in`]).
    ///
    /// # Panics
    /// When the event does not survive a store's JSON round trip.
    #[track_caller]
    pub fn given_in(
        mut self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        event: impl Into<NewEvent>,
    ) -> Self {
        self.events = self.events.event_in(aggregate_id, aggregate_type, event);
        self
    }

    /// The events given so far, as stored events.
    pub fn events(&self) -> &[StoredEvent] {
        self.events.events()
    }

    /// Hands every given event the projection handles to it, in order; returns the read
    /// model.
    ///
    /// # Panics
    /// When a handler fails, naming the event.
    pub async fn run(self) -> P {
        match self.try_run().await {
            Ok(projection) => projection,
            Err(failure) => panic!("{failure}"),
        }
    }

    /// As [`run`](Self::run), returning the first handler failure instead of panicking
    /// (the events after it are not handled).
    ///
    /// # Errors
    /// The first failing handler's event and error.
    pub async fn try_run(self) -> Result<P, HandlerFailure> {
        let ProjectionTest {
            mut projection,
            events,
        } = self;
        let handled = projection.handled_event_types();
        for event in events.into_events() {
            if !handled.contains(&event.event_type()) {
                continue;
            }
            if let Err(error) = projection.handle(&event).await {
                return Err(HandlerFailure { event, error });
            }
        }
        Ok(projection)
    }
}
