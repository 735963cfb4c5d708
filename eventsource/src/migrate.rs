//! Moving an event store from SQLite to PostgreSQL: [`migrate_sqlite_to_postgres`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;

use crate::canonical::canonical_json;
use crate::canonical::{fnv1a, fnv1a_extend};
use crate::checkpoint::CheckpointStore;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::sql::{db_error, to_i64, to_u64};
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;
use crate::{PostgresEventStore, SqliteEventStore};

/// A progress callback of [`MigrationOptions::on_progress`].
pub type ProgressFn = Arc<dyn Fn(&MigrationProgress) + Send + Sync>;

/// How [`migrate_sqlite_to_postgres`] runs.
#[derive(Clone)]
pub struct MigrationOptions {
    batch_size: usize,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for MigrationOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationOptions")
            .field("batch_size", &self.batch_size)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            batch_size: 1000,
            progress: None,
        }
    }
}

impl MigrationOptions {
    /// Batches of 1000 events, no progress reports.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events per batch; each batch is one transaction in PostgreSQL, so an interrupted
    /// migration leaves whole batches behind.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Called after every batch.
    pub fn on_progress(
        mut self,
        progress: impl Fn(&MigrationProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// Where a migration is, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationProgress {
    /// Source events read so far.
    pub read: u64,
    /// Of those, written to the target by this run.
    pub copied: u64,
    /// Of those, already in the target (from an earlier, interrupted run).
    pub skipped: u64,
    /// Events in the source when the migration started.
    pub total: u64,
    /// The global position of the last event read.
    pub position: u64,
}

/// The outcome of a verified migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Events in the source.
    pub source_events: u64,
    /// Events in the target after the migration (equal to `source_events`).
    pub target_events: u64,
    /// Events written by this run.
    pub copied: u64,
    /// Events found in the target already and skipped.
    pub skipped: u64,
    /// Projection checkpoints copied (their positions are valid in the target).
    pub checkpoints: u64,
    /// The checksum of every event's ids, positions, versions, types, timestamps,
    /// metadata and payload, equal on both sides (FNV-1a, 64 bits, hex).
    pub checksum: String,
}

/// Copies every event of `source` into `target`, then verifies both hold the same events.
///
/// Event ids, global positions, stream versions, timestamps (of the event and of its
/// storage), tenants, actors, correlation and causation ids, metadata and payloads are
/// kept as they are. Payloads go over as the JSON text SQLite holds (never through the
/// Rust types, so every digit of a number is kept; `JSONB` then orders keys its way).
/// Events go over in global order, `batch_size` per transaction. Projection checkpoints
/// are copied too: they name global positions, which are kept. Snapshots, dead letters
/// and outbox entries are not (snapshots are rebuilt from the events; resolve dead letters
/// and drain the outbox before migrating).
///
/// Resumable: events whose id is already in the target at the same position are skipped,
/// so running it again after an interruption finishes the job. The target schema must
/// otherwise be empty (anything else is refused before a row is written): run
/// `target.initialize()` first, and stop writes to the source
/// (the seeds' migration checklist) so the verification compares like with like.
///
/// At the end it counts and checksums both stores and fails with [`Error::Migration`]
/// when they differ. The checksum covers every envelope field, the positions and the
/// payload and metadata JSON with keys sorted and numbers as `serde_json` reads them
/// (to `f64` beyond 64-bit integers). Neither store is changed by a failure beyond the
/// batches written.
///
/// # Errors
/// [`Error::CorruptEvent`] for a source row that cannot be read (the migration stops
/// there; nothing is lost), [`Error::Migration`] for a target that holds other events or
/// a failed verification, [`Error::InvalidConfiguration`] for a zero batch size;
/// database errors.
pub async fn migrate_sqlite_to_postgres(
    source: &SqliteEventStore,
    target: &PostgresEventStore,
    options: MigrationOptions,
) -> Result<MigrationReport> {
    if options.batch_size == 0 {
        return Err(Error::InvalidConfiguration {
            message: "batch_size must be at least 1".into(),
        });
    }
    // An empty registry reads every payload as raw JSON, exactly as stored.
    let raw = Arc::new(EventRegistry::new());
    let source = source.with_registry(raw.clone());
    let target = target.with_registry(raw);
    let total = count(&source).await?;
    check_target_is_a_prefix(&source, &target).await?;
    let mut progress = MigrationProgress {
        read: 0,
        copied: 0,
        skipped: 0,
        total,
        position: 0,
    };
    let mut events = source.read_all(ReadOptions::new());
    let mut batch = Vec::with_capacity(options.batch_size);
    loop {
        let next = events.next().await.transpose()?;
        let end = next.is_none();
        batch.extend(next);
        if batch.len() == options.batch_size || (end && !batch.is_empty()) {
            let payloads = payload_texts(&source, &batch).await?;
            let imported = target.import(&batch, &payloads).await?;
            progress.read += batch.len() as u64;
            progress.copied += imported.copied;
            progress.skipped += imported.skipped;
            progress.position = batch
                .last()
                .map_or(progress.position, |e| e.global_position);
            tracing::info!(
                read = progress.read,
                total,
                copied = progress.copied,
                skipped = progress.skipped,
                "migration batch written"
            );
            if let Some(report) = &options.progress {
                report(&progress);
            }
            batch.clear();
        }
        if end {
            break;
        }
    }
    // Checkpoints name global positions, which are kept: copied, they stay valid.
    let checkpoints = source.get_all_checkpoints().await?;
    for checkpoint in &checkpoints {
        target.import_checkpoint(checkpoint).await?;
    }
    let mut report = verify(&source, &target, progress).await?;
    report.checkpoints = checkpoints.len() as u64;
    Ok(report)
}

/// The payloads of `batch` as the source stores them (JSON text), in batch order.
async fn payload_texts(source: &SqliteEventStore, batch: &[StoredEvent]) -> Result<Vec<String>> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Ok(Vec::new());
    };
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT global_position, payload FROM events WHERE global_position BETWEEN ? AND ?",
    )
    .bind(to_i64(first.global_position))
    .bind(to_i64(last.global_position))
    .fetch_all(source.pool())
    .await
    .map_err(db_error("migrate"))?;
    let texts: HashMap<u64, String> = rows.into_iter().map(|(p, t)| (to_u64(p), t)).collect();
    batch
        .iter()
        .map(|event| {
            texts
                .get(&event.global_position)
                .cloned()
                .ok_or_else(|| Error::Migration {
                    message: format!(
                        "the source event at position {} disappeared during the migration",
                        event.global_position
                    ),
                })
        })
        .collect()
}

