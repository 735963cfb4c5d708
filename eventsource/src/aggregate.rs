//! Aggregates: the [`Aggregate`] trait that `#[aggregate]` implements, and
//! [`AggregateRoot`], which holds an aggregate's id, version, state and uncommitted events.

use std::fmt;

use serde_json::Value;
use uuid::Uuid;

use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::event::{AnyEvent, DomainEvent, EventPayload};
use crate::store::ReplayedEvent;

/// The state of an event-sourced aggregate, rebuilt by applying its events in order.
///
/// Implemented by `#[aggregate(name = "...")]` on an `impl` block whose `#[apply]` methods
/// each take one event type:
///
/// ```
/// use eventsource::{aggregate, Aggregate, AggregateRoot, DomainEvent};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Counter")]
/// struct Incremented { by: u32 }
///
/// #[derive(Debug, Default)]
/// struct Counter { total: u32 }
///
/// #[aggregate(name = "Counter")]
/// impl Counter {
///     #[apply]
///     fn incremented(&mut self, e: &Incremented) {
///         self.total += e.by;
///     }
/// }
///
/// let mut root = AggregateRoot::<Counter>::new(uuid::Uuid::new_v4());
/// root.apply_event(Incremented { by: 2 });
/// assert_eq!(root.state().total, 2);
/// assert_eq!(root.version(), 1);
/// assert_eq!(Counter::handled_event_types(), ["Incremented"]);
/// ```
pub trait Aggregate: Sized + Send + Sync + 'static {
    /// The aggregate type name stored with every event (`"Account"`).
    const AGGREGATE_TYPE: &'static str;
    /// The schema version of the state in snapshots; a snapshot written with another
    /// version is ignored (the state is rebuilt from events), never misread.
    const SNAPSHOT_VERSION: u32;

    /// The state of a new aggregate, before its first event.
    fn initial_state(aggregate_id: Uuid) -> Self;

    /// The event type names this aggregate applies.
    fn handled_event_types() -> &'static [&'static str];

    /// Applies a type-erased event; `false` when the aggregate has no `#[apply]` method for
    /// its type (the state is then unchanged).
    fn apply_any(&mut self, event: &dyn AnyEvent) -> bool;
}

/// An `#[aggregate]` type's entry for `events.lock`: its name, snapshot version and Rust
/// path. Submitted through `inventory` by the macro.
#[derive(Debug, Clone, Copy)]
pub struct AggregateRegistration {
    /// The aggregate type name.
    pub name: &'static str,
    /// [`Aggregate::SNAPSHOT_VERSION`].
    pub snapshot_version: u32,
    /// The Rust path of the state type.
    pub type_name: &'static str,
}

inventory::collect!(AggregateRegistration);

/// `A` applies events of type `E`: implemented by `#[aggregate]` for every `#[apply]`
/// method, so [`AggregateRoot::apply_event`] only accepts events the aggregate handles.
#[diagnostic::on_unimplemented(
    message = "aggregate `{Self}` has no #[apply] method for `{E}`",
    label = "not applied by `{Self}`",
    note = "add `#[apply] fn name(&mut self, event: &{E})` to the #[aggregate] impl block"
)]
pub trait Apply<E: DomainEvent>: Aggregate {
    /// Updates the state with `event`.
    fn apply(&mut self, event: &E);
}

/// Not an event: an uninhabited type every aggregate "applies". With it, a call of
/// [`AggregateRoot::apply_event`] with an event the aggregate has no `#[apply]` method
/// for reports exactly that, even when the aggregate has a single `#[apply]` method
/// (type inference would otherwise settle on that method's event type and report a type
/// mismatch).
#[doc(hidden)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum NoEvent {}

impl DomainEvent for NoEvent {
    const EVENT_TYPE: &'static str = "eventsource::NoEvent";
    const AGGREGATE_TYPE: Option<&'static str> = None;
    const VERSION: u32 = 1;
}

impl<A: Aggregate> Apply<NoEvent> for A {
    fn apply(&mut self, event: &NoEvent) {
        match *event {}
    }
}

/// Envelope fields given to every event an [`AggregateRoot`] records.
#[derive(Debug, Clone, Default, PartialEq)]
struct EventDefaults {
    tenant_id: Option<Uuid>,
    actor_id: Option<String>,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    metadata: serde_json::Map<String, Value>,
}

/// An aggregate instance: id, version, state and the events recorded since it was loaded.
///
/// Commands are methods of the state type that return the events they decide, applied by
/// [`execute`](Self::execute) (see [`crate::command`]); or functions of the root that
/// validate against [`state`](Self::state) and call [`apply_event`](Self::apply_event).
/// The repository saves the uncommitted events with the loaded version as the expected
/// version.
pub struct AggregateRoot<A: Aggregate> {
    aggregate_id: Uuid,
    version: u64,
    state: A,
    uncommitted: Vec<NewEvent>,
    defaults: EventDefaults,
}

impl<A: Aggregate + fmt::Debug> fmt::Debug for AggregateRoot<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateRoot")
            .field("aggregate_type", &A::AGGREGATE_TYPE)
            .field("aggregate_id", &self.aggregate_id)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("uncommitted", &self.uncommitted.len())
            .finish()
    }
}

impl<A: Aggregate> AggregateRoot<A> {
    /// A new aggregate at version 0 with its initial state.
    pub fn new(aggregate_id: Uuid) -> Self {
        Self::from_state(aggregate_id, 0, A::initial_state(aggregate_id))
    }

