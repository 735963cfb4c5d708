//! Reading the rows of split upcasters (see [`super::split`]): each row becomes the
//! events its upcaster makes, each up its own chain, sharing the row's position and
//! stream version; the first keeps the row's id, the others get ids derived from it.

use std::sync::Arc;

use uuid::Uuid;

use super::EventRegistry;
use crate::canonical::fnv1a_extend;
use crate::error::{Error, Result};
use crate::event::{EventPayload, RawEvent};
#[cfg(feature = "sqlite")]
use crate::store::ReplayedEvent;
use crate::stored::StoredEvent;

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
