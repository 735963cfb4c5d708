//! What the exactly-once projection runners of the SQL backends share: catching up, the
//! spawned loop (woken by a bus and by polling, stopped between batches) and its handle,
//! and the outcome of one attempt at one event. Each backend keeps its own batch (its
//! transaction, checkpoint lock and statements): `store/sqlite/projection.rs` and
//! `store/postgres/projection.rs`.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::bus::{BusFilter, BusRecvError, EventBus};
use async_trait::async_trait;

use crate::checkpoint::{lag_metrics, CheckpointStore, LagMetrics};
use crate::dlq::{dead_lettered_event, DeadLetter, DeadLetterStatus, DeadLetterStore};
use crate::error::{BoxError, Error, Result};
use crate::projection::{BatchDeadLetter, BatchReport, RebuildProgress};
use crate::store::EventStore;
use crate::stored::StoredEvent;
use crate::subscription::{DurableRunner, RetryPolicy};

/// A runner of batches, each committed whole or not at all.
pub(crate) trait RunBatches: Send + 'static {
    /// The name its checkpoint is kept under (for logs).
    fn runner_name(&self) -> &str;

    /// Reads the next batch after the checkpoint and applies it in one transaction.
    fn next_batch(&mut self) -> impl Future<Output = Result<BatchReport>> + Send;

    /// Clears the read model (the projection's reset) and its checkpoint, in one
    /// transaction.
    fn reset_read_model(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// The event types its projection handles.
    fn handled_types(&self) -> &'static [&'static str];

    /// Takes a subscription's batch size and retry policy.
    fn set_batches(&mut self, batch_size: u64, retry: RetryPolicy);

    /// Its store, as the events and the checkpoints it reads.
    fn stores(&self) -> (&dyn EventStore, &dyn CheckpointStore);

    /// Replays the dead letter `id` in one transaction with its resolution; the event's
    /// position.
    fn replay(&mut self, id: i64) -> impl Future<Output = Result<u64>> + Send;
}

/// Every runner of batches is a [`DurableRunner`] a `SubscriptionManager` can run.
#[async_trait]
impl<R: RunBatches> DurableRunner for R {
    fn name(&self) -> &str {
        self.runner_name()
    }

    fn handled_event_types(&self) -> &'static [&'static str] {
        self.handled_types()
    }

    fn configure(&mut self, batch_size: u64, retry: RetryPolicy) {
        self.set_batches(batch_size, retry);
    }

    async fn checkpoint(&mut self) -> Result<u64> {
        let (events, checkpoints) = self.stores();
        trusted_checkpoint(events, checkpoints, self.runner_name()).await
    }

    async fn run_batch(&mut self) -> Result<BatchReport> {
        self.next_batch().await
    }

    async fn lag(&mut self) -> Result<Option<LagMetrics>> {
        let (events, checkpoints) = self.stores();
        let handled = self.handled_types();
        lag_metrics(checkpoints, events, self.runner_name(), Some(handled)).await
    }

    async fn replay_dead_letter(&mut self, id: i64) -> Result<u64> {
        self.replay(id).await
    }

    async fn rebuild(&mut self, progress: &mut (dyn FnMut(RebuildProgress) + Send)) -> Result<u64> {
        rebuild(self, progress).await
    }
}

/// Clears the read model and its checkpoint in one transaction, then catches up from the
/// beginning, telling `progress` after every batch; returns the events applied.
pub(crate) async fn rebuild<R: RunBatches>(
    runner: &mut R,
    mut progress: impl FnMut(RebuildProgress) + Send,
) -> Result<u64> {
    runner.reset_read_model().await?;
    let mut done = RebuildProgress {
        position: 0,
        head: 0,
        applied: 0,
        dead_lettered: 0,
    };
    loop {
        let report = runner.next_batch().await?;
        done.position = report.position;
        done.head = report.head.max(report.position);
        done.applied += report.applied;
        done.dead_lettered += report.dead_lettered;
        progress(done);
        if let Some(wait) = report.retry_after {
            tokio::time::sleep(wait).await;
        } else if report.caught_up {
            return Ok(done.applied);
        }
    }
}

