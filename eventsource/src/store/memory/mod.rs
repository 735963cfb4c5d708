//! [`InMemoryEventStore`]: the store for tests, examples and prototypes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::expand::split_aware;
use super::page::{paginate, PageRow};
use super::{
    check_batch, check_json, plan_append, AppendPlan, AppendResult, EventStore, EventTypeCount,
    ExpectedVersion, GetEventsOptions, ReadDirection, ReadOptions, StoredEventStream, StoredId,
    StreamId,
};
use crate::envelope::{now, NewEvent};
use crate::error::{Error, Result};
use crate::outbox::{OutboxEntry, OutboxStatus};
use crate::registry::EventRegistry;
use crate::stored::{EventStream, StoredEvent};

mod outbox;

#[derive(Default)]
struct State {
    /// Every event; the event at index `i` has global position `i + 1`.
    events: Vec<StoredEvent>,
    /// Per aggregate id and type, the indexes of its events in version order.
    streams: HashMap<Uuid, HashMap<String, Vec<usize>>>,
    /// Event id -> index.
    ids: HashMap<Uuid, usize>,
    /// Aggregate ids in order of their first event.
    aggregate_order: Vec<Uuid>,
    /// Outbox entries (when the store has an outbox) by id; pruned ones are gone.
    outbox: BTreeMap<i64, OutboxEntry>,
    /// The id of the last outbox entry written (ids are never reused).
    last_outbox_id: i64,
}

impl State {
    fn stream(&self, aggregate_id: Uuid, aggregate_type: &str) -> &[usize] {
        self.streams
            .get(&aggregate_id)
            .and_then(|types| types.get(aggregate_type))
            .map_or(&[], Vec::as_slice)
    }
}

/// An event store in process memory. Nothing survives the process; use it for tests,
/// examples and prototypes.
///
/// Besides [`EventStore`] it has test helpers: [`get_all_events`](Self::get_all_events),
/// [`get_event_count`](Self::get_event_count),
/// [`get_aggregate_ids`](Self::get_aggregate_ids) and [`clear`](Self::clear).
#[derive(Clone)]
pub struct InMemoryEventStore {
    state: Arc<RwLock<State>>,
    registry: Arc<EventRegistry>,
    outbox: bool,
}

