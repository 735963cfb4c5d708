//! Split upcasters: one stored event read back as zero, one or several current events.
//!
//! What a typed chain cannot express: an old `OrderPlaced` v1 that carried its items is
//! now an `OrderPlaced` v2 and one `ItemAdded` per item, or an event nobody needs any
//! more reads as nothing. The upcaster is a plain function of the stored payload, named
//! with [`split_upcaster!`](crate::split_upcaster) (an `inventory` registration, no
//! registry call by hand):
//!
//! ```
//! use eventsource::{split_upcaster, DomainEvent, RawEvent};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
//! #[event(name = "OrderPlaced", version = 2)]
//! struct OrderPlaced { customer: String }
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
//! struct ItemAdded { sku: String }
//!
//! /// `OrderPlaced` v1 held its items: `{"customer": "ada", "items": ["a-1", "b-2"]}`.
//! fn split_order(v1: serde_json::Value) -> Result<Vec<RawEvent>, String> {
//!     let customer = v1["customer"].as_str().ok_or("no customer")?.to_owned();
//!     let mut events = vec![RawEvent::of(&OrderPlaced { customer }).map_err(|e| e.to_string())?];
//!     for sku in v1["items"].as_array().ok_or("no items")? {
//!         let sku = sku.as_str().ok_or("an item is not text")?.to_owned();
//!         events.push(RawEvent::of(&ItemAdded { sku }).map_err(|e| e.to_string())?);
//!     }
//!     Ok(events)
//! }
//!
//! split_upcaster!(
//!     name = "OrderPlaced",
//!     version = 1,
//!     produces = ["OrderPlaced", "ItemAdded"],
//!     split_order
//! );
//! ```
//!
//! On every read path of every store, a stored row of that name and version becomes the
//! events the function returns, in order, each taken up its own upcasting chain; the
//! rows themselves are never rewritten. The events of one row share its global position
//! and stream version (so a repository's expected version and a subscription's
//! checkpoint stay those of the stored rows); the first keeps the row's event id, the
//! others get ids derived from it (the same on every read; `event_exists` knows the
//! row's id only). A read's limit counts the events it returns (rows that do not read
//! come on top), and a row's events are never split between two reads. An error of
//! the function, or an event whose type is not in the declared list, makes the row an
//! [`Error::CorruptEvent`]: the list is what subscriptions filtering by type read the
//! row for.

use std::fmt::Display;
use std::sync::{Arc, PoisonError};

use uuid::Uuid;

use super::EventRegistry;
use crate::canonical::fnv1a_extend;
use crate::error::{Error, Result};
use crate::event::{EventPayload, RawEvent};
#[cfg(feature = "sqlite")]
use crate::store::ReplayedEvent;
use crate::stored::StoredEvent;

/// The function of a split upcaster, as the registry keeps it.
pub type SplitFn = fn(serde_json::Value) -> std::result::Result<Vec<RawEvent>, String>;

/// A split upcaster: rows of one event type name at one version read back as the events
/// its function returns. Registered with [`split_upcaster!`](crate::split_upcaster).
#[derive(Clone, Copy)]
pub struct SplitUpcaster {
    pub(super) name: &'static str,
    pub(super) version: u32,
    pub(super) produces: &'static [&'static str],
    pub(super) split: SplitFn,
    pub(super) path: &'static str,
}

impl SplitUpcaster {
    /// The upcaster of `name` at `version` (a version no Rust type claims) into events
    /// of the `produces` types, by `split`; `path` names the function (errors,
    /// `events.lock`).
    pub const fn new(
        name: &'static str,
        version: u32,
        produces: &'static [&'static str],
        split: SplitFn,
        path: &'static str,
    ) -> Self {
        SplitUpcaster {
            name,
            version,
            produces,
            split,
            path,
        }
    }

    /// The stored event type name it reads.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The stored schema version it reads.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The event types its events may have.
    pub fn produces(&self) -> &'static [&'static str] {
        self.produces
    }

    /// The function's path.
    pub fn path(&self) -> &'static str {
        self.path
    }
}

impl std::fmt::Debug for SplitUpcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitUpcaster")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("produces", &self.produces)
            .field("path", &self.path)
            .finish()
    }
}

inventory::collect!(SplitUpcaster);

