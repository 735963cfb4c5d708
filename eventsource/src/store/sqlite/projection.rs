//! Exactly-once read models in the event store's SQLite database: a
//! [`SqliteProjection`] writes its read model through the same transaction that moves its
//! checkpoint, so after a crash at any point every event is applied exactly once.

use std::time::Duration;

use futures::StreamExt;
use sqlx::{Connection, SqliteConnection};
use uuid::Uuid;

use super::checkpoint::{position_on, save_progress_on};
use super::dlq::{add_failed_event_on, note_failed_replay, resolve_all_on, resolve_on};
use super::{db_error, SqliteEventStore};
use crate::bus::EventBus;
use crate::checkpoint::CheckpointStore;
use crate::dlq::FailedEvent;
use crate::error::{BoxError, Error, Result};
use crate::panics::catch_unwind;
use crate::projection::{BatchDeadLetter, BatchReport, RebuildProgress, TransactionalProjection};
use crate::store::runner::{self, Applied, Attempts, ProjectionRunnerHandle, RunBatches};
use crate::store::schema_state::Need;
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;
use crate::subscription::RetryPolicy;

/// A read model kept in the event store's own SQLite database: a
/// [`TransactionalProjection`] on a [`SqliteConnection`], implemented for every one.
///
/// Its handler writes through `conn`, a connection inside the transaction that also saves
/// the checkpoint (and any dead letter): a batch is committed whole or not at all. The
/// handler must not use the store itself meanwhile: the transaction holds the database's
/// write lock (and, on `:memory:`, the pool's only connection). Write one with
/// `#[projection]` and handlers taking `conn: &mut SqliteConnection`, or implement
/// `TransactionalProjection<SqliteConnection>`.
pub trait SqliteProjection: TransactionalProjection<SqliteConnection> {}

impl<P: TransactionalProjection<SqliteConnection>> SqliteProjection for P {}

/// A running [`SqliteProjectionRunner`].
pub type SqliteProjectionHandle<P> = ProjectionRunnerHandle<SqliteProjectionRunner<P>>;

/// Runs a [`SqliteProjection`] over its store's events in batches, each one transaction
/// holding the read-model writes, the dead letters and the checkpoint.
///
/// One runner per name at a time: a second one notices the moved checkpoint and fails
/// with [`Error::InvalidConfiguration`] rather than apply events twice.
#[derive(Debug)]
pub struct SqliteProjectionRunner<P> {
    store: SqliteEventStore,
    projection: P,
    name: String,
    batch_size: u64,
    retry: RetryPolicy,
    /// The attempts at the event that failed last.
    failing: Attempts,
}

impl<P: SqliteProjection> SqliteProjectionRunner<P> {
    /// A runner for `projection` under `name`: batches of 100, the default retry policy.
    pub fn new(store: SqliteEventStore, projection: P, name: impl Into<String>) -> Self {
        SqliteProjectionRunner {
            store,
            projection,
            name: name.into(),
            batch_size: 100,
            retry: RetryPolicy::default(),
            failing: Attempts::default(),
        }
    }

