//! Domain events: the [`DomainEvent`] trait, its type-erased form, and raw events.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A fact that happened in the domain, stored as JSON under a stable type name.
///
/// Implement it with `#[derive(DomainEvent)]`, which also registers the type so that
/// events read back from a store decode to it without manual registration:
///
/// ```
/// use eventsource::DomainEvent;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(name = "OrderCreated", aggregate = "Order", version = 1)]
/// struct OrderCreated {
///     customer_id: String,
///     total_amount: f64,
/// }
///
/// assert_eq!(OrderCreated::EVENT_TYPE, "OrderCreated");
/// assert_eq!(OrderCreated::AGGREGATE_TYPE, Some("Order"));
/// assert_eq!(OrderCreated::VERSION, 1);
/// ```
///
/// The payload is the serde JSON form of the type, so serde attributes (`rename`,
/// `default`, `skip_serializing_if`, ...) keep working. Fields of the stored JSON that
/// the type does not have are ignored when decoding (unless the type opts into
/// `#[serde(deny_unknown_fields)]`).
pub trait DomainEvent: Serialize + DeserializeOwned + Debug + Send + Sync + 'static {
    /// The stable name stored in the `event_type` column.
    const EVENT_TYPE: &'static str;
    /// The aggregate type this event belongs to, when declared.
    const AGGREGATE_TYPE: Option<&'static str>;
    /// The schema version of the payload, starting at 1.
    const VERSION: u32;
    /// The payload's shape as serde reads it (field names after `rename`, their Rust
    /// types as written, `?` for fields stored JSON may lack):
    /// `{isbn?: Option<String>, title: String}`. `#[derive(DomainEvent)]` writes it;
    /// `events.lock` records it, so that a change a stored row could not be read with
    /// is caught by [`crate::schema::assert_lock_matches`]. Empty (not checked) for a
    /// hand-written impl that does not set it.
    const SHAPE: &'static str = "";
    /// Every event type name values of this type are stored under: [`EVENT_TYPE`]
    /// alone, or for an enum stored per variant, each variant's name.
    ///
    /// [`EVENT_TYPE`]: DomainEvent::EVENT_TYPE
    const EVENT_TYPES: &'static [&'static str] = &[Self::EVENT_TYPE];

    /// The event type name this value is stored under ([`DomainEvent::EVENT_TYPE`], or
    /// its variant's for an enum stored per variant).
    fn stored_type(&self) -> &'static str {
        Self::EVENT_TYPE
    }

    /// The stored payload: the serde JSON of the value (of the variant's fields, for an
    /// enum stored per variant). The derive writes it; keep the default otherwise.
    ///
    /// # Errors
    /// The type's `Serialize` error.
    fn to_payload(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }

    /// A value from its stored payload and event type name (the inverse of
    /// [`to_payload`](DomainEvent::to_payload)).
    ///
    /// # Errors
    /// The type's `Deserialize` error.
    fn from_payload(event_type: &str, payload: serde_json::Value) -> serde_json::Result<Self> {
        let _ = event_type;
        serde_json::from_value(payload)
    }

    /// As [`from_payload`](DomainEvent::from_payload), from JSON text.
    ///
    /// # Errors
    /// The type's `Deserialize` error.
    fn from_payload_str(event_type: &str, payload: &str) -> serde_json::Result<Self> {
        let _ = event_type;
        serde_json::from_str(payload)
    }

    /// `true` for an enum stored per variant, whose payload is not its serde JSON.
    const PER_VARIANT: bool = false;
}

/// A type-erased domain event, as held by [`crate::StoredEvent`] and [`crate::NewEvent`].
///
/// Implemented for every [`DomainEvent`]; use [`AnyEvent::as_any`] or
/// [`crate::StoredEvent::downcast_ref`] to get the concrete type back.
pub trait AnyEvent: Any + Debug + Send + Sync {
    /// The event type name.
    fn event_type(&self) -> &'static str;
    /// The schema version.
    fn event_version(&self) -> u32;
    /// The aggregate type the event is declared for (`#[event(aggregate = "...")]`).
    fn aggregate_type(&self) -> Option<&'static str>;
    /// The payload as JSON text.
    ///
    /// # Errors
    /// [`Error::Serialization`] when the type's `Serialize` impl fails.
    fn to_json(&self) -> Result<String>;
    /// The payload as a JSON value.
    ///
    /// # Errors
    /// [`Error::Serialization`] when the type's `Serialize` impl fails.
    fn to_json_value(&self) -> Result<serde_json::Value>;
    /// Writes the payload as JSON text to `out` (`std::io::sink()` checks that it
    /// serializes without allocating).
    ///
    /// # Errors
    /// [`Error::Serialization`] when the type's `Serialize` impl (or `out`) fails.
    fn write_json(&self, out: &mut dyn std::io::Write) -> Result<()>;
    /// `self` as `&dyn Any`, for downcasting.
    fn as_any(&self) -> &dyn Any;
}