/// For generated code: calls a user's split function, its error as text.
#[doc(hidden)]
pub fn call_split<E: Display>(
    payload: serde_json::Value,
    split: fn(serde_json::Value) -> std::result::Result<Vec<RawEvent>, E>,
) -> std::result::Result<Vec<RawEvent>, String> {
    split(payload).map_err(|e| e.to_string())
}

/// Registers a split upcaster: rows of an event type name at a version read back as the
/// events a function returns (zero, one or several; see [`registry::split`]).
///
/// `split_upcaster!(name = "Name", version = N, produces = ["Produced", ...], function);`
/// where `function` is a
/// `fn(serde_json::Value) -> Result<Vec<RawEvent>, E>` with `E: Display`. The version
/// must be one that no Rust type claims; the list names every event type the function
/// may return.
///
/// [`registry::split`]: crate::registry::split
#[macro_export]
macro_rules! split_upcaster {
    (
        name = $name:literal,
        version = $version:literal,
        produces = [$($produces:literal),* $(,)?],
        $split:path $(,)?
    ) => {
        $crate::__private::inventory::submit! {
            $crate::registry::split::SplitUpcaster::new(
                $name,
                $version,
                &[$($produces),*],
                |payload| $crate::registry::split::call_split(payload, $split),
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!($split)),
            )
        }
    };
}

/// A split upcaster in the registry, and a second one that claims the same name and
/// version.
#[derive(Clone, Copy)]
pub(super) struct SplitSlot {
    pub(super) upcaster: SplitUpcaster,
    pub(super) conflict: Option<&'static str>,
}

impl SplitSlot {
    fn check(&self) -> Result<&SplitUpcaster> {
        match self.conflict {
            None => Ok(&self.upcaster),
            Some(second) => Err(Error::DuplicateEventType {
                name: self.upcaster.name.to_owned(),
                version: self.upcaster.version,
                first: self.upcaster.path,
                second,
            }),
        }
    }
}

