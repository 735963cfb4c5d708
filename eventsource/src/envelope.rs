//! The envelope kept beside every payload, and [`NewEvent`], an event about to be appended.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{DomainEvent, EventPayload, RawEvent};

/// Metadata stored beside the payload of every event.
///
/// It serializes (and deserializes) with serde as a JSON object of these fields, under
/// these names, for logs, APIs and exports; [`StoredEvent`](crate::StoredEvent)
/// serializes as the envelope's fields, its positions and the payload.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventEnvelope {
    /// Unique id of the event; appending an id that is already stored is skipped.
    pub event_id: Uuid,
    /// The aggregate the event belongs to.
    pub aggregate_id: Uuid,
    /// The aggregate type (`"Order"`).
    pub aggregate_type: String,
    /// The event type name (`"OrderCreated"`).
    pub event_type: String,
    /// The schema version of the payload.
    pub event_version: u32,
    /// The version of the aggregate after this event, starting at 1.
    pub aggregate_version: u64,
    /// When the event happened (UTC, microsecond precision).
    pub timestamp: DateTime<Utc>,
    /// Tenant for multi-tenant applications.
    pub tenant_id: Option<Uuid>,
    /// Who caused the event (user id, service name, ...).
    pub actor_id: Option<String>,
    /// Id shared by every event of one business transaction.
    pub correlation_id: Option<Uuid>,
    /// Id of the event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// Free-form metadata (a JSON object).
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// An event to append: a payload plus the envelope fields the caller chooses.
///
/// The store fills in the aggregate id, aggregate type and aggregate version when the
/// event is appended.
///
/// # What a store accepts
///
/// Every store checks the same rules before it takes any lock, so that whatever
/// [`append_events`](crate::EventStore::append_events) accepts reads back exactly as
/// written from every backend; anything else is refused with
/// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the field (quoting at most
/// 64 characters of it):
///
/// | field | rule |
/// |---|---|
/// | aggregate type, event type | not empty; no control character (U+0000–U+001F, U+007F) |
/// | actor id | may be empty; no control character |
/// | event version | 1 to 2,147,483,647 (PostgreSQL's `INTEGER`) |
/// | timestamp | years 1 to 9999 (SQLite compares ISO 8601 text); kept to the microsecond ([`with_timestamp`](Self::with_timestamp) truncates) |
/// | payload, metadata | any JSON (the payload of a registered type must decode to it) without the NUL character U+0000 in a string or key (PostgreSQL's `JSONB` cannot hold it); stored escaped, so other control characters inside strings are fine |
/// | event type and declared aggregate | the event type is not claimed by two Rust types; an event declared with `#[event(aggregate = "...")]` goes only to streams of that aggregate type |
///
/// ```
/// # use eventsource::{DomainEvent, NewEvent};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct TaskCreated { title: String }
/// let tenant = uuid::Uuid::new_v4();
/// let event = NewEvent::new(TaskCreated { title: "Write docs".into() })
///     .with_tenant_id(tenant)
///     .with_actor_id("user-42")
///     .with_metadata("source", "api");
/// assert_eq!(event.event_type(), "TaskCreated");
/// assert_eq!(event.tenant_id(), Some(tenant));
/// ```
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub(crate) event_id: Uuid,
    pub(crate) timestamp: DateTime<Utc>,
    pub(crate) tenant_id: Option<Uuid>,
    pub(crate) actor_id: Option<String>,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) payload: EventPayload,
}

impl NewEvent {
    /// A new event with a fresh UUIDv4 id and the current time.
    pub fn new<E: DomainEvent>(event: E) -> Self {
        Self::from_payload(EventPayload::Typed(Arc::new(event)))
    }

    /// A new event from raw JSON, for types this program does not know (copying events
    /// between stores, tooling). Stores decode it through their registry when the type is
    /// registered.
    pub fn raw(event_type: impl Into<String>, event_version: u32, payload: Value) -> Self {
        Self::from_payload(EventPayload::Raw(Arc::new(RawEvent {
            event_type: event_type.into(),
            event_version,
            payload,
        })))
    }

    fn from_payload(payload: EventPayload) -> Self {
        NewEvent {
            event_id: Uuid::new_v4(),
            timestamp: now(),
            tenant_id: None,
            actor_id: None,
            correlation_id: None,
            causation_id: None,
            metadata: Map::new(),
            payload,
        }
    }

    /// Sets the event id (for idempotent producers that derive ids from their input).
    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// Sets when the event happened (truncated to microseconds, the stored precision).
    pub fn with_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp.trunc_subsecs(6);
        self
    }

    /// Sets the tenant.
    pub fn with_tenant_id(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    /// Sets the actor who caused the event.
    pub fn with_actor_id(mut self, actor_id: impl Into<String>) -> Self {
        self.actor_id = Some(actor_id.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The event id.
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// The event type name.
    pub fn event_type(&self) -> &str {
        self.payload.event_type()
    }

    /// The schema version of the payload.
    pub fn event_version(&self) -> u32 {
        self.payload.event_version()
    }

    /// When the event happened.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    /// The tenant, if any.
    pub fn tenant_id(&self) -> Option<Uuid> {
        self.tenant_id
    }

    /// The actor, if any.
    pub fn actor_id(&self) -> Option<&str> {
        self.actor_id.as_deref()
    }

    /// The correlation id, if any.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.correlation_id
    }

    /// The causation id, if any.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.causation_id
    }

    /// The metadata object.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// The payload.
    pub fn payload(&self) -> &EventPayload {
        &self.payload
    }

    /// The envelope this event gets when stored as `aggregate_version` of the stream.
    pub(crate) fn envelope(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        aggregate_version: u64,
    ) -> EventEnvelope {
        EventEnvelope {
            event_id: self.event_id,
            aggregate_id,
            aggregate_type: aggregate_type.to_owned(),
            event_type: self.payload.event_type().to_owned(),
            event_version: self.payload.event_version(),
            aggregate_version,
            timestamp: self.timestamp,
            tenant_id: self.tenant_id,
            actor_id: self.actor_id.clone(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            metadata: self.metadata.clone(),
        }
    }
}

impl<E: DomainEvent> From<E> for NewEvent {
    fn from(event: E) -> Self {
        NewEvent::new(event)
    }
}

/// The current time at the stored precision (microseconds).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