    /// Events per batch (and per transaction).
    pub fn batch_size(mut self, batch_size: u64) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Retries of a failing handler.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, to change its own settings between batches (its read model is in
    /// the database).
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    /// Runs batches until the head of the store; returns the events applied.
    ///
    /// # Errors
    /// Database errors (the batch in progress is rolled back and nothing is lost).
    pub async fn catch_up(&mut self) -> Result<u64> {
        runner::catch_up(self).await
    }

    /// Rebuilds the read model: its `#[reset]` and the checkpoint's removal in one
    /// transaction (all or nothing), then a catch-up from the first event, with
    /// `progress` told after every batch (what a progress bar draws). The projection's
    /// failed dead letters are resolved as `"rebuilt"` in the reset's transaction (the
    /// catch-up hands their events to it again; one that fails again is dead-lettered
    /// again), so none can be replayed on top of the rebuilt read model.
    /// Returns the events applied.
    ///
    /// # Errors
    /// [`Error::ResetFailed`] when the projection's reset fails or it has none (nothing
    /// is changed); then as [`catch_up`](Self::catch_up).
    pub async fn rebuild(&mut self, progress: impl FnMut(RebuildProgress) + Send) -> Result<u64> {
        runner::rebuild(self, progress).await
    }

    /// Runs in a task: catches up, then applies new events as they come, woken by `bus`
    /// (any published event) and by polling every `poll_interval`; errors are logged
    /// and retried. [`SqliteProjectionHandle::stop`] ends it after the batch in progress,
    /// also in the middle of a catch-up.
    pub fn spawn(
        self,
        bus: Option<&dyn EventBus>,
        poll_interval: Duration,
    ) -> SqliteProjectionHandle<P> {
        runner::spawn(self, bus, poll_interval)
    }

    /// Hands the event of the dead letter `id` to the projection again, in one
    /// transaction with the dead letter's resolution (as `"replayed"`): the read model
    /// gets it exactly once. When the handler fails (or panics) again, nothing of the
    /// attempt is written and the dead letter records one more attempt and the new error.
    /// Returns the event's global position.
    ///
    /// # Errors
    /// [`Error::DeadLetterNotFound`]; [`Error::InvalidInput`] when the dead letter is of
    /// another projection, resolved already, or of an event the read model has not
    /// reached yet (the runner applies it when it gets there); [`Error::HandlerFailed`]
    /// when the handler fails again; database errors.
    pub async fn replay_dead_letter(&mut self, id: i64) -> Result<u64> {
        const OP: &str = "replay_dead_letter";
        self.store
            .ready(OP, Need::Table("projection_checkpoints"), true)
            .await?;
        let (letter, event) =
            runner::replay_target(&self.store, &self.store, &self.name, id).await?;
        let mut tx = self
            .store
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(OP))?;
        match self.replay_in(&mut tx, id, &event).await {
            Ok(Ok(())) => {
                tx.commit().await.map_err(db_error(OP))?;
                Ok(event.global_position)
            }
            Ok(Err(source)) => {
                let _ = tx.rollback().await;
                note_failed_replay(&self.store, id, &source.to_string()).await?;
                Err(runner::replay_failed(&letter, &event, source))
            }
            Err(error) => {
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    /// A replay's statements inside its transaction: the checks, the resolution, the
    /// handler (whose own failure is the inner error).
    async fn replay_in(
        &mut self,
        tx: &mut SqliteConnection,
        id: i64,
        event: &StoredEvent,
    ) -> Result<std::result::Result<(), BoxError>> {
        let checkpoint = position_on(&mut *tx, &self.name).await?;
        runner::check_replay_position(&self.name, id, event.global_position, checkpoint)?;
        if !resolve_on(&mut *tx, id, "replayed").await? {
            return Err(Error::InvalidInput {
                message: format!("dead letter {id} was resolved meanwhile"),
            });
        }
        Ok(
            match catch_unwind(self.projection.handle(event, &mut *tx)).await {
                Ok(result) => result,
                Err(panic) => Err(format!("handler {panic}").into()),
            },
        )
    }

    /// The projection's reset and the checkpoint's removal, in one transaction.
    async fn reset_in_transaction(&mut self) -> Result<()> {
        const OP: &str = "rebuild_projection";
        self.store
            .ready(OP, Need::Table("projection_checkpoints"), true)
            .await?;
        let mut tx = self
            .store
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(OP))?;
        if let Err(error) = self.projection.reset(&mut tx).await {
            let _ = tx.rollback().await;
            return Err(runner::reset_failed(&self.name, error));
        }
        let deleted = sqlx::query("DELETE FROM projection_checkpoints WHERE projection_name = ?")
            .bind(&self.name)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP));
        // The catch-up hands the dead-lettered events to the projection again: one that
        // fails again is dead-lettered again; none may be replayed on top.
        let deleted = match deleted {
            Ok(_) => self
                .store
                .ready(OP, Need::Table("dead_letter_queue"), true)
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        };
        let deleted = match deleted {
            Ok(()) => resolve_all_on(&mut tx, &self.name, "rebuilt").await,
            Err(error) => Err(error),
        };
        if let Err(error) = deleted {
            let _ = tx.rollback().await;
            return Err(error);
        }
        self.failing.clear();
        tx.commit().await.map_err(db_error(OP))
    }

