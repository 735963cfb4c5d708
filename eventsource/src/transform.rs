//! Copy-transform: rewriting a store through its upcasters into a new store, for users
//! who want the old rows gone: [`copy_transform`].
//!
//! Upcasting happens on read and never rewrites a row. When the chains grow long, or a
//! team wants to delete the old Rust types, copy the store into a new one (another SQLite
//! file, another PostgreSQL schema, or across backends): every event is read as the
//! source's reads return it (at the end of its upcasting chain, split rows as the events
//! their upcasters make) and appended to the target at its current version. Then the
//! target holds current versions only, the old types and upcasters can go, and the
//! application moves to the target.

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;

use crate::canonical::{canonical_json, fnv1a, fnv1a_extend};
use crate::checkpoint::CheckpointStore;
use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::{EventStore, EventTypeCount, ExpectedVersion, ReadOptions};
use crate::stored::StoredEvent;

/// A progress callback of [`TransformOptions::on_progress`].
pub type TransformProgressFn = Arc<dyn Fn(&TransformProgress) + Send + Sync>;

/// The checkpoint name [`copy_transform`] keeps its progress under, by default.
pub const DEFAULT_CHECKPOINT: &str = "eventsource.copy_transform";

/// How [`copy_transform`] runs.
#[derive(Clone)]
pub struct TransformOptions {
    batch_size: usize,
    progress: Option<TransformProgressFn>,
    checkpoint: String,
    registry: Arc<EventRegistry>,
}

impl fmt::Debug for TransformOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformOptions")
            .field("batch_size", &self.batch_size)
            .field("progress", &self.progress.is_some())
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}

impl Default for TransformOptions {
    fn default() -> Self {
        TransformOptions {
            batch_size: 500,
            progress: None,
            checkpoint: DEFAULT_CHECKPOINT.to_owned(),
            registry: EventRegistry::global(),
        }
    }
}

impl TransformOptions {
    /// Batches of 500 events, progress kept under [`DEFAULT_CHECKPOINT`], the global
    /// registry for the final check.
    pub fn new() -> Self {
        Self::default()
    }

    /// Source events per batch; the progress checkpoint moves after each batch.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Called after every batch.
    pub fn on_progress(
        mut self,
        progress: impl Fn(&TransformProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// The checkpoint name the progress is kept under (one per copy).
    pub fn checkpoint_name(mut self, name: impl Into<String>) -> Self {
        self.checkpoint = name.into();
        self
    }

    /// The registry that says which versions are current, for the final check (the
    /// global one unless set).
    pub fn registry(mut self, registry: Arc<EventRegistry>) -> Self {
        self.registry = registry;
        self
    }
}

/// Where a copy-transform is, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformProgress {
    /// Events read from the source so far (after upcasting: a split row counts its
    /// events).
    pub read: u64,
    /// Of those, appended to the target by this run.
    pub written: u64,
    /// Of those, in the target already (written by an interrupted run).
    pub skipped: u64,
    /// The source's global position copied up to.
    pub position: u64,
    /// The source's head when the copy started.
    pub head: u64,
}

/// The outcome of a verified copy-transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformReport {
    /// Events the source reads back (after upcasting), equal to `target_events`.
    pub source_events: u64,
    /// Events in the target.
    pub target_events: u64,
    /// Events appended by this run.
    pub written: u64,
    /// Events found in the target already (an earlier, interrupted run) and skipped.
    pub skipped: u64,
    /// Source rows stored at a version that is not current (upcast, renamed or split):
    /// the target holds their events at the current version instead.
    pub upcast_rows: u64,
    /// Events of types the registry does not know, copied as they are.
    pub kept_raw: u64,
    /// The checksum of what both sides read (ids, stream, types and versions read back,
    /// timestamps, tenant, actor, correlation, causation, metadata and payload), equal on
    /// both sides (FNV-1a, 64 bits, hex).
    pub checksum: String,
    /// The target's event types and versions with their counts: current versions only.
    pub target_versions: Vec<EventTypeCount>,
}

