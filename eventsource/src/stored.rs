//! Events as read back from a store: [`StoredEvent`] and [`EventStream`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::envelope::EventEnvelope;
use crate::error::Result;
use crate::event::{DomainEvent, EventPayload, RawEvent};
use crate::store::StreamId;

/// An event read back from a store: envelope, positions and payload.
///
/// It serializes with serde as one flat object: the envelope's fields
/// ([`EventEnvelope`]), `global_position`, `stream_position`, `stored_at` and `payload`
/// (the stored JSON, typed or raw alike), for logs, APIs and exports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredEvent {
    /// The envelope (ids, types, versions, timestamp, tenant, actor, metadata).
    #[serde(flatten)]
    pub envelope: EventEnvelope,
    /// Position across all events of the store, starting at 1.
    pub global_position: u64,
    /// Position in the aggregate's stream (its aggregate version), starting at 1.
    pub stream_position: u64,
    /// When the store wrote the event.
    pub stored_at: DateTime<Utc>,
    /// The decoded payload, or raw JSON for an unregistered type.
    pub payload: EventPayload,
}

impl StoredEvent {
    /// The event id.
    pub fn event_id(&self) -> Uuid {
        self.envelope.event_id
    }

    /// The event type name.
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }

    /// The aggregate id.
    pub fn aggregate_id(&self) -> Uuid {
        self.envelope.aggregate_id
    }

    /// The aggregate type.
    pub fn aggregate_type(&self) -> &str {
        &self.envelope.aggregate_type
    }

    /// The aggregate version after this event.
    pub fn aggregate_version(&self) -> u64 {
        self.envelope.aggregate_version
    }

    /// The stream this event belongs to.
    pub fn stream_id(&self) -> StreamId {
        StreamId::new(
            self.envelope.aggregate_id,
            self.envelope.aggregate_type.clone(),
        )
    }

    /// The payload as a `T`, if it is one.
    pub fn downcast_ref<T: DomainEvent>(&self) -> Option<&T> {
        self.payload.downcast_ref()
    }

    /// The payload as a `T`, or a typed error saying why it is not one.
    ///
    /// # Errors
    /// [`crate::Error::UnknownEventType`] when the event's type is not registered,
    /// [`crate::Error::EventTypeMismatch`] when it is another type.
    pub fn event<T: DomainEvent>(&self) -> Result<&T> {
        self.payload.get()
    }

    /// `true` when the payload decoded to a registered Rust type.
    pub fn is_typed(&self) -> bool {
        self.payload.is_typed()
    }

    /// The raw JSON event when the type is not registered.
    pub fn raw(&self) -> Option<&RawEvent> {
        match &self.payload {
            EventPayload::Raw(raw) => Some(raw),
            EventPayload::Typed(_) => None,
        }
    }

    /// The payload as a JSON value.
    ///
    /// # Errors
    /// [`crate::Error::Serialization`] when a typed payload fails to serialize.
    pub fn payload_json(&self) -> Result<serde_json::Value> {
        self.payload.to_json_value()
    }
}

/// The events of one aggregate, as returned by [`crate::EventStore::get_events`].
#[derive(Debug, Clone)]
pub struct EventStream {
    /// The aggregate id.
    pub aggregate_id: Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The events, in stream order.
    pub events: Vec<StoredEvent>,
    /// The aggregate version of the last stored row read (0 when none was): the last
    /// event's, or a later one when the last rows read as no event (a split upcaster
    /// that makes none of them).
    pub version: u64,
}

impl EventStream {
    /// The stream of `events` (in version order); its version is the last event's.
    pub fn new(
        aggregate_id: Uuid,
        aggregate_type: impl Into<String>,
        events: Vec<StoredEvent>,
    ) -> Self {
        EventStream {
            aggregate_id,
            aggregate_type: aggregate_type.into(),
            version: events.last().map_or(0, |e| e.stream_position),
            events,
        }
    }

    /// `true` when no event was returned.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The last event returned.
    pub fn latest_event(&self) -> Option<&StoredEvent> {
        self.events.last()
    }

    /// The number of events returned.
    pub fn len(&self) -> usize {
        self.events.len()
    }
}