impl fmt::Debug for InMemoryEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryEventStore")
            .field("events", &self.read().events.len())
            .finish()
    }
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventStore {
    /// An empty store using the global registry for raw events.
    pub fn new() -> Self {
        Self::with_registry(EventRegistry::global())
    }

    /// An empty store that resolves raw events ([`NewEvent::raw`]) through `registry`.
    pub fn with_registry(registry: Arc<EventRegistry>) -> Self {
        InMemoryEventStore {
            state: Arc::new(RwLock::new(State::default())),
            registry,
            outbox: false,
        }
    }

    /// Writes an outbox entry for every appended event, atomically with the append (see
    /// [`OutboxStore`](crate::OutboxStore)).
    pub fn with_outbox(mut self) -> Self {
        self.outbox = true;
        self
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every event, in global order.
    pub fn get_all_events(&self) -> Vec<StoredEvent> {
        self.read().events.clone()
    }

    /// The number of events.
    pub fn get_event_count(&self) -> u64 {
        self.read().events.len() as u64
    }

    /// The ids of all aggregates with events, in order of their first event.
    pub fn get_aggregate_ids(&self) -> Vec<Uuid> {
        self.read().aggregate_order.clone()
    }

    /// Removes every event.
    pub fn clear(&self) {
        *self.write() = State::default();
    }

    fn fetch_all_page(
        registry: &EventRegistry,
        state: &State,
        options: &ReadOptions,
        cursor: u64,
        limit: usize,
    ) -> Vec<PageRow> {
        let accept = |i: &usize| options.accepts(&state.events[*i]);
        let row = |i: usize| (i as u64 + 1, read_back(registry, &state.events[i]));
        let len = state.events.len();
        match options.direction {
            ReadDirection::Forward => {
                let start = usize::try_from(cursor).unwrap_or(usize::MAX).min(len);
                (start..len).filter(accept).take(limit).map(row).collect()
            }
            ReadDirection::Backward => {
                let end = usize::try_from(cursor.saturating_sub(1))
                    .unwrap_or(usize::MAX)
                    .min(len);
                (0..end).rev().filter(accept).take(limit).map(row).collect()
            }
        }
    }

    fn fetch_stream_page(
        registry: &EventRegistry,
        state: &State,
        stream: &StreamId,
        options: &ReadOptions,
        cursor: u64,
        limit: usize,
    ) -> Vec<PageRow> {
        let indexes = state.stream(stream.aggregate_id, &stream.aggregate_type);
        let accept = |v: &usize| options.accepts(&state.events[indexes[*v]]);
        let row = |v: usize| (v as u64 + 1, read_back(registry, &state.events[indexes[v]]));
        let len = indexes.len();
        match options.direction {
            ReadDirection::Forward => {
                let start = usize::try_from(cursor).unwrap_or(usize::MAX).min(len);
                (start..len).filter(accept).take(limit).map(row).collect()
            }
            ReadDirection::Backward => {
                let end = usize::try_from(cursor.saturating_sub(1))
                    .unwrap_or(usize::MAX)
                    .min(len);
                (0..end).rev().filter(accept).take(limit).map(row).collect()
            }
        }
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        events: Vec<NewEvent>,
        expected_version: ExpectedVersion,
    ) -> Result<AppendResult> {
        traced!("append_events", backend = "memory", %aggregate_id, aggregate_type, count = events.len(), ?expected_version, {
            check_batch(&self.registry, aggregate_type, &events)?;
            // Resolve raw payloads, and check that typed ones serialize as a durable store
            // would require, so tests on this store catch what production would.
            let payloads = events
                .iter()
                .map(|e| {
                    let payload = self.registry.resolve(e.payload.clone())?;
                    // The JSON a durable store would write, checked by the same rules.
                    let metadata = serde_json::to_string(&e.metadata).map_err(|source| {
                        Error::Serialization {
                            event_type: e.event_type().to_owned(),
                            source,
                        }
                    })?;
                    // The JSON as given, as SQL stores write it (a raw payload may hold
                    // fields its registered type drops).
                    check_json(e.event_type(), &e.payload.to_json()?, &metadata)?;
                    Ok(payload)
                })
                .collect::<Result<Vec<_>>>()?;
            let outbox_data = if self.outbox {
                payloads
                    .iter()
                    .map(|p| p.to_json_value().map(Some))
                    .collect::<Result<Vec<_>>>()?
            } else {
                vec![None; payloads.len()]
            };
            let mut state = self.write();
            let current = state.stream(aggregate_id, aggregate_type).len() as u64;
            let plan = plan_append(
                aggregate_id,
                aggregate_type,
                &events,
                expected_version,
                current,
                |id| match state.ids.get(&id) {
                    None => StoredId::No,
                    Some(&i) => {
                        let e = &state.events[i].envelope;
                        if e.aggregate_id == aggregate_id && e.aggregate_type == aggregate_type {
                            StoredId::InThisStream
                        } else {
                            StoredId::Elsewhere(i as u64 + 1)
                        }
                    }
                },
            )?;
            let fresh = match plan {
                AppendPlan::Nothing => {
                    let global_position = events
                        .last()
                        .and_then(|e| state.ids.get(&e.event_id))
                        .map_or(state.events.len() as u64, |i| *i as u64 + 1);
                    return Ok(AppendResult {
                        new_version: current,
                        global_position,
                        already_stored: !events.is_empty(),
                    });
                }
                AppendPlan::Write { fresh } => fresh,
            };
            let stored_at = now();
            let mut version = current;
            for i in fresh {
                version += 1;
                let index = state.events.len();
                let event = &events[i];
                state.events.push(StoredEvent {
                    envelope: event.envelope(aggregate_id, aggregate_type, version),
                    global_position: index as u64 + 1,
                    stream_position: version,
                    stored_at,
                    payload: payloads[i].clone(),
                });
                state.ids.insert(event.event_id, index);
                if let Some(data) = &outbox_data[i] {
                    state.last_outbox_id += 1;
                    let id = state.last_outbox_id;
                    let stored = &state.events[index];
                    let entry = OutboxEntry {
                        id,
                        event_id: event.event_id,
                        event_type: stored.envelope.event_type.clone(),
                        aggregate_id,
                        aggregate_type: aggregate_type.to_owned(),
                        tenant_id: event.tenant_id,
                        global_position: index as u64 + 1,
                        event_data: data.clone(),
                        created_at: stored_at,
                        published_at: None,
                        retry_count: 0,
                        last_error: None,
                        status: OutboxStatus::Pending,
                    };
                    state.outbox.insert(id, entry);
                }
                let stream = state.streams.entry(aggregate_id).or_default();
                let is_new_aggregate = stream.is_empty();
                stream
                    .entry(aggregate_type.to_owned())
                    .or_default()
                    .push(index);
                if is_new_aggregate {
                    state.aggregate_order.push(aggregate_id);
                }
            }
            Ok(AppendResult {
                new_version: version,
                global_position: state.events.len() as u64,
                already_stored: false,
            })
        })
    }

    async fn get_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        options: GetEventsOptions,
    ) -> Result<EventStream> {
        traced!("get_events", backend = "memory", %aggregate_id, aggregate_type, ?options, {
            let state = self.read();
            let events: Vec<StoredEvent> = state
                .stream(aggregate_id, aggregate_type)
                .iter()
                .map(|i| &state.events[*i])
                .filter(|e| {
                    options.from_version.is_none_or(|v| e.stream_position >= v)
                        && options
                            .from_timestamp
                            .is_none_or(|t| e.envelope.timestamp >= t)
                        && options
                            .to_timestamp
                            .is_none_or(|t| e.envelope.timestamp <= t)
                })
                .map(|e| read_back(&self.registry, e))
                .collect::<Result<_>>()?;
            self.registry.expand_stream(aggregate_id, aggregate_type, events)
        })
    }

    fn read_stream<'a>(
        &'a self,
        stream_id: &StreamId,
        options: ReadOptions,
    ) -> StoredEventStream<'a> {
        let stream_id = stream_id.clone();
        let state = Arc::clone(&self.state);
        let registry = Arc::clone(&self.registry);
        split_aware(&self.registry, options, move |options| {
            let page_options = options.clone();
            paginate(&options, move |cursor, limit| {
                let state = state.read().unwrap_or_else(PoisonError::into_inner);
                Self::fetch_stream_page(&registry, &state, &stream_id, &page_options, cursor, limit)
            })
        })
    }

    fn read_all(&self, options: ReadOptions) -> StoredEventStream<'_> {
        let state = Arc::clone(&self.state);
        let registry = Arc::clone(&self.registry);
        split_aware(&self.registry, options, move |options| {
            let page_options = options.clone();
            paginate(&options, move |cursor, limit| {
                let state = state.read().unwrap_or_else(PoisonError::into_inner);
                Self::fetch_all_page(&registry, &state, &page_options, cursor, limit)
            })
        })
    }

    async fn get_events_by_type(
        &self,
        aggregate_type: &str,
        tenant_id: Option<Uuid>,
        from_timestamp: Option<DateTime<Utc>>,
    ) -> Result<Vec<StoredEvent>> {
        traced!(
            "get_events_by_type",
            backend = "memory",
            aggregate_type,
            ?tenant_id,
            {
                let state = self.read();
                state
                    .events
                    .iter()
                    .filter(|e| {
                        e.envelope.aggregate_type == aggregate_type
                            && tenant_id.is_none_or(|t| e.envelope.tenant_id == Some(t))
                            && from_timestamp.is_none_or(|t| e.envelope.timestamp >= t)
                    })
                    .map(|e| read_back(&self.registry, e))
                    .collect::<Result<Vec<_>>>()
                    .and_then(|events| self.registry.expand_all(events))
            }
        )
    }

    async fn event_exists(&self, event_id: Uuid) -> Result<bool> {
        traced!("event_exists", backend = "memory", %event_id, {
            Ok(self.read().ids.contains_key(&event_id))
        })
    }

    async fn get_stream_version(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<u64> {
        traced!("get_stream_version", backend = "memory", %aggregate_id, aggregate_type, {
            Ok(self.read().stream(aggregate_id, aggregate_type).len() as u64)
        })
    }

    async fn get_global_position(&self) -> Result<u64> {
        traced!("get_global_position", backend = "memory", {
            Ok(self.read().events.len() as u64)
        })
    }

    async fn event_type_counts(&self) -> Result<Vec<EventTypeCount>> {
        traced!("event_type_counts", backend = "memory", {
            let state = self.read();
            let mut counts: HashMap<(&str, u32), u64> = HashMap::new();
            for e in &state.events {
                *counts
                    .entry((&e.envelope.event_type, e.envelope.event_version))
                    .or_default() += 1;
            }
            let mut counts: Vec<EventTypeCount> = counts
                .into_iter()
                .map(|((event_type, event_version), count)| EventTypeCount {
                    event_type: event_type.to_owned(),
                    event_version,
                    count,
                })
                .collect();
            counts.sort_by(|a, b| {
                (&a.event_type, a.event_version).cmp(&(&b.event_type, b.event_version))
            });
            Ok(counts)
        })
    }
}

/// A stored event as a read returns it: its payload at the end of its upcasting chain
/// (the store keeps what was appended, which may be an old version of its type).
fn read_back(registry: &EventRegistry, event: &StoredEvent) -> Result<StoredEvent> {
    let mut event = event.clone();
    event.payload = registry
        .upcast_payload(event.global_position, event.payload)
        .map_err(|error| match error {
            Error::CorruptEvent {
                global_position,
                event_type,
                reason,
                ..
            } => Error::CorruptEvent {
                global_position,
                event_id: Some(event.envelope.event_id),
                event_type,
                reason,
            },
            other => other,
        })?;
    Ok(event)
}
