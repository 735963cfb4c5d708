//! Upcasting hops: how each version's type is made from the one before it.
//!
//! The current type names its previous version in its derive
//! (`#[event(name = "BookAdded", version = 3, previous = BookAddedV2)]`), and each hop is
//! a plain `From<Old> for New`, or `TryFrom` with `upcast = "try_from"`. A missing hop
//! does not compile. A renamed event names its old name (`renamed_from = "BookCreated"`)
//! and the old name's type as `previous`. A stored row of any version on the chain decodes to its own type,
//! then goes through every hop to the newest one, on every read path of every store:
//! aggregates and projections handle only the current type. Rows are never rewritten.

use std::any::Any;
use std::fmt::Display;
use std::sync::Arc;

use crate::event::{AnyEvent, DomainEvent};

/// A decoded payload on its way up the chain: the value of one version's type.
pub type Owned = Box<dyn Any + Send>;

/// One hop of an upcasting chain: how a registration's type is made from the type of
/// the version before it.
#[derive(Clone, Copy)]
pub(crate) struct Hop {
    /// The previous version's event type name (another name when the event was renamed).
    pub(crate) from_name: &'static str,
    /// The previous version's schema version.
    pub(crate) from_version: u32,
    /// The previous version's Rust type, for error messages.
    pub(crate) from_type: fn() -> &'static str,
    /// The conversion: the previous type's value to this one's, or why not.
    pub(crate) apply: fn(Owned) -> Result<Owned, String>,
}

impl Hop {
    /// The hop from `P` to `T` through `From`.
    pub(crate) const fn from<P: DomainEvent, T: DomainEvent + From<P>>() -> Self {
        Hop {
            from_name: P::EVENT_TYPE,
            from_version: P::VERSION,
            from_type: std::any::type_name::<P>,
            apply: hop_from::<P, T>,
        }
    }

    /// The hop from `P` to `T` through `TryFrom`.
    pub(crate) const fn try_from<P, T>() -> Self
    where
        P: DomainEvent,
        T: DomainEvent + TryFrom<P>,
        <T as TryFrom<P>>::Error: Display,
    {
        Hop {
            from_name: P::EVENT_TYPE,
            from_version: P::VERSION,
            from_type: std::any::type_name::<P>,
            apply: hop_try_from::<P, T>,
        }
    }
}

impl Hop {
    /// The hop from `P` to `T` through `From`, for rows stored under `name` (a variant
    /// of an enum stored per variant).
    pub(crate) const fn from_named<P: DomainEvent, T: DomainEvent + From<P>>(
        name: &'static str,
    ) -> Self {
        let mut hop = Self::from::<P, T>();
        hop.from_name = name;
        hop
    }

    /// As [`from_named`](Self::from_named), through `TryFrom`.
    pub(crate) const fn try_from_named<P, T>(name: &'static str) -> Self
    where
        P: DomainEvent,
        T: DomainEvent + TryFrom<P>,
        <T as TryFrom<P>>::Error: Display,
    {
        let mut hop = Self::try_from::<P, T>();
        hop.from_name = name;
        hop
    }
}

fn previous<P: 'static>(value: Owned) -> Result<P, String> {
    value.downcast::<P>().map(|p| *p).map_err(|_| {
        format!(
            "the value handed to the hop from `{}` is another type",
            std::any::type_name::<P>()
        )
    })
}

fn hop_from<P: DomainEvent, T: DomainEvent + From<P>>(value: Owned) -> Result<Owned, String> {
    Ok(Box::new(T::from(previous::<P>(value)?)))
}

fn hop_try_from<P, T>(value: Owned) -> Result<Owned, String>
where
    P: DomainEvent,
    T: DomainEvent + TryFrom<P>,
    <T as TryFrom<P>>::Error: Display,
{
    T::try_from(previous::<P>(value)?)
        .map(|t| Box::new(t) as Owned)
        .map_err(|e| e.to_string())
}

/// Decodes JSON text to `T`, owned, to start a chain.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn decode_owned_str<T: DomainEvent>(
    event_type: &str,
    payload: &str,
) -> serde_json::Result<Owned> {
    Ok(Box::new(T::from_payload_str(event_type, payload)?))
}

/// Decodes a JSON value to `T`, owned, to start a chain.
pub(crate) fn decode_owned_value<T: DomainEvent>(
    event_type: &str,
    payload: serde_json::Value,
) -> serde_json::Result<Owned> {
    Ok(Box::new(T::from_payload(event_type, payload)?))
}

/// The end of a chain: the owned value of `T` as the payload of a stored event.
pub(crate) fn finish<T: DomainEvent>(value: Owned) -> Option<Arc<dyn AnyEvent>> {
    value
        .downcast::<T>()
        .ok()
        .map(|t| Arc::new(*t) as Arc<dyn AnyEvent>)
}

/// The marker type of a version that has no Rust type: its rows are JSON on their way to
/// a JSON-level hop (`#[event(previous_json = ...)]`).
pub(crate) struct JsonInput;

/// Rows of a version without a Rust type, held as JSON for the JSON-level hop after it.
pub(crate) fn json_input_str(_event_type: &str, payload: &str) -> serde_json::Result<Owned> {
    Ok(Box::new(serde_json::from_str::<serde_json::Value>(
        payload,
    )?))
}

/// As [`json_input_str`], from a JSON value.
pub(crate) fn json_input_value(
    _event_type: &str,
    payload: serde_json::Value,
) -> serde_json::Result<Owned> {
    Ok(Box::new(payload))
}

/// The end of a chain that stopped at JSON: never a stored event's type.
pub(crate) fn json_input_finish(_value: Owned) -> Option<Arc<dyn AnyEvent>> {
    None
}

/// Decoding a version without a Rust type directly: only the chain decodes it.
pub(crate) fn json_input_decode_str(
    event_type: &str,
    _payload: &str,
) -> serde_json::Result<Arc<dyn AnyEvent>> {
    Err(serde::de::Error::custom(format!(
        "`{event_type}` at this version has no Rust type; only its JSON-level upcaster reads it"
    )))
}

/// As [`json_input_decode_str`], from a JSON value.
pub(crate) fn json_input_decode_value(
    event_type: &str,
    _payload: serde_json::Value,
) -> serde_json::Result<Arc<dyn AnyEvent>> {
    json_input_decode_str(event_type, "")
}

/// A JSON-level hop: the previous version's JSON through `upcast` to `T`'s JSON, then
/// decoded as `T`. For generated code (`#[event(previous_json = ...)]`).
///
/// # Errors
/// The upcaster's error, or `T`'s decoding error, as text.
pub fn json_hop<T, E>(
    value: Owned,
    upcast: impl FnOnce(serde_json::Value) -> Result<serde_json::Value, E>,
) -> Result<Owned, String>
where
    T: DomainEvent,
    E: Display,
{
    let json = previous::<serde_json::Value>(value)?;
    let upcast = upcast(json).map_err(|e| e.to_string())?;
    T::from_payload(T::EVENT_TYPE, upcast)
        .map(|t| Box::new(t) as Owned)
        .map_err(|e| {
            format!(
                "the upcaster's JSON does not decode to `{}`: {e}",
                std::any::type_name::<T>()
            )
        })
}
