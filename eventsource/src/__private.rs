//! Not public API. Used by generated code.

#[doc(hidden)]
pub use inventory;

#[doc(hidden)]
pub use crate::registry::EventRegistration;

#[doc(hidden)]
pub use crate::aggregate::AggregateRegistration;

#[doc(hidden)]
pub use uuid::Uuid;

#[doc(hidden)]
pub use async_trait::async_trait;

#[doc(hidden)]
pub use crate::projection::{undecodable, IntoHandlerResult};

/// For generated code: `true` when an event declared for `declared` (or for no
/// aggregate) may be applied by the aggregate type `aggregate`.
#[doc(hidden)]
pub const fn may_apply(declared: Option<&str>, aggregate: &str) -> bool {
    match declared {
        None => true,
        Some(declared) => same_name(declared, aggregate),
    }
}

/// For generated code: `a == b`, in a constant.
#[doc(hidden)]
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// For generated code: `true` when `names` holds `name`, in a constant.
#[doc(hidden)]
pub const fn names_contain(names: &[&str], name: &str) -> bool {
    let mut i = 0;
    while i < names.len() {
        if same_name(names[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

/// For generated code: `true` when `have` holds every name of `need`, in a constant.
#[doc(hidden)]
pub const fn names_cover(have: &[&str], need: &[&str]) -> bool {
    let mut i = 0;
    while i < need.len() {
        if !names_contain(have, need[i]) {
            return false;
        }
        i += 1;
    }
    true
}

/// For generated code: implemented by the derive of an event's next version for the
/// type it names as `previous`. Rows of a superseded type read back as the newest type
/// of its chain, so an `#[apply]` or `#[handles]` of it would never run.
#[doc(hidden)]
pub trait Superseded {}

/// For generated code: `Check::<T>::SUPERSEDED` is `true` when `T: Superseded` (the
/// inherent constant) and `false` otherwise (the trait's, which applies only when the
/// inherent one does not).
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct SupersededCheck<T: ?Sized>(core::marker::PhantomData<T>);

/// For generated code: the `false` of [`SupersededCheck`].
#[doc(hidden)]
pub trait NotSuperseded {
    /// Not superseded.
    const SUPERSEDED: bool = false;
}

impl<T: ?Sized> NotSuperseded for SupersededCheck<T> {}

impl<T: ?Sized + Superseded> SupersededCheck<T> {
    /// Superseded.
    pub const SUPERSEDED: bool = true;
}

#[doc(hidden)]
pub use serde_json;

#[doc(hidden)]
pub use crate::registry::hop::{json_hop, Owned};

/// For generated code: how serde tags an enum stored per variant.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Tagging {
    /// serde's default: `{"Variant": {...}}`, or `"Variant"` for a unit variant.
    External,
    /// `#[serde(tag = "...")]`: `{"tag": "Variant", ...}`.
    Internal(&'static str),
}

fn not_an_object(what: &serde_json::Value) -> serde_json::Error {
    serde::de::Error::custom(format!(
        "an event payload is a JSON object; this variant's value is {what}"
    ))
}

/// For generated code: the payload of an enum value stored per variant: its variant's
/// fields, as a JSON object (`{}` for a unit variant).
///
/// # Errors
/// The enum's `Serialize` error, or a variant whose value is not a JSON object.
#[doc(hidden)]
pub fn variant_payload<T: serde::Serialize>(
    value: &T,
    tagging: Tagging,
) -> serde_json::Result<serde_json::Value> {
    use serde_json::Value;
    let json = serde_json::to_value(value)?;
    let inner = match (tagging, json) {
        (Tagging::External, Value::Object(map)) if map.len() == 1 => {
            map.into_iter().next().map_or(Value::Null, |(_, v)| v)
        }
        (Tagging::External, Value::String(_)) => Value::Object(serde_json::Map::new()),
        (Tagging::Internal(tag), Value::Object(mut map)) => {
            map.remove(tag);
            Value::Object(map)
        }
        (_, other) => return Err(not_an_object(&other)),
    };
    if inner.is_object() {
        Ok(inner)
    } else {
        Err(not_an_object(&inner))
    }
}

/// For generated code: the enum value of the variant serde names `variant` (a unit
/// variant when `unit`) from its stored payload.
///
/// # Errors
/// The enum's `Deserialize` error, or a payload that is not a JSON object.
#[doc(hidden)]
pub fn variant_from_payload<T: serde::de::DeserializeOwned>(
    variant: &str,
    unit: bool,
    tagging: Tagging,
    payload: serde_json::Value,
) -> serde_json::Result<T> {
    use serde_json::Value;
    let Value::Object(mut fields) = payload else {
        return Err(not_an_object(&payload));
    };
    let value = match tagging {
        Tagging::External if unit => Value::String(variant.to_owned()),
        Tagging::External => {
            let mut map = serde_json::Map::new();
            map.insert(variant.to_owned(), Value::Object(fields));
            Value::Object(map)
        }
        Tagging::Internal(tag) => {
            fields.insert(tag.to_owned(), Value::String(variant.to_owned()));
            Value::Object(fields)
        }
    };
    serde_json::from_value(value)
}

/// For generated code: the error for a stored name that is none of an enum's variants.
#[doc(hidden)]
pub fn unknown_variant(event_type: &str, enum_name: &str) -> serde_json::Error {
    serde::de::Error::custom(format!(
        "`{event_type}` is not a variant of the event enum `{enum_name}`"
    ))
}