/// The id of the `index`th event of a split row (the first keeps the row's id): derived
/// from the row's id, the same on every read, a version 8 (custom) UUID.
fn product_id(row: Uuid, index: usize) -> Uuid {
    if index == 0 {
        return row;
    }
    // FNV-1a over the row's id and the index, widened to 128 bits by two seeds.
    let index = (index as u64).to_le_bytes();
    let hash = |seed: u64| fnv1a_extend(fnv1a_extend(seed, row.as_bytes()), &index);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hash(0xcbf2_9ce4_8422_2325).to_be_bytes());
    bytes[8..].copy_from_slice(&hash(0x84222325_cbf29ce4).to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl EventRegistry {
    /// Inserts a split upcaster; a second one for the same name and version is a
    /// conflict ([`EventRegistry::validate`] reports it).
    pub(super) fn insert_split(&self, upcaster: SplitUpcaster) {
        let mut splits = self.splits.write().unwrap_or_else(PoisonError::into_inner);
        let key = (upcaster.name.to_owned(), upcaster.version);
        match splits.get_mut(&key) {
            Some(slot) if slot.upcaster.path != upcaster.path => {
                slot.conflict.get_or_insert(upcaster.path);
            }
            Some(_) => {}
            None => {
                splits.insert(
                    key,
                    SplitSlot {
                        upcaster,
                        conflict: None,
                    },
                );
            }
        }
        self.has_splits
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Registers a split upcaster explicitly: the fallback where `inventory`
    /// registrations are lost (see [`EventRegistry::register`]); registering the same
    /// one again is a no-op.
    ///
    /// # Errors
    /// [`Error::DuplicateEventType`] when another split upcaster or a Rust type already
    /// claims its name and version.
    pub fn register_split(&self, upcaster: SplitUpcaster) -> Result<()> {
        if let Some(registration) = self.lookup(upcaster.name, upcaster.version)? {
            return Err(Error::DuplicateEventType {
                name: upcaster.name.to_owned(),
                version: upcaster.version,
                first: registration.type_name(),
                second: upcaster.path,
            });
        }
        if let Some(slot) = self.split_slot(upcaster.name, upcaster.version) {
            slot.check()?;
            if slot.upcaster.path != upcaster.path {
                return Err(Error::DuplicateEventType {
                    name: upcaster.name.to_owned(),
                    version: upcaster.version,
                    first: slot.upcaster.path,
                    second: upcaster.path,
                });
            }
            return Ok(());
        }
        self.insert_split(upcaster);
        Ok(())
    }

    /// `true` when any split upcaster is registered: reads then expand rows.
    pub(crate) fn has_splits(&self) -> bool {
        self.has_splits.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The split upcaster of `name` at `version`, if one is registered.
    pub(super) fn split_slot(&self, name: &str, version: u32) -> Option<SplitSlot> {
        if !self.has_splits() {
            return None;
        }
        let splits = self.splits.read().unwrap_or_else(PoisonError::into_inner);
        splits.get(&(name.to_owned(), version)).copied()
    }

    /// Every registered split upcaster, sorted by name and version.
    pub fn split_upcasters(&self) -> Vec<SplitUpcaster> {
        let splits = self.splits.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<SplitUpcaster> = splits.values().map(|slot| slot.upcaster).collect();
        all.sort_by(|a, b| (a.name, a.version).cmp(&(b.name, b.version)));
        all
    }

    /// The stored names whose split upcasters may produce one of `names`.
    pub(crate) fn split_sources_of(&self, names: &[String]) -> Vec<String> {
        if !self.has_splits() {
            return Vec::new();
        }
        let splits = self.splits.read().unwrap_or_else(PoisonError::into_inner);
        let mut sources: Vec<String> = splits
            .values()
            .filter(|slot| {
                slot.upcaster
                    .produces
                    .iter()
                    .any(|p| names.iter().any(|n| n == p))
            })
            .map(|slot| slot.upcaster.name.to_owned())
            .collect();
        sources.sort();
        sources.dedup();
        sources
    }

    /// Checks every split upcaster: no two for one name and version, none for a version
    /// a Rust type claims.
    pub(super) fn validate_splits(&self) -> Result<()> {
        for upcaster in self.split_upcasters() {
            let slot = self
                .split_slot(upcaster.name, upcaster.version)
                .ok_or_else(|| Error::InvalidConfiguration {
                    message: format!("the split upcaster `{}` went missing", upcaster.path),
                })?;
            slot.check()?;
            if let Some(registration) = self.lookup(upcaster.name, upcaster.version)? {
                return Err(Error::DuplicateEventType {
                    name: upcaster.name.to_owned(),
                    version: upcaster.version,
                    first: registration.type_name(),
                    second: upcaster.path,
                });
            }
        }
        Ok(())
    }

    /// The events a stored payload of a split upcaster's name and version reads back
    /// as, each at the end of its own upcasting chain; `None` when no split upcaster
    /// reads it.
    ///
    /// # Errors
    /// [`Error::CorruptEvent`] at `global_position` when the function fails, returns a
    /// type it did not declare, or an event that does not decode; a conflict of two
    /// upcasters.
    fn split_payload(
        &self,
        global_position: u64,
        event_id: Option<Uuid>,
        payload: &EventPayload,
    ) -> Result<Option<Vec<(RawEvent, EventPayload)>>> {
        let EventPayload::Raw(raw) = payload else {
            return Ok(None);
        };
        let Some(slot) = self.split_slot(&raw.event_type, raw.event_version) else {
            return Ok(None);
        };
        let upcaster = slot.check()?;
        let corrupt = |reason: String| Error::CorruptEvent {
            global_position,
            event_id,
            event_type: raw.event_type.clone(),
            reason,
        };
        let produced = (upcaster.split)(raw.payload.clone()).map_err(|e| {
            corrupt(format!(
                "splitting {} v{} with `{}` failed: {e}",
                raw.event_type, raw.event_version, upcaster.path
            ))
        })?;
        let mut events = Vec::with_capacity(produced.len());
        for event in produced {
            if !upcaster.produces.contains(&event.event_type.as_str()) {
                return Err(corrupt(format!(
                    "`{}` returned a {} event; it declares {:?}",
                    upcaster.path, event.event_type, upcaster.produces
                )));
            }
            if self
                .split_slot(&event.event_type, event.event_version)
                .is_some()
            {
                return Err(corrupt(format!(
                    "`{}` returned {} v{}, which a split upcaster reads: a split's events \
                     are not split again",
                    upcaster.path, event.event_type, event.event_version
                )));
            }
            let resolved = self
                .resolve(EventPayload::Raw(Arc::new(event.clone())))
                .and_then(|p| self.upcast_payload(global_position, p))
                .map_err(|e| match e {
                    Error::CorruptEvent { reason, .. } => corrupt(format!(
                        "`{}` returned a {} v{} that does not read: {reason}",
                        upcaster.path, event.event_type, event.event_version
                    )),
                    other => other,
                })?;
            events.push((event, resolved));
        }
        Ok(Some(events))
    }

    /// A stored event as reads return it: itself, or the events its split upcaster
    /// makes of it, keeping only those of `types` when given (a row that is not split
    /// by its stored type, as the store's filter would). Errors stay one item.
    pub(crate) fn expand(
        &self,
        item: Result<StoredEvent>,
        types: Option<&[String]>,
    ) -> Vec<Result<StoredEvent>> {
        let event = match item {
            Ok(event) => event,
            Err(error) => return vec![Err(error)],
        };
        let products = match self.split_payload(
            event.global_position,
            Some(event.envelope.event_id),
            &event.payload,
        ) {
            Ok(Some(products)) => products,
            Ok(None) if types.is_some_and(|types| !types.contains(&event.envelope.event_type)) => {
                // Read only because a split upcaster of its name produces a filtered
                // type, at another version.
                return Vec::new();
            }
            Ok(None) => return vec![Ok(event)],
            Err(error) => return vec![Err(error)],
        };
        let wanted = |raw: &RawEvent, payload: &EventPayload| {
            types.is_none_or(|types| {
                types
                    .iter()
                    .any(|t| *t == raw.event_type || t == payload.event_type())
            })
        };
        products
            .into_iter()
            .enumerate()
            .filter(|(_, (raw, payload))| wanted(raw, payload))
            .map(|(index, (raw, payload))| {
                let mut product = event.clone();
                product.envelope.event_id = product_id(event.envelope.event_id, index);
                product.envelope.event_type = raw.event_type;
                product.envelope.event_version = raw.event_version;
                product.payload = payload;
                Ok(product)
            })
            .collect()
    }

    /// [`expand`](Self::expand) for a whole result: the first error fails it.
    pub(crate) fn expand_all(&self, events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>> {
        if !self.has_splits() {
            return Ok(events);
        }
        let mut expanded = Vec::with_capacity(events.len());
        for event in events {
            for item in self.expand(Ok(event), None) {
                expanded.push(item?);
            }
        }
        Ok(expanded)
    }

    /// [`expand_all`](Self::expand_all) for the rows of one stream: its version is the
    /// last row's, even when that row reads as no event.
    pub(crate) fn expand_stream(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        rows: Vec<StoredEvent>,
    ) -> Result<crate::stored::EventStream> {
        let version = rows.last().map_or(0, |e| e.stream_position);
        let mut stream =
            crate::stored::EventStream::new(aggregate_id, aggregate_type, self.expand_all(rows)?);
        stream.version = version;
        Ok(stream)
    }

    /// [`expand_all`](Self::expand_all) for the payloads of a replay (SQLite's own
    /// replay; the others read [`get_events`](crate::EventStore::get_events)).
    #[cfg(feature = "sqlite")]
    pub(crate) fn expand_replayed(&self, events: Vec<ReplayedEvent>) -> Result<Vec<ReplayedEvent>> {
        if !self.has_splits() {
            return Ok(events);
        }
        let mut expanded = Vec::with_capacity(events.len());
        for event in events {
            match self.split_payload(event.global_position, None, &event.payload)? {
                None => expanded.push(event),
                Some(products) => {
                    expanded.extend(products.into_iter().map(|(_, payload)| ReplayedEvent {
                        global_position: event.global_position,
                        version: event.version,
                        payload,
                    }));
                }
            }
        }
        Ok(expanded)
    }
}

#[cfg(test)]
mod tests {
    use super::product_id;
    use uuid::Uuid;

    #[test]
    fn product_ids_are_the_rows_first_then_derived_and_distinct() {
        let row = Uuid::new_v4();
        assert_eq!(product_id(row, 0), row);
        let ids: Vec<Uuid> = (1..100).map(|i| product_id(row, i)).collect();
        assert_eq!(ids[0], product_id(row, 1), "the same on every read");
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| *id != row && id.get_version_num() == 8));
        assert_ne!(product_id(Uuid::new_v4(), 1), ids[0]);
    }
}