/// Copies every event of `source` into `target` as the source's reads return it (at the
/// end of its upcasting chain), then verifies that both read back the same events and
/// that the target holds current versions only.
///
/// Kept for each event: its id (a split row's events keep the ids reads give them),
/// stream, timestamp, tenant, actor, correlation and causation ids, metadata and the
/// global order. Not kept: global positions and stream versions (the target numbers
/// them; they match the source's unless split rows made more or fewer events), and the
/// source's projection checkpoints, snapshots, dead letters and outbox (rebuild the
/// projections and snapshots on the target). Events of types the registry does not know
/// are copied as they are.
///
/// Resumable: the position copied up to is saved in `progress` (a checkpoint named
/// [`TransformOptions::checkpoint_name`], e.g. the target store itself) after each batch;
/// run it again after an interruption and it goes on from there, skipping the events of
/// the interrupted batch that reached the target. Without that checkpoint, the target
/// must be empty. Stop writes to the source (and to the target) while it runs.
///
/// # Errors
/// [`Error::CorruptEvent`] for a source row that cannot be read back (the copy stops
/// there; nothing is lost: fix the upcaster and run it again); [`Error::Migration`] for
/// a target that holds other events or a failed verification;
/// [`Error::InvalidConfiguration`] for a zero batch size; errors of the stores.
pub async fn copy_transform(
    source: &dyn EventStore,
    target: &dyn EventStore,
    progress: &dyn CheckpointStore,
    options: TransformOptions,
) -> Result<TransformReport> {
    if options.batch_size == 0 {
        return Err(Error::InvalidConfiguration {
            message: "batch_size must be at least 1".into(),
        });
    }
    let resumed = progress.get_position(&options.checkpoint).await?;
    let start = match resumed {
        Some(position) => position,
        None => {
            let held = target.get_global_position().await?;
            if held > 0 {
                return Err(Error::Migration {
                    message: format!(
                        "the target holds events up to position {held} and no checkpoint \
                         `{}` of an earlier copy: copy into an empty store",
                        options.checkpoint
                    ),
                });
            }
            0
        }
    };
    let head = source.get_global_position().await?;
    let mut state = TransformProgress {
        read: 0,
        written: 0,
        skipped: 0,
        position: start,
        head,
    };
    // What follows the checkpoint may have reached the target (an interrupted run):
    // looked up until the first event that did not.
    let mut check_existing = resumed.is_some();
    let mut events = source
        .read_all(ReadOptions::new().from_position(start))
        .peekable();
    loop {
        let mut batch: Vec<StoredEvent> = Vec::with_capacity(options.batch_size);
        while batch.len() < options.batch_size || same_row(batch.last(), &mut events).await {
            match events.next().await {
                Some(event) => batch.push(event?),
                None => break,
            }
        }
        let Some(last) = batch.last().map(|e| e.global_position) else {
            break;
        };
        state.read += batch.len() as u64;
        let written = write_batch(target, batch, &mut check_existing).await?;
        state.written += written.0;
        state.skipped += written.1;
        state.position = last;
        progress
            .save_progress(&options.checkpoint, last, None, written.0)
            .await?;
        tracing::info!(
            read = state.read,
            written = state.written,
            skipped = state.skipped,
            position = last,
            head,
            "copy-transform batch written"
        );
        if let Some(report) = &options.progress {
            report(&state);
        }
    }
    verify(source, target, &options.registry, state).await
}

/// `true` when the next event shares the last one's row (the events a split upcaster
/// made of one row): a batch takes all of them.
async fn same_row(
    last: Option<&StoredEvent>,
    events: &mut futures::stream::Peekable<crate::store::StoredEventStream<'_>>,
) -> bool {
    let Some(last) = last else {
        return false;
    };
    matches!(
        std::pin::Pin::new(events).peek().await,
        Some(Ok(next)) if next.global_position == last.global_position
    )
}

/// Appends `batch` to the target, one append per run of events of one stream, in global
/// order; returns the events written and skipped. While `check_existing`, events are
/// looked up first and skipped when stored; the first one that is not ends the checks
/// (the copy writes in order).
async fn write_batch(
    target: &dyn EventStore,
    batch: Vec<StoredEvent>,
    check_existing: &mut bool,
) -> Result<(u64, u64)> {
    let (mut written, mut skipped) = (0, 0);
    let mut run: Vec<NewEvent> = Vec::new();
    let mut stream: Option<(uuid::Uuid, String)> = None;
    for event in batch {
        if *check_existing {
            if target.event_exists(event.event_id()).await? {
                skipped += 1;
                continue;
            }
            *check_existing = false;
        }
        let key = (
            event.envelope.aggregate_id,
            event.envelope.aggregate_type.clone(),
        );
        if stream.as_ref() != Some(&key) {
            if let Some((id, aggregate_type)) = stream.take() {
                written +=
                    append_run(target, id, &aggregate_type, std::mem::take(&mut run)).await?;
            }
            stream = Some(key);
        }
        run.push(new_event(event));
    }
    if let Some((id, aggregate_type)) = stream {
        written += append_run(target, id, &aggregate_type, run).await?;
    }
    Ok((written, skipped))
}