/// The error of a failed reset: the store's own, or the projection's as
/// [`Error::ResetFailed`].
pub(crate) fn reset_failed(projection: &str, error: crate::error::BoxError) -> Error {
    match error.downcast::<Error>() {
        Ok(error) => *error,
        Err(source) => Error::ResetFailed {
            projection: projection.to_owned(),
            source,
        },
    }
}

/// Runs batches until the head of the store, waiting out retry backoffs between them
/// (outside any transaction); returns the events applied.
pub(crate) async fn catch_up<R: RunBatches>(runner: &mut R) -> Result<u64> {
    let mut applied = 0;
    loop {
        let report = runner.next_batch().await?;
        applied += report.applied;
        if let Some(wait) = report.retry_after {
            tokio::time::sleep(wait).await;
        } else if report.caught_up {
            return Ok(applied);
        }
    }
}

/// A runner running in a task (`spawn` of `SqliteProjectionRunner` or
/// `PostgresProjectionRunner`).
#[derive(Debug)]
pub struct ProjectionRunnerHandle<R> {
    stop: watch::Sender<bool>,
    task: JoinHandle<R>,
}

impl<R> ProjectionRunnerHandle<R> {
    /// Stops after the batch in progress (committed or rolled back whole) and returns
    /// the runner.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] if the task panicked outside a handler (a
    /// handler's panic is caught, rolled back and dead-lettered like an error).
    pub async fn stop(self) -> Result<R> {
        self.stop.send_replace(true);
        self.task.await.map_err(|e| Error::InvalidConfiguration {
            message: format!("the projection task panicked: {e}"),
        })
    }
}

/// Runs `runner` in a task: catches up, then applies new events as they come, woken by
/// `bus` (any published event) and by polling every `poll_interval`; errors are logged
/// and retried.
pub(crate) fn spawn<R: RunBatches>(
    mut runner: R,
    bus: Option<&dyn EventBus>,
    poll_interval: Duration,
) -> ProjectionRunnerHandle<R> {
    let (stop, mut stopped) = watch::channel(false);
    let mut wake = bus.map(|bus| bus.subscribe(BusFilter::All));
    let task = tokio::spawn(async move {
        loop {
            if *stopped.borrow() {
                break;
            }
            let wait = match runner.next_batch().await {
                Ok(report) if report.retry_after.is_some() => report.retry_after,
                // More to read: the next batch at once (after the stop check).
                Ok(report) if !report.caught_up => continue,
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(projection = %runner.runner_name(), %error, "projection batch failed; retrying");
                    Some(poll_interval)
                }
            };
            let woken = async {
                match (wait, wake.as_mut()) {
                    (Some(_), _) | (None, None) => std::future::pending::<bool>().await,
                    (None, Some(wake)) => {
                        wake.recv().await.is_err_and(|e| e == BusRecvError::Closed)
                    }
                }
            };
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(wait.unwrap_or(poll_interval)) => {}
                closed = woken => {
                    if closed {
                        // The bus is gone: polling only, from now on.
                        wake = None;
                    }
                }
            }
        }
        runner
    });
    ProjectionRunnerHandle { stop, task }
}

/// The attempts at the event that failed last: which event, and how often so far.
#[derive(Debug, Default)]
pub(crate) struct Attempts(Option<(Uuid, u32)>);

impl Attempts {
    /// `event_id` succeeded: only the failing event's success ends its count (a retry
    /// inside a split row applies the row's earlier events again first).
    pub(crate) fn succeeded(&mut self, event_id: Uuid) {
        if self.0.is_some_and(|(id, _)| id == event_id) {
            self.0 = None;
        }
    }