impl<T: DomainEvent> AnyEvent for T {
    fn event_type(&self) -> &'static str {
        self.stored_type()
    }

    fn event_version(&self) -> u32 {
        T::VERSION
    }

    fn aggregate_type(&self) -> Option<&'static str> {
        T::AGGREGATE_TYPE
    }

    fn to_json(&self) -> Result<String> {
        let serialization = |source| Error::Serialization {
            event_type: self.stored_type().to_owned(),
            source,
        };
        if T::PER_VARIANT {
            return self
                .to_payload()
                .and_then(|value| serde_json::to_string(&value))
                .map_err(serialization);
        }
        serde_json::to_string(self).map_err(serialization)
    }

    fn to_json_value(&self) -> Result<serde_json::Value> {
        self.to_payload().map_err(|source| Error::Serialization {
            event_type: self.stored_type().to_owned(),
            source,
        })
    }

    fn write_json(&self, out: &mut dyn std::io::Write) -> Result<()> {
        let serialization = |source| Error::Serialization {
            event_type: self.stored_type().to_owned(),
            source,
        };
        if T::PER_VARIANT {
            return self
                .to_payload()
                .and_then(|value| serde_json::to_writer(out, &value))
                .map_err(serialization);
        }
        serde_json::to_writer(out, self).map_err(serialization)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An event whose type has no registration, kept as its stored JSON.
///
/// Nothing is dropped: a raw event reads back, can be re-appended elsewhere (migration),
/// and decodes as soon as its type is registered.
///
/// It displays as `type vN payload` (`LegacyThing v1 {"x":1}`) and serializes as an
/// object of its three fields.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawEvent {
    /// The stored event type name.
    pub event_type: String,
    /// The stored schema version.
    pub event_version: u32,
    /// The stored payload.
    pub payload: serde_json::Value,
}

impl std::fmt::Display for RawEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} v{} {}",
            self.event_type, self.event_version, self.payload
        )
    }
}

impl RawEvent {
    /// `event` as raw JSON: its stored type name, version and payload (what a split
    /// upcaster returns, see [`split_upcaster!`](crate::split_upcaster)).
    ///
    /// # Errors
    /// The event's serialization error.
    pub fn of<T: DomainEvent>(event: &T) -> serde_json::Result<Self> {
        Ok(RawEvent {
            event_type: event.stored_type().to_owned(),
            event_version: T::VERSION,
            payload: event.to_payload()?,
        })
    }
}

/// The payload of a stored or new event: a decoded Rust value, or raw JSON for an
/// unregistered type.
///
/// It serializes as the stored JSON payload, whichever it is.
#[derive(Debug, Clone)]
pub enum EventPayload {
    /// Decoded through the registry.
    Typed(Arc<dyn AnyEvent>),
    /// No registration for this type and version; the JSON is kept as is.
    Raw(Arc<RawEvent>),
}

impl EventPayload {
    /// The event type name.
    pub fn event_type(&self) -> &str {
        match self {
            EventPayload::Typed(event) => event.event_type(),
            EventPayload::Raw(raw) => &raw.event_type,
        }
    }

    /// The schema version.
    pub fn event_version(&self) -> u32 {
        match self {
            EventPayload::Typed(event) => event.event_version(),
            EventPayload::Raw(raw) => raw.event_version,
        }
    }

    /// `true` when the payload was decoded to a registered Rust type.
    pub fn is_typed(&self) -> bool {
        matches!(self, EventPayload::Typed(_))
    }

    /// The concrete event, if the payload is a `T`.
    pub fn downcast_ref<T: DomainEvent>(&self) -> Option<&T> {
        match self {
            EventPayload::Typed(event) => event.as_any().downcast_ref::<T>(),
            EventPayload::Raw(_) => None,
        }
    }

    /// The concrete event as a `T`, or why it is not one.
    ///
    /// # Errors
    /// [`Error::UnknownEventType`] when the payload is raw (its type is not registered),
    /// [`Error::EventTypeMismatch`] when it is another type.
    pub fn get<T: DomainEvent>(&self) -> Result<&T> {
        match self {
            EventPayload::Typed(event) => {
                event
                    .as_any()
                    .downcast_ref::<T>()
                    .ok_or_else(|| Error::EventTypeMismatch {
                        expected: T::EVENT_TYPE,
                        actual: event.event_type().to_owned(),
                    })
            }
            EventPayload::Raw(raw) => Err(Error::UnknownEventType {
                event_type: raw.event_type.clone(),
                version: raw.event_version,
            }),
        }
    }

    /// The payload as JSON text.
    ///
    /// # Errors
    /// [`Error::Serialization`] when a typed payload fails to serialize.
    pub fn to_json(&self) -> Result<String> {
        match self {
            EventPayload::Typed(event) => event.to_json(),
            EventPayload::Raw(raw) => Ok(raw.payload.to_string()),
        }
    }

    /// The payload as a JSON value.
    ///
    /// # Errors
    /// [`Error::Serialization`] when a typed payload fails to serialize.
    pub fn to_json_value(&self) -> Result<serde_json::Value> {
        match self {
            EventPayload::Typed(event) => event.to_json_value(),
            EventPayload::Raw(raw) => Ok(raw.payload.clone()),
        }
    }
}

impl Serialize for EventPayload {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EventPayload::Typed(event) => event
                .to_json_value()
                .map_err(serde::ser::Error::custom)?
                .serialize(serializer),
            EventPayload::Raw(raw) => raw.payload.serialize(serializer),
        }
    }
}