async fn append_run(
    target: &dyn EventStore,
    aggregate_id: uuid::Uuid,
    aggregate_type: &str,
    events: Vec<NewEvent>,
) -> Result<u64> {
    let count = events.len() as u64;
    if count > 0 {
        target
            .append_events(aggregate_id, aggregate_type, events, ExpectedVersion::Any)
            .await?;
    }
    Ok(count)
}

/// The event to append for a source event as read: its envelope, its payload as read
/// (the current version's type, or the raw JSON of a type nobody registered).
fn new_event(event: StoredEvent) -> NewEvent {
    let envelope = event.envelope;
    NewEvent {
        event_id: envelope.event_id,
        timestamp: envelope.timestamp,
        tenant_id: envelope.tenant_id,
        actor_id: envelope.actor_id,
        correlation_id: envelope.correlation_id,
        causation_id: envelope.causation_id,
        metadata: envelope.metadata,
        payload: event.payload,
    }
}

/// Reads both stores side by side and fails at the first difference; then checks that
/// the target holds current versions only.
async fn verify(
    source: &dyn EventStore,
    target: &dyn EventStore,
    registry: &EventRegistry,
    state: TransformProgress,
) -> Result<TransformReport> {
    let mut from_source = source.read_all(ReadOptions::new());
    let mut from_target = target.read_all(ReadOptions::new());
    let mut hash = fnv1a(b"");
    let (mut count, mut kept_raw) = (0u64, 0u64);
    let (mut a, mut b) = (String::new(), String::new());
    loop {
        match (from_source.next().await, from_target.next().await) {
            (None, None) => break,
            (Some(s), Some(t)) => {
                let (s, t) = (s?, t?);
                a.clear();
                b.clear();
                as_read(&s, &mut a)?;
                as_read(&t, &mut b)?;
                if a != b {
                    return Err(Error::Migration {
                        message: format!(
                            "verification failed at event {} (source position {}, target \
                             position {}): the source reads `{a}`, the target `{b}`",
                            count + 1,
                            s.global_position,
                            t.global_position
                        ),
                    });
                }
                hash = fnv1a_extend(hash, a.as_bytes());
                count += 1;
                if matches!(s.payload, crate::event::EventPayload::Raw(_)) {
                    kept_raw += 1;
                }
            }
            (s, _) => {
                return Err(Error::Migration {
                    message: format!(
                        "verification failed: after {count} equal events only the {} has more",
                        if s.is_some() { "source" } else { "target" }
                    ),
                })
            }
        }
    }
    let not_current = |t: &&EventTypeCount| {
        registry.is_registered(&t.event_type, t.event_version)
            && registry.current_version(&t.event_type, t.event_version)
                != Some((t.event_type.as_str(), t.event_version))
    };
    let upcast_rows = source
        .event_type_counts()
        .await?
        .iter()
        .filter(not_current)
        .map(|t| t.count)
        .sum();
    let target_versions = target.event_type_counts().await?;
    let old: Vec<String> = target_versions
        .iter()
        .filter(not_current)
        .map(|t| format!("{} v{} ({} events)", t.event_type, t.event_version, t.count))
        .collect();
    if !old.is_empty() {
        return Err(Error::Migration {
            message: format!(
                "the target still holds versions that are not current: {}",
                old.join(", ")
            ),
        });
    }
    Ok(TransformReport {
        source_events: count,
        target_events: count,
        written: state.written,
        skipped: state.skipped,
        upcast_rows,
        kept_raw,
        checksum: format!("{hash:016x}"),
        target_versions,
    })
}

/// One line per event with what a copy-transform keeps: ids, stream, the type and
/// version it reads back as, envelope and payload (JSON with sorted keys).
fn as_read(event: &StoredEvent, out: &mut String) -> Result<()> {
    use std::fmt::Write;
    let e = &event.envelope;
    let _ = write!(
        out,
        "{}|{}|{}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}|",
        e.event_id,
        e.aggregate_id,
        e.aggregate_type,
        event.payload.event_type(),
        event.payload.event_version(),
        e.timestamp.timestamp_micros(),
        e.tenant_id,
        e.actor_id,
        e.correlation_id,
        e.causation_id,
    );
    canonical_json(&Value::Object(e.metadata.clone()), out);
    out.push('|');
    canonical_json(&event.payload.to_json_value()?, out);
    Ok(())
}
