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
use std::sync::PoisonError;

use super::EventRegistry;
use crate::error::{Error, Result};
use crate::event::RawEvent;

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
    pub(super) fn check(&self) -> Result<&SplitUpcaster> {
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

impl EventRegistry {
    /// Inserts a split upcaster; a second one for the same name and version is a
    /// conflict ([`EventRegistry::validate`] reports it).
    pub(super) fn insert_split(&self, upcaster: SplitUpcaster) {
        let mut splits = self.splits.write().unwrap_or_else(PoisonError::into_inner);
        let versions = splits.entry(upcaster.name.to_owned()).or_default();
        match versions
            .iter_mut()
            .find(|slot| slot.upcaster.version == upcaster.version)
        {
            Some(slot) if slot.upcaster.path != upcaster.path => {
                slot.conflict.get_or_insert(upcaster.path);
            }
            Some(_) => {}
            None => versions.push(SplitSlot {
                upcaster,
                conflict: None,
            }),
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
        splits
            .get(name)?
            .iter()
            .find(|slot| slot.upcaster.version == version)
            .copied()
    }

    /// Every registered split upcaster, sorted by name and version.
    pub fn split_upcasters(&self) -> Vec<SplitUpcaster> {
        let splits = self.splits.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<SplitUpcaster> = splits
            .values()
            .flatten()
            .map(|slot| slot.upcaster)
            .collect();
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
            .flatten()
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
}