/// Refuses a target that holds anything but the first events of this source (what an
/// interrupted run of this migration leaves).
async fn check_target_is_a_prefix(
    source: &SqliteEventStore,
    target: &PostgresEventStore,
) -> Result<()> {
    let held = count(target).await?;
    if held == 0 {
        return Ok(());
    }
    let head = target.get_global_position().await?;
    let refuse = |why: String| Error::Migration {
        message: format!(
            "the target holds {held} events up to position {head} that are not the start of \
             this source ({why}); migrate into an empty schema"
        ),
    };
    let in_source: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE global_position <= ?")
            .bind(to_i64(head))
            .fetch_one(source.pool())
            .await
            .map_err(db_error("migrate"))?;
    if to_u64(in_source) != held {
        return Err(refuse(format!(
            "the source has {in_source} events up to there"
        )));
    }
    let target_last = first_event(target, ReadOptions::new().backward().limit(1)).await?;
    let source_at =
        first_event(source, ReadOptions::new().from_position(head - 1).limit(1)).await?;
    match (target_last, source_at) {
        (Some(t), Some(s)) if t.event_id() == s.event_id() && s.global_position == head => Ok(()),
        _ => Err(refuse(format!("the event at position {head} differs"))),
    }
}

/// The first event `options` reads, if any.
async fn first_event(store: &dyn EventStore, options: ReadOptions) -> Result<Option<StoredEvent>> {
    store.read_all(options).next().await.transpose()
}

async fn count(store: &dyn EventStore) -> Result<u64> {
    Ok(store
        .event_type_counts()
        .await?
        .iter()
        .map(|c| c.count)
        .sum())
}

/// Counts and checksums both stores; an error when they differ.
async fn verify(
    source: &dyn EventStore,
    target: &dyn EventStore,
    progress: MigrationProgress,
) -> Result<MigrationReport> {
    let (source_events, source_sum) = checksum(source).await?;
    let (target_events, target_sum) = checksum(target).await?;
    if source_events != target_events || source_sum != target_sum {
        return Err(Error::Migration {
            message: format!(
                "verification failed: the source has {source_events} events (checksum {source_sum:016x}), \
                 the target {target_events} (checksum {target_sum:016x})"
            ),
        });
    }
    Ok(MigrationReport {
        source_events,
        target_events,
        copied: progress.copied,
        skipped: progress.skipped,
        checkpoints: 0,
        checksum: format!("{source_sum:016x}"),
    })
}

/// The number of events of a store and a checksum over all of them, in global order.
///
/// # Errors
/// [`Error::CorruptEvent`] for a row that cannot be read; database errors.
pub async fn store_checksum(store: &dyn EventStore) -> Result<(u64, u64)> {
    checksum(store).await
}

async fn checksum(store: &dyn EventStore) -> Result<(u64, u64)> {
    let mut events = store.read_all(ReadOptions::new());
    let mut hash = fnv1a(b"");
    let mut count = 0;
    let mut text = String::new();
    while let Some(event) = events.next().await {
        text.clear();
        canonical_event(&event?, &mut text)?;
        hash = fnv1a_extend(hash, text.as_bytes());
        count += 1;
    }
    Ok((count, hash))
}

/// One line per event with every field a migration must keep, JSON with sorted keys.
fn canonical_event(event: &StoredEvent, out: &mut String) -> Result<()> {
    use std::fmt::Write;
    let e = &event.envelope;
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    let _ = write!(
        out,
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{:?}|{:?}|{:?}|",
        event.global_position,
        e.event_id,
        e.aggregate_id,
        e.aggregate_type,
        event.stream_position,
        e.event_type,
        e.event_version,
        micros(e.timestamp),
        micros(event.stored_at),
        e.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        e.actor_id,
        e.correlation_id,
        e.causation_id,
    );
    canonical_json(&Value::Object(e.metadata.clone()), out);
    out.push('|');
    canonical_json(&event.payload.to_json_value()?, out);
    out.push('\n');
    Ok(())
}
