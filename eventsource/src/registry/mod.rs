//! The event type registry: event type name + schema version -> decoder.
//!
//! `#[derive(DomainEvent)]` submits one [`EventRegistration`] per type through
//! [`inventory`]; [`EventRegistry::global`] collects them on first use, so events read
//! back from a store decode to their Rust types with no manual registration.
//!
//! `inventory` relies on the linker keeping every registration: a crate that nothing
//! references can be dropped, and some targets (e.g. wasm) have no life-before-main.
//! [`EventRegistry::register`] is the explicit fallback, and
//! [`EventRegistry::verify_store`] lists at start-up the event types found in a store
//! that have no registration.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::error::{Error, Result};
use crate::event::{DomainEvent, EventPayload, RawEvent};
use crate::store::{EventStore, EventTypeCount};
mod chain;
pub(crate) mod hop;
mod registration;
pub mod split;
mod split_read;

pub use registration::EventRegistration;

/// The event type name and version a registration's rows are upcast to, if any.
type Successor = Option<(&'static str, u32)>;

#[derive(Clone, Copy)]
struct Slot {
    registration: EventRegistration,
    /// A second Rust type that claims the same name and version.
    conflict: Option<&'static str>,
    /// The name and version whose type names this one as its previous version: rows of
    /// this version are upcast to it.
    superseded_by: Successor,
}

impl Slot {
    fn check(&self) -> Result<&EventRegistration> {
        match self.conflict {
            None => Ok(&self.registration),
            Some(second) => Err(Error::DuplicateEventType {
                name: self.registration.name.to_owned(),
                version: self.registration.version,
                first: self.registration.type_name,
                second,
            }),
        }
    }
}

/// Maps stored event type names and versions to Rust types.
///
/// Stores use [`EventRegistry::global`] unless given another one (tests build their own
/// with [`EventRegistry::new`] and [`EventRegistry::register`]).
///
/// ```
/// use eventsource::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(name = "order.placed", version = 2)]
/// struct OrderPlaced { total: f64 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// // Every derived type is in the global registry, with no call to make.
/// let registry = EventRegistry::global();
/// assert!(registry.is_registered("order.placed", 2));
/// assert_eq!(registry.versions("order.placed"), [2]);
/// registry.validate()?; // no name claimed by two Rust types
///
/// // At start-up: which stored event types has this program no Rust type for?
/// let store = InMemoryEventStore::new();
/// store
///     .append_events(uuid::Uuid::new_v4(), "Order", vec![NewEvent::raw("order.cancelled", 1, serde_json::json!({}))], ExpectedVersion::Any)
///     .await?;
/// let missing = registry.find_unregistered(&store).await?;
/// assert_eq!(missing[0].event_type, "order.cancelled");
///
/// // A registry of its own, holding only what a test registers.
/// let own = EventRegistry::new();
/// own.register::<OrderPlaced>()?;
/// assert_eq!(own.registered_types().len(), 1);
/// # Ok(()) }
/// ```
pub struct EventRegistry {
    types: RwLock<HashMap<String, Vec<Slot>>>,
    /// Split upcasters by stored name (one per version).
    splits: RwLock<HashMap<String, Vec<split::SplitSlot>>>,
    /// `true` once a split upcaster is registered: reads skip expanding rows otherwise.
    has_splits: AtomicBool,
}

impl fmt::Debug for EventRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRegistry")
            .field("types", &self.registered_types())
            .finish()
    }
}

