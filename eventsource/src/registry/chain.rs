//! Upcasting chains in the registry: which registration supersedes which, and taking a
//! decoded value of an old version up to the newest type of its chain.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use super::hop::{Hop, Owned};
use super::{EventRegistration, EventRegistry, Slot, Successor};
use crate::error::{Error, Result};
use crate::event::{AnyEvent, EventPayload};

/// More hops than any chain has: a guard against a cycle of registrations made by hand.
const MAX_HOPS: usize = 1024;

/// The registration that names `name` at `version` as its previous version, if any, and
/// the type of a second one that does too (which way is up is then not known).
pub(super) fn successor_of(
    types: &HashMap<String, Vec<Slot>>,
    name: &str,
    version: u32,
) -> (Successor, Option<&'static str>) {
    let mut found = types
        .values()
        .flatten()
        .map(|slot| slot.registration)
        .filter(|r| {
            r.previous
                .is_some_and(|hop| hop.from_name == name && hop.from_version == version)
        });
    let first = found.next();
    let second = found.find(|r| first.is_some_and(|f| (f.name, f.version) != (r.name, r.version)));
    (
        first.map(|r| (r.name, r.version)),
        second.map(|r| r.type_name),
    )
}

/// Marks the registration `hop` comes from as superseded by `by`.
pub(super) fn link(types: &mut HashMap<String, Vec<Slot>>, hop: Hop, by: &EventRegistration) {
    if let Some(previous) = types.get_mut(hop.from_name).and_then(|slots| {
        slots
            .iter_mut()
            .find(|slot| slot.registration.version == hop.from_version)
    }) {
        match previous.superseded_by {
            // Two versions name the same previous one: which is the way up is not known.
            Some((name, version)) if (name, version) != (by.name, by.version) => {
                previous.conflict.get_or_insert(by.type_name);
            }
            _ => previous.superseded_by = Some((by.name, by.version)),
        }
    }
}

impl EventRegistry {
    /// The event type name and version that rows of `name` at `version` read back as:
    /// the end of its upcasting chain (`name` and `version` themselves when nothing
    /// supersedes them); `None` when `name` is not registered at `version`.
    pub fn current_version(&self, name: &str, version: u32) -> Option<(&'static str, u32)> {
        let (mut registration, mut next) = self.lookup_slot(name, version).ok().flatten()?;
        for _ in 0..MAX_HOPS {
            let Some((name, version)) = next else {
                return Some((registration.name, registration.version));
            };
            (registration, next) = self.lookup_slot(name, version).ok().flatten()?;
        }
        None
    }

    /// Every stored event type name whose rows read back as `name`: `name` itself and
    /// the names it was renamed from, sorted. A subscription filtering its reads by the
    /// types it handles reads these. (Rows of split upcasters that may produce `name`
    /// are read too: every store's reads add them to a type filter, see
    /// [`registry::split`](crate::registry::split).)
    pub fn stored_names(&self, name: &str) -> Vec<String> {
        let types = self.types.read().unwrap_or_else(PoisonError::into_inner);
        let mut names = vec![name.to_owned()];
        let mut i = 0;
        while let Some(current) = names.get(i).cloned() {
            for slot in types.get(current.as_str()).into_iter().flatten() {
                if let Some(hop) = slot.registration.previous {
                    if !names.iter().any(|n| n == hop.from_name) {
                        names.push(hop.from_name.to_owned());
                    }
                }
            }
            i += 1;
        }
        names.sort();
        names
    }

    /// [`stored_names`](Self::stored_names) of every name in `names`, with `names`,
    /// sorted and without repeats.
    pub(crate) fn stored_names_of_all(&self, names: &[String]) -> Vec<String> {
        let mut all: Vec<String> = names
            .iter()
            .flat_map(|name| self.stored_names(name))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Takes `value` (decoded as `registration`'s type) up its chain, starting at
    /// `next`, to the newest type.
    pub(super) fn upcast(
        &self,
        corrupt: &dyn Fn(String) -> Error,
        mut registration: EventRegistration,
        mut next: Successor,
        mut value: Owned,
    ) -> Result<Arc<dyn AnyEvent>> {
        let (stored_name, stored_version) = (registration.name, registration.version);
        let mut hops = 0;
        while let Some((name, version)) = next {
            hops += 1;
            let Some((successor, after)) = self
                .lookup_slot(name, version)?
                .filter(|_| hops <= MAX_HOPS)
            else {
                return Err(corrupt(format!(
                    "{stored_name} v{stored_version}: the upcasting chain breaks at {name} v{version}"
                )));
            };
            let hop = successor
                .previous
                .ok_or_else(|| corrupt(format!("{name} v{version} names no previous version")))?;
            value = (hop.apply)(value).map_err(|e| {
                corrupt(format!(
                    "upcasting {} from v{} (`{}`) to {name} v{version} (`{}`) failed: {e}",
                    registration.name,
                    registration.version,
                    (hop.from_type)(),
                    successor.type_name
                ))
            })?;
            (registration, next) = (successor, after);
        }
        (registration.finish)(value).ok_or_else(|| {
            corrupt(format!(
                "{stored_name}: the end of the upcasting chain is not `{}`",
                registration.type_name
            ))
        })
    }

    /// The error for a row of a registered name at a version that no chain reaches.
    pub(super) fn no_path(
        &self,
        corrupt: &dyn Fn(String) -> Error,
        name: &str,
        version: u32,
    ) -> Error {
        let registered = self.versions(name);
        let shown: Vec<String> = registered.iter().map(|v| format!("v{v}")).collect();
        let newer = registered.last().is_some_and(|last| version > *last);
        corrupt(format!(
            "{name} v{version} is stored; registered: {}; {}",
            shown.join(", "),
            if newer {
                format!("v{version} is newer than this build knows")
            } else {
                format!("no upcaster from v{version}")
            }
        ))
    }

    /// An event held as a typed or raw payload (the in-memory store keeps what was
    /// appended) as it reads back: at the end of its upcasting chain.
    ///
    /// # Errors
    /// [`Error::CorruptEvent`] at `global_position` when a hop fails or no chain reaches
    /// the payload's version of a registered name.
    pub(crate) fn upcast_payload(
        &self,
        global_position: u64,
        payload: EventPayload,
    ) -> Result<EventPayload> {
        let (name, version) = (payload.event_type().to_owned(), payload.event_version());
        let corrupt = |reason: String| Error::CorruptEvent {
            global_position,
            event_id: None,
            event_type: name.clone(),
            reason,
        };
        match (self.lookup_slot(&name, version)?, &payload) {
            (Some((_, None)), _) => Ok(payload),
            // Rows a split upcaster reads stay as they are; reads expand them.
            (None, _) if self.split_slot(&name, version).is_some() => Ok(payload),
            // A name this registry does not know: as appended (a typed payload of a
            // hand-written impl, or a registry that leaves it raw).
            (None, _) if self.versions(&name).is_empty() => Ok(payload),
            (None, _) => Err(self.no_path(&corrupt, &name, version)),
            (Some((registration, next)), _) => {
                let value = (registration.decode_owned_value)(&name, payload.to_json_value()?)
                    .map_err(|e| {
                        corrupt(format!(
                            "payload does not decode to `{}`: {e}",
                            registration.type_name
                        ))
                    })?;
                self.upcast(&corrupt, registration, next, value)
                    .map(EventPayload::Typed)
            }
        }
    }
}