    /// Reads the next batch after the checkpoint and applies it in one transaction.
    ///
    /// # Errors
    /// Database errors; [`Error::InvalidConfiguration`] when another runner moved the
    /// checkpoint meanwhile (nothing of this batch is committed).
    pub async fn run_batch(&mut self) -> Result<BatchReport> {
        const OP: &str = "run_projection";
        self.store
            .ready(OP, Need::Table("projection_checkpoints"), true)
            .await?;
        let start = {
            let mut conn = self.store.pool.acquire().await.map_err(db_error(OP))?;
            position_on(&mut conn, &self.name).await?
        };
        let head = self.store.get_global_position().await?;
        if start > head {
            return Err(Error::InvalidCheckpoint {
                projection: self.name.clone(),
                detail: format!("it is at position {start}, beyond the store's head {head}"),
            });
        }
        let options = ReadOptions::new()
            .from_position(start)
            .limit(self.batch_size)
            // With the names the handled types were renamed from.
            .event_types(
                self.projection
                    .handled_event_types()
                    .iter()
                    .flat_map(|name| crate::EventRegistry::global().stored_names(name)),
            );
        let mut items: Vec<Result<StoredEvent>> = self.store.read_all(options).collect().await;
        // A failed read (not a corrupt row, which is dead-lettered): fail before taking
        // the write lock.
        let failed = items.iter().position(|item| {
            item.as_ref()
                .is_err_and(|e| FailedEvent::for_corrupt_row(&self.name, e).is_none())
        });
        if let Some(Err(error)) = failed.map(|i| items.swap_remove(i)) {
            return Err(error);
        }

        let mut tx = self
            .store
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(OP))?;
        match self.apply_batch(&mut tx, items, start, head).await {
            Ok(report) => {
                tx.commit().await.map_err(db_error(OP))?;
                Ok(report)
            }
            Err(error) => {
                // Ended here, so that the connection goes back to the pool outside any
                // transaction.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    /// The statements of one batch, inside its transaction.
    async fn apply_batch(
        &mut self,
        tx: &mut SqliteConnection,
        items: Vec<Result<StoredEvent>>,
        start: u64,
        head: u64,
    ) -> Result<BatchReport> {
        // Rows at no position (reported at 0, on top of the limit) do not count: the
        // batch is caught up when it read fewer placed rows than asked.
        let read = items
            .iter()
            .filter(|item| {
                !matches!(
                    item,
                    Err(Error::CorruptEvent {
                        global_position: 0,
                        ..
                    })
                )
            })
            .count() as u64;
        if position_on(&mut *tx, &self.name).await? != start {
            return Err(Error::InvalidConfiguration {
                message: format!("another runner is applying projection `{}`", self.name),
            });
        }
        let mut report = BatchReport {
            position: start,
            head,
            ..BatchReport::default()
        };
        let mut last_event = None;
        // The events a split upcaster made of one row share its position: they are
        // applied inside a savepoint of their own, so that a retry stopping among them
        // undoes the row's writes and checkpoints before it (exactly once).
        let positions: Vec<Option<u64>> = items
            .iter()
            .map(|item| item.as_ref().ok().map(|e| e.global_position))
            .collect();
        let mut row: Option<RowSavepoint> = None;
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Ok(event) => {
                    let at = Some(event.global_position);
                    let shared_row = positions.get(i + 1) == Some(&at);
                    if shared_row && row.is_none() {
                        sqlx::query("SAVEPOINT eventsource_row")
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error("run_projection"))?;
                        row = Some(RowSavepoint {
                            report: report.clone(),
                            last_event: last_event.clone(),
                        });
                    }
                    match self.apply(&event, &mut *tx).await? {
                        Applied::Yes => report.applied += 1,
                        Applied::DeadLettered(letter) => {
                            report.dead_lettered += 1;
                            report.dead_letters.push(letter);
                        }
                        Applied::RetryAfter(wait, error) => {
                            if let Some(before) = row.take() {
                                sqlx::query("ROLLBACK TO eventsource_row; RELEASE eventsource_row")
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(db_error("run_projection"))?;
                                (report, last_event) = (before.report, before.last_event);
                            }
                            report.retry_after = Some(wait);
                            report.retry_error = Some(error);
                            break;
                        }
                    }
                    report.position = event.global_position;
                    last_event = Some((event.event_id(), event.event_type().to_owned()));
                    if !shared_row && row.take().is_some() {
                        sqlx::query("RELEASE eventsource_row")
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error("run_projection"))?;
                    }
                }
                Err(error) => {
                    let letter = FailedEvent::for_corrupt_row(&self.name, &error).ok_or(error)?;
                    tracing::warn!(projection = %self.name, position = letter.global_position, reason = %letter.error, "unreadable event dead-lettered");
                    report.position = letter.global_position;
                    add_failed_event_on(&mut *tx, &letter).await?;
                    report.dead_lettered += 1;
                    report.dead_letters.push(BatchDeadLetter {
                        global_position: letter.global_position,
                        event_type: letter.event_type,
                        error: letter.error,
                    });
                }
            }
        }
        report.caught_up = report.retry_after.is_none() && read < self.batch_size;
        if report.caught_up {
            report.position = report.position.max(head);
        }
        let last = last_event
            .as_ref()
            .map(|(id, t): &(Uuid, String)| (*id, t.as_str()));
        save_progress_on(&mut *tx, &self.name, report.position, last, report.applied).await?;
        Ok(report)
    }

    /// Applies one event inside a savepoint, by the retry policy; `false` when it was
    /// dead-lettered.
    async fn apply(&mut self, event: &StoredEvent, conn: &mut SqliteConnection) -> Result<Applied> {
        const OP: &str = "run_projection";
        // A nested transaction is a savepoint: committed with the batch, or rolled back
        // alone.
        let mut savepoint = conn.begin().await.map_err(db_error(OP))?;
        // A panic counts as a failure: its writes are rolled back with the savepoint.
        let error: BoxError =
            match catch_unwind(self.projection.handle(event, &mut savepoint)).await {
                Ok(Ok(())) => {
                    savepoint.commit().await.map_err(db_error(OP))?;
                    self.failing.succeeded(event.event_id());
                    return Ok(Applied::Yes);
                }
                Ok(Err(error)) => error,
                Err(panic) => format!("handler {panic}").into(),
            };
        // Undo this attempt's writes, keep the batch's.
        savepoint.rollback().await.map_err(db_error(OP))?;
        let message = error.to_string();
        let (applied, attempt) = self.failing.failed(event, &message, &self.retry);
        if !matches!(applied, Applied::DeadLettered(_)) {
            return Ok(applied);
        }
        tracing::warn!(projection = %self.name, position = event.global_position, %error, "event dead-lettered");
        add_failed_event_on(
            conn,
            &FailedEvent::for_event(&self.name, event, &message, attempt),
        )
        .await?;
        Ok(applied)
    }
}

/// What a batch had done before the row whose events it is applying in a savepoint.
struct RowSavepoint {
    report: BatchReport,
    last_event: Option<(Uuid, String)>,
}

impl<P: SqliteProjection> RunBatches for SqliteProjectionRunner<P> {
    fn runner_name(&self) -> &str {
        &self.name
    }

    async fn next_batch(&mut self) -> Result<BatchReport> {
        self.run_batch().await
    }

    async fn reset_read_model(&mut self) -> Result<()> {
        self.reset_in_transaction().await
    }

    fn handled_types(&self) -> &'static [&'static str] {
        self.projection.handled_event_types()
    }

    fn set_batches(&mut self, batch_size: u64, retry: RetryPolicy) {
        self.batch_size = batch_size.max(1);
        self.retry = retry;
    }

    fn stores(&self) -> (&dyn EventStore, &dyn CheckpointStore) {
        (&self.store, &self.store)
    }

    async fn replay(&mut self, id: i64) -> Result<u64> {
        self.replay_dead_letter(id).await
    }
}