impl Default for EventRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl EventRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        EventRegistry {
            types: RwLock::new(HashMap::new()),
            splits: RwLock::new(HashMap::new()),
            has_splits: AtomicBool::new(false),
        }
    }

    /// A registry holding every registration `#[derive(DomainEvent)]` submitted.
    pub fn from_inventory() -> Self {
        let registry = Self::new();
        for registration in inventory::iter::<EventRegistration> {
            registry.insert(*registration);
        }
        for upcaster in inventory::iter::<split::SplitUpcaster> {
            registry.insert_split(*upcaster);
        }
        registry
    }

    /// The process-wide registry, built from the derive registrations on first use.
    pub fn global() -> Arc<EventRegistry> {
        static GLOBAL: OnceLock<Arc<EventRegistry>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Arc::new(Self::from_inventory()))
            .clone()
    }

    /// Registers `T` explicitly: the fallback where `inventory` registrations are lost
    /// (a crate dropped by the linker, targets without life-before-main). Registering the
    /// same type again is a no-op. It registers `T` alone (every variant of an enum stored
    /// per variant): an upcasting chain (`previous`, `previous_json`) is registered by the
    /// derive through `inventory` only.
    ///
    /// # Errors
    /// [`Error::DuplicateEventType`] when another Rust type already claims `T`'s name and
    /// version.
    pub fn register<T: DomainEvent>(&self) -> Result<()> {
        let type_name = std::any::type_name::<T>();
        if !T::PER_VARIANT {
            let registration = EventRegistration::of::<T>(type_name);
            return match self.insert(registration).conflict {
                None => Ok(()),
                Some(_) => self.lookup(T::EVENT_TYPE, T::VERSION).map(|_| ()),
            };
        }
        // An enum stored per variant: one registration per variant name.
        for name in T::EVENT_TYPES {
            let registration = EventRegistration::of_variant::<T>(name, type_name, T::SHAPE);
            if self.insert(registration).conflict.is_some() {
                self.lookup(name, T::VERSION)?;
            }
        }
        Ok(())
    }

    /// Inserts a registration; returns the resulting slot.
    fn insert(&self, registration: EventRegistration) -> Slot {
        let mut types = self.types.write().unwrap_or_else(PoisonError::into_inner);
        let versions = types.entry(registration.name.to_owned()).or_default();
        if let Some(slot) = versions
            .iter_mut()
            .find(|slot| slot.registration.version == registration.version)
        {
            if (slot.registration.type_id)() != (registration.type_id)() && slot.conflict.is_none()
            {
                // Keep the two names in a stable order, whatever order inventory yields.
                let (first, second) = if slot.registration.type_name <= registration.type_name {
                    (slot.registration, registration.type_name)
                } else {
                    (registration, slot.registration.type_name)
                };
                slot.registration = first;
                slot.conflict = Some(second);
            }
            return *slot;
        }
        let (superseded_by, second_successor) =
            chain::successor_of(&types, registration.name, registration.version);
        let slot = Slot {
            registration,
            conflict: second_successor,
            superseded_by,
        };
        if let Some(hop) = registration.previous {
            chain::link(&mut types, hop, &registration);
        }
        types
            .entry(registration.name.to_owned())
            .or_default()
            .push(slot);
        slot
    }

    fn lookup(&self, name: &str, version: u32) -> Result<Option<EventRegistration>> {
        Ok(self
            .lookup_slot(name, version)?
            .map(|(registration, _)| registration))
    }

    /// The registration of `name` at `version`, and the name and version it is upcast
    /// to.
    fn lookup_slot(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<(EventRegistration, Successor)>> {
        let types = self.types.read().unwrap_or_else(PoisonError::into_inner);
        match types.get(name).and_then(|versions| {
            versions
                .iter()
                .find(|slot| slot.registration.version == version)
        }) {
            None => Ok(None),
            Some(slot) => slot
                .check()
                .map(|registration| Some((*registration, slot.superseded_by))),
        }
    }

    /// The registered versions of `name`, ascending (empty when the name is unknown).
    pub fn versions(&self, name: &str) -> Vec<u32> {
        let types = self.types.read().unwrap_or_else(PoisonError::into_inner);
        let mut versions: Vec<u32> = types
            .get(name)
            .map(|slots| slots.iter().map(|s| s.registration.version).collect())
            .unwrap_or_default();
        versions.sort_unstable();
        versions
    }

    /// `true` when the Rust type of `name` at `version` refuses unknown fields
    /// (`#[serde(deny_unknown_fields)]`, as its shape records).
    #[cfg(feature = "sqlite")]
    pub(crate) fn denies_unknown_fields(&self, name: &str, version: u32) -> bool {
        matches!(self.lookup(name, version), Ok(Some(r)) if r.shape.starts_with("strict "))
    }

    /// `true` when `name` at `version` decodes to a Rust type, or a split upcaster
    /// reads it.
    pub fn is_registered(&self, name: &str, version: u32) -> bool {
        matches!(self.lookup(name, version), Ok(Some(_)))
            || self.split_slot(name, version).is_some()
    }

    /// Every registration, sorted by name and version.
    pub fn registered_types(&self) -> Vec<EventRegistration> {
        let types = self.types.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<EventRegistration> = types
            .values()
            .flat_map(|versions| versions.iter().map(|slot| slot.registration))
            .collect();
        all.sort_by(|a, b| (a.name, a.version).cmp(&(b.name, b.version)));
        all
    }

    /// Checks that no two Rust types (or split upcasters) claim one name and version.
    ///
    /// # Errors
    /// The first [`Error::DuplicateEventType`], in name order.
    pub fn validate(&self) -> Result<()> {
        {
            let types = self.types.read().unwrap_or_else(PoisonError::into_inner);
            let mut names: Vec<&String> = types.keys().collect();
            names.sort();
            for name in names {
                for slot in &types[name] {
                    slot.check()?;
                }
            }
        }
        self.validate_splits()
    }

    /// Decodes a payload read from a store as JSON text.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    ///
    /// Unregistered types become [`EventPayload::Raw`]; a payload that is not JSON, or
    /// does not fit the registered type, is [`Error::CorruptEvent`] naming the position.
    pub(crate) fn decode_str(
        &self,
        global_position: u64,
        event_type: &str,
        version: u32,
        payload: &str,
    ) -> Result<EventPayload> {
        let corrupt = |reason: String| Error::CorruptEvent {
            global_position,
            event_id: None,
            event_type: event_type.to_owned(),
            reason,
        };
        let does_not_decode = |registration: &EventRegistration, e: serde_json::Error| {
            corrupt(format!(
                "payload does not decode to `{}`: {e}",
                registration.type_name
            ))
        };
        match self.lookup_slot(event_type, version)? {
            Some((registration, None)) => (registration.decode_str)(event_type, payload)
                .map(EventPayload::Typed)
                .map_err(|e| does_not_decode(&registration, e)),
            Some((registration, next)) => {
                let value = (registration.decode_owned_str)(event_type, payload)
                    .map_err(|e| does_not_decode(&registration, e))?;
                self.upcast(&corrupt, registration, next, value)
                    .map(EventPayload::Typed)
            }
            // Rows a split upcaster reads stay JSON here; reads expand them.
            None if self.split_slot(event_type, version).is_some() => {
                let payload = serde_json::from_str(payload)
                    .map_err(|e| corrupt(format!("payload is not valid JSON: {e}")))?;
                Ok(EventPayload::Raw(Arc::new(RawEvent {
                    event_type: event_type.to_owned(),
                    event_version: version,
                    payload,
                })))
            }
            None if !self.versions(event_type).is_empty() => {
                Err(self.no_path(&corrupt, event_type, version))
            }
            None => {
                let payload = serde_json::from_str(payload)
                    .map_err(|e| corrupt(format!("payload is not valid JSON: {e}")))?;
                Ok(EventPayload::Raw(Arc::new(RawEvent {
                    event_type: event_type.to_owned(),
                    event_version: version,
                    payload,
                })))
            }
        }
    }

    /// Resolves a raw payload to its registered type, when there is one.
    ///
    /// # Errors
    /// [`Error::DuplicateEventType`] for an ambiguous type, [`Error::CorruptEvent`]
    /// (position 0: not stored yet) when the JSON does not fit the registered type.
    pub(crate) fn resolve(&self, payload: EventPayload) -> Result<EventPayload> {
        let EventPayload::Raw(raw) = payload else {
            return Ok(payload);
        };
        match self.lookup(&raw.event_type, raw.event_version)? {
            None => Ok(EventPayload::Raw(raw)),
            // A version without a Rust type stays JSON; reads take it up its chain.
            Some(registration) if registration.json_input => Ok(EventPayload::Raw(raw)),
            Some(registration) => (registration.decode_value)(&raw.event_type, raw.payload.clone())
                .map(EventPayload::Typed)
                .map_err(|e| Error::CorruptEvent {
                    global_position: 0,
                    event_id: None,
                    event_type: raw.event_type.clone(),
                    reason: format!(
                        "payload does not decode to `{}`: {e}",
                        registration.type_name
                    ),
                }),
        }
    }

    /// The aggregate type an event to append is declared for, checking that its type is
    /// not claimed by two Rust types.
    ///
    /// # Errors
    /// [`Error::DuplicateEventType`].
    pub(crate) fn declared_aggregate(
        &self,
        payload: &EventPayload,
    ) -> Result<Option<&'static str>> {
        let registered = self.lookup(payload.event_type(), payload.event_version())?;
        Ok(match payload {
            EventPayload::Typed(event) => event.aggregate_type(),
            EventPayload::Raw(_) => registered.and_then(|r| r.aggregate_type),
        })
    }

    /// The event types stored in `store` that this registry cannot decode.
    ///
    /// # Errors
    /// Errors of the store.
    pub async fn find_unregistered(&self, store: &dyn EventStore) -> Result<Vec<EventTypeCount>> {
        let mut missing = store.event_type_counts().await?;
        missing.retain(|t| !self.is_registered(&t.event_type, t.event_version));
        Ok(missing)
    }

    /// Start-up self-check: fails if two Rust types claim one event type, or if `store`
    /// holds event types with no registration, counted per type and version. A stored
    /// version of a registered name that no upcasting chain reaches says so:
    /// `BookAdded@1 (12 events): registered v3; no upcaster from v1`.
    ///
    /// # Errors
    /// [`Error::DuplicateEventType`], [`Error::UnregisteredEventTypes`], or an error of
    /// the store.
    pub async fn verify_store(&self, store: &dyn EventStore) -> Result<()> {
        self.validate()?;
        let missing = self.find_unregistered(store).await?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::UnregisteredEventTypes {
            missing: missing
                .iter()
                .map(|t| {
                    let known = self.versions(&t.event_type);
                    let line = format!("{}@{} ({} events)", t.event_type, t.event_version, t.count);
                    if known.is_empty() {
                        return line;
                    }
                    let shown: Vec<String> = known.iter().map(|v| format!("v{v}")).collect();
                    let gap = if known.last().is_some_and(|last| t.event_version > *last) {
                        format!("v{} is newer than this build knows", t.event_version)
                    } else {
                        format!("no upcaster from v{}", t.event_version)
                    };
                    format!("{line}: registered {}; {gap}", shown.join(", "))
                })
                .collect(),
        })
    }
}