    /// An aggregate at `version` with `state` (e.g. from a snapshot).
    pub fn from_state(aggregate_id: Uuid, version: u64, state: A) -> Self {
        AggregateRoot {
            aggregate_id,
            version,
            state,
            uncommitted: Vec::new(),
            defaults: EventDefaults::default(),
        }
    }

    /// The aggregate id.
    pub fn aggregate_id(&self) -> Uuid {
        self.aggregate_id
    }

    /// The aggregate type.
    pub fn aggregate_type(&self) -> &'static str {
        A::AGGREGATE_TYPE
    }

    /// The version: the number of events applied, stored or not.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version the next recorded event gets.
    pub fn get_next_version(&self) -> u64 {
        self.version + 1
    }

    /// The version the aggregate had in the store (version minus uncommitted events).
    pub fn committed_version(&self) -> u64 {
        self.version - self.uncommitted.len() as u64
    }

    /// The current state.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Consumes the root, returning its state.
    pub fn into_state(self) -> A {
        self.state
    }

    /// The events recorded since the aggregate was loaded or last saved.
    pub fn uncommitted_events(&self) -> &[NewEvent] {
        &self.uncommitted
    }

    /// `true` when there are events to save.
    pub fn has_uncommitted_events(&self) -> bool {
        !self.uncommitted.is_empty()
    }

    /// Applies `event` to the state and records it as uncommitted with the next version.
    /// Only event types the aggregate has an `#[apply]` method for compile.
    pub fn apply_event<E: DomainEvent>(&mut self, event: E)
    where
        A: Apply<E>,
    {
        self.state.apply(&event);
        let mut new = NewEvent::new(event);
        self.stamp(&mut new);
        self.uncommitted.push(new);
        self.version += 1;
    }

    /// Applies an already built [`NewEvent`] (with its own envelope fields), checking at
    /// run time that the aggregate handles it.
    ///
    /// # Errors
    /// [`Error::UnhandledEvent`] when the aggregate has no `#[apply]` method for the
    /// event's type (nothing is applied or recorded).
    pub fn apply_new_event(&mut self, mut event: NewEvent) -> Result<()> {
        self.apply_payload(event.payload(), None)?;
        self.stamp(&mut event);
        self.uncommitted.push(event);
        self.version += 1;
        Ok(())
    }

    /// Fills envelope fields the event does not set from the root's defaults.
    fn stamp(&self, event: &mut NewEvent) {
        let d = &self.defaults;
        event.tenant_id = event.tenant_id.or(d.tenant_id);
        event.correlation_id = event.correlation_id.or(d.correlation_id);
        event.causation_id = event.causation_id.or(d.causation_id);
        if event.actor_id.is_none() {
            event.actor_id.clone_from(&d.actor_id);
        }
        for (key, value) in &d.metadata {
            event
                .metadata
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }

    /// Sets the tenant of the events recorded from now on.
    pub fn set_tenant_id(&mut self, tenant_id: Uuid) -> &mut Self {
        self.defaults.tenant_id = Some(tenant_id);
        self
    }

    /// Sets the actor of the events recorded from now on.
    pub fn set_actor_id(&mut self, actor_id: impl Into<String>) -> &mut Self {
        self.defaults.actor_id = Some(actor_id.into());
        self
    }

    /// Sets the correlation id of the events recorded from now on.
    pub fn set_correlation_id(&mut self, correlation_id: Uuid) -> &mut Self {
        self.defaults.correlation_id = Some(correlation_id);
        self
    }

    /// Sets the causation id of the events recorded from now on.
    pub fn set_causation_id(&mut self, causation_id: Uuid) -> &mut Self {
        self.defaults.causation_id = Some(causation_id);
        self
    }

    /// Adds a metadata entry to the events recorded from now on.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.defaults.metadata.insert(key.into(), value.into());
        self
    }

    /// Replays a stored event (loading).
    ///
    /// # Errors
    /// [`Error::UnhandledEvent`] naming the type and position when the aggregate does not
    /// handle it, or its type is not registered.
    pub(crate) fn replay(&mut self, event: &ReplayedEvent) -> Result<()> {
        self.apply_payload(&event.payload, Some(event.global_position))?;
        self.version = event.version;
        Ok(())
    }

    /// Moves the version past stored rows that read as no event (loading).
    pub(crate) fn set_replayed_version(&mut self, version: u64) {
        self.version = version;
    }

    /// Applies a type-erased payload to the state.
    ///
    /// # Errors
    /// [`Error::UnhandledEvent`] when the aggregate has no `#[apply]` method for it, or its
    /// type is not registered (the state is unchanged).
    fn apply_payload(
        &mut self,
        payload: &EventPayload,
        global_position: Option<u64>,
    ) -> Result<()> {
        let handled = match payload {
            EventPayload::Typed(typed) => self.state.apply_any(typed.as_ref()),
            EventPayload::Raw(_) => false,
        };
        if handled {
            return Ok(());
        }
        Err(Error::UnhandledEvent {
            aggregate_type: A::AGGREGATE_TYPE.to_owned(),
            event_type: payload.event_type().to_owned(),
            global_position,
            registered: payload.is_typed(),
        })
    }

    /// Takes the uncommitted events (after a successful save).
    pub(crate) fn take_uncommitted(&mut self) -> Vec<NewEvent> {
        std::mem::take(&mut self.uncommitted)
    }

    /// Puts events back as uncommitted (after a failed save).
    pub(crate) fn restore_uncommitted(&mut self, events: Vec<NewEvent>) {
        self.uncommitted = events;
    }
}