    /// `event` failed with `error`: what to do about it by `retry`, and its attempts so
    /// far.
    pub(crate) fn failed(
        &mut self,
        event: &StoredEvent,
        error: &str,
        retry: &RetryPolicy,
    ) -> (Applied, u32) {
        let event_id = event.event_id();
        let attempt = match self.0 {
            Some((id, attempts)) if id == event_id => attempts + 1,
            _ => 1,
        };
        if attempt < retry.max_attempts {
            // Retried in a later batch, after a backoff spent outside the transaction.
            self.0 = Some((event_id, attempt));
            return (
                Applied::RetryAfter(retry.backoff(attempt), error.to_owned()),
                attempt,
            );
        }
        self.0 = None;
        let letter = BatchDeadLetter {
            global_position: event.global_position,
            event_type: event.event_type().to_owned(),
            error: error.to_owned(),
        };
        (Applied::DeadLettered(letter), attempt)
    }

    /// Forgets the count (a rebuild starts over).
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
}

/// The outcome of one attempt at one event.
pub(crate) enum Applied {
    Yes,
    DeadLettered(BatchDeadLetter),
    /// Failed with this error; the batch ends before this event and it is tried again
    /// after the wait.
    RetryAfter(Duration, String),
}

/// The dead letter `id` and its event, for a replay into the durable read model `name`:
/// it must be one of `name`'s, and not resolved (its event may be applied already).
pub(crate) async fn replay_target(
    store: &dyn EventStore,
    dead_letters: &dyn DeadLetterStore,
    name: &str,
    id: i64,
) -> Result<(DeadLetter, StoredEvent)> {
    let letter = dead_letters
        .get_failed_event(id)
        .await?
        .ok_or(Error::DeadLetterNotFound { id })?;
    if letter.failed.projection_name != name {
        return Err(Error::InvalidInput {
            message: format!(
                "dead letter {id} is of projection `{}`, not `{name}`",
                letter.failed.projection_name
            ),
        });
    }
    if letter.status == DeadLetterStatus::Resolved {
        return Err(Error::InvalidInput {
            message: format!(
                "dead letter {id} is resolved already ({}): replaying it could apply its event twice",
                letter.resolution.as_deref().unwrap_or("no resolution noted")
            ),
        });
    }
    let event = dead_lettered_event(store, &letter).await?;
    Ok((letter, event))
}

/// The checkpoint of `name`, refused when it is beyond the head of `store`.
pub(crate) async fn trusted_checkpoint(
    store: &dyn EventStore,
    checkpoints: &dyn CheckpointStore,
    name: &str,
) -> Result<u64> {
    let saved = checkpoints.get_position(name).await?.unwrap_or(0);
    let head = store.get_global_position().await?;
    if saved > head {
        return Err(Error::InvalidCheckpoint {
            projection: name.to_owned(),
            detail: format!("it is at position {saved}, beyond the store's head {head}"),
        });
    }
    Ok(saved)
}

/// Refuses to replay the event at `position` into a read model checkpointed before it:
/// the runner applies it when it gets there.
pub(crate) fn check_replay_position(
    name: &str,
    id: i64,
    position: u64,
    checkpoint: u64,
) -> Result<()> {
    if checkpoint < position {
        return Err(Error::InvalidInput {
            message: format!(
                "dead letter {id}: projection `{name}` is at position {checkpoint}, before the event at {position}; \
                 it applies the event when it gets there, so a replay now could apply it twice"
            ),
        });
    }
    Ok(())
}

/// The error of a replay whose handler failed again (the backend has counted the
/// attempt on the letter).
pub(crate) fn replay_failed(letter: &DeadLetter, event: &StoredEvent, source: BoxError) -> Error {
    Error::HandlerFailed {
        projection: letter.failed.projection_name.clone(),
        event_type: event.event_type().to_owned(),
        global_position: event.global_position,
        source,
    }
}
