//! One subscription's task: read a batch after its position, hand each event to the
//! projection (retrying, then dead-lettering failures and panics), save the checkpoint,
//! and wait for the next wake-up.

use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use super::batches::{BatchReader, ReadBatch};
use super::health::{Shared, SubscriptionState};
use crate::bus::{BusRecvError, BusSubscription};
use crate::checkpoint::CheckpointStore;
use crate::dlq::{DeadLetterStore, FailedEvent};
use crate::error::{BoxError, Error, Result};
use crate::panics::catch_unwind;
use crate::projection::Projection;
use crate::store::EventStore;
use crate::stored::StoredEvent;

/// One subscription's task.
pub(super) struct Worker {
    pub(super) projection: Arc<tokio::sync::Mutex<dyn Projection>>,
    pub(super) store: Arc<dyn EventStore>,
    pub(super) checkpoints: Arc<dyn CheckpointStore>,
    pub(super) dead_letters: Arc<dyn DeadLetterStore>,
    pub(super) wake: Option<BusSubscription>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) shared: Arc<Shared>,
    /// The global position handled up to.
    pub(super) position: u64,
    /// The task reading the batches, kept while they come full.
    pub(super) reader: Option<BatchReader>,
    /// Batches failed in a row; the retry policy's backoff grows with them.
    pub(super) failures: u32,
    /// The error the last failed batch noted, cleared when a batch succeeds again.
    pub(super) batch_error: Option<String>,
    /// The position handled up to may be ahead of the saved checkpoint (a save failed,
    /// or this run resumed in the same process): the next batch saves it even when it
    /// handles nothing, and the subscription is not back to health before it has.
    pub(super) unsaved: bool,
}

/// Reports a failed batch (the `failures`th in a row): logged, noted in the health, the
/// state `Retrying`; returns the backoff to wait before the next.
pub(super) fn batch_failed(shared: &Shared, error: &Error, failures: u32) -> std::time::Duration {
    let name = &shared.name;
    if error.is_transient() {
        tracing::warn!(subscription = %name, %error, failures, "subscription batch failed (transient); retrying");
    } else {
        tracing::error!(subscription = %name, %error, failures, "subscription batch failed; retrying");
    }
    shared.note_error(error.to_string());
    shared.set_state(SubscriptionState::Retrying);
    shared.config.retry.backoff(failures)
}

/// Waits for a wake-up from `wake`, the poll interval, or `stop`; `true` when stopping.
pub(super) async fn pause(
    wake: &mut Option<BusSubscription>,
    stop: &mut watch::Receiver<bool>,
    shared: &Shared,
) -> bool {
    let poll = tokio::time::sleep(shared.config.poll_interval);
    let woken = async {
        match wake.as_mut() {
            Some(wake) => match wake.recv().await {
                Ok(_) => None,
                Err(BusRecvError::Lagged { missed }) => Some(Ok(missed)),
                Err(BusRecvError::Closed) => Some(Err(())),
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stop.wait_for(|stopping| *stopping) => return true,
        _ = poll => {}
        outcome = woken => match outcome {
            Some(Ok(missed)) => shared.health().bus_messages_missed += missed,
            // The bus is gone: polling only, from now on.
            Some(Err(())) => *wake = None,
            None => {}
        },
    }
    *stop.borrow()
}

/// How a batch ended.
enum Batch {
    /// A full batch: there may be more right away.
    Full,
    /// Fewer than a batch: caught up with the head.
    CaughtUp,
}

/// How a handler's failure is treated.
enum Failure {
    /// Worth another attempt by the retry policy.
    Retry,
    /// No attempt can succeed (e.g. a payload the handler cannot use): dead-letter now.
    Permanent,
}

/// A handler error that is one of ours and not transient cannot be cured by retrying the
/// same event; anything else (the user's own errors, panics, transient store errors) is
/// retried by the policy.
fn classify(error: &BoxError) -> Failure {
    match error.downcast_ref::<Error>() {
        Some(
            Error::CorruptEvent { .. }
            | Error::UnknownEventType { .. }
            | Error::EventTypeMismatch { .. }
            | Error::Serialization { .. }
            | Error::InvalidInput { .. }
            | Error::DuplicateEventType { .. },
        ) => Failure::Permanent,
        _ => Failure::Retry,
    }
}

impl Worker {
    pub(super) async fn run(mut self) {
        let name = self.shared.name.clone();
        let mut position = self.position;
        self.shared.handled_to(position);
        self.shared.position.send_replace(position);
        self.shared.health().position = position;
        self.shared.set_state(SubscriptionState::CatchingUp);
        loop {
            if *self.stop.borrow() {
                break;
            }
            match self.batch(&mut position).await {
                Ok(Batch::Full) => continue,
                Ok(Batch::CaughtUp) => {}
                Err(Error::StoreClosed) => {
                    tracing::error!(subscription = %name, "the event store was closed; the subscription ends");
                    self.shared.note_error(Error::StoreClosed.to_string());
                    self.shared.end(SubscriptionState::Failed);
                    return;
                }
                Err(error) => {
                    self.failures = self.failures.saturating_add(1);
                    let backoff = batch_failed(&self.shared, &error, self.failures);
                    self.batch_error = Some(error.to_string());
                    tokio::select! {
                        _ = self.stop.wait_for(|stopping| *stopping) => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    continue;
                }
            }
            if self.pause().await {
                break;
            }
        }
        self.shared.set_state(SubscriptionState::Stopped);
    }

    /// Waits for a wake-up, the poll interval, or stop; `true` when stopping.
    async fn pause(&mut self) -> bool {
        pause(&mut self.wake, &mut self.stop, &self.shared).await
    }

    /// Reads and handles one batch after `position`, then saves the checkpoint.
    async fn batch(&mut self, position: &mut u64) -> Result<Batch> {
        let batch_size = self.shared.config.batch_size;
        let mut reader = match self.reader.take() {
            Some(reader) if reader.reads_after(*position) => reader,
            _ => BatchReader::start(
                self.store.clone(),
                *position,
                batch_size,
                self.shared.handled,
            ),
        };
        let ReadBatch {
            head,
            latest_head,
            items,
        } = reader.next().await?;
        let read = items.len();
        let mut processed = 0;
        // Handled events that failed (and were dead-lettered), among `processed`.
        let mut failed = 0;
        // Rows that did not decode (dead-lettered, never handled), apart from them.
        let mut corrupt = 0;
        let mut last_event = None;
        let mut read_error = None;
        let start = *position;
        // The position before the row of the event being handled: the events a split
        // upcaster made of one row share its position, and a batch stopped inside them
        // is checkpointed before that row.
        let mut before_row = start;
        {
            let mut projection = self.projection.lock().await;
            for item in items {
                match item {
                    Ok(event) => {
                        if event.global_position != *position {
                            before_row = *position;
                        }
                        // A failure to record a dead letter stops the batch; what was
                        // handled before it is checkpointed below.
                        match self.handle(&mut *projection, &event).await {
                            Ok(true) => {}
                            Ok(false) => failed += 1,
                            Err(error) => {
                                if event.global_position == *position {
                                    *position = before_row;
                                    self.shared.handled_to(*position);
                                }
                                read_error = Some(error);
                                break;
                            }
                        }
                        processed += 1;
                        *position = event.global_position;
                        self.shared.handled_to(*position);
                        last_event = Some((event.event_id(), event.event_type().to_owned()));
                    }
                    // Undecodable: kept in the store, dead-lettered, and passed over.
                    Err(error) => match FailedEvent::for_corrupt_row(&self.shared.name, &error) {
                        Some(letter) => {
                            let at = letter.global_position;
                            let (event_type, reason) =
                                (letter.event_type.clone(), letter.error.clone());
                            if let Err(error) = self.dead_letter(letter).await {
                                read_error = Some(error);
                                break;
                            }
                            tracing::warn!(
                                subscription = %self.shared.name,
                                position = at,
                                event_type = %event_type,
                                reason = %reason,
                                "unreadable event dead-lettered"
                            );
                            self.shared.note_error(format!(
                                "unreadable `{event_type}` at position {at}: {reason}"
                            ));
                            self.shared.dead_lettered(at, &event_type, &reason);
                            corrupt += 1;
                            // A row at no position (reported at 0) does not move it back.
                            *position = (*position).max(at);
                            self.shared.handled_to(*position);
                        }
                        None => {
                            read_error = Some(error);
                            break;
                        }
                    },
                }
            }
        }
        let caught_up = read_error.is_none() && read < batch_size;
        if caught_up {
            // Every handled event up to `head` was in this read: `head` was read first,
            // and every store makes positions follow commit order (memory and SQLite by
            // their write lock, PostgreSQL by its append lock), so no event at or below
            // `head` can commit later.
            *position = (*position).max(head);
            self.shared.handled_to(*position);
        }
        let last = last_event
            .as_ref()
            .map(|(id, t): &(Uuid, String)| (*id, t.as_str()));
        // Nothing new and nothing left unsaved (an empty poll): no write.
        let saved = if *position != start || processed > 0 || self.unsaved {
            self.checkpoints
                .save_progress(&self.shared.name, *position, last, processed)
                .await
        } else {
            Ok(())
        };
        self.unsaved = saved.is_err();
        // What was handled is published below even when the checkpoint was not saved:
        // the read model has it, and a restart in this process must not apply it again.
        let read_error = read_error.or(saved.err());
        // A full batch handled to its end and checkpointed: the reader has the next one
        // on its way.
        // (A batch holding every event of its last row may be longer than asked.)
        if read_error.is_none() && read >= batch_size {
            self.reader = Some(reader);
        }
        {
            let mut health = self.shared.health();
            health.position = *position;
            health.head_position = latest_head.max(*position);
            health.events_processed += processed - failed;
            health.events_failed += failed + corrupt;
            if read_error.is_none() && self.failures > 0 {
                // Recovered: the failure the health shows is over (a dead letter noted
                // since stays).
                tracing::info!(subscription = %self.shared.name, failures = self.failures, "subscription recovered");
                self.failures = 0;
                if health.last_error == self.batch_error.take() {
                    health.last_error = None;
                    health.last_error_at = None;
                }
            }
            if read_error.is_none() {
                health.state = if caught_up {
                    SubscriptionState::Live
                } else {
                    SubscriptionState::CatchingUp
                };
            }
        }
        // Last, so that a `wait_for` that returns sees the health above.
        self.shared.position.send_replace(*position);
        match read_error {
            Some(error) => Err(error),
            None if caught_up => Ok(Batch::CaughtUp),
            None => Ok(Batch::Full),
        }
    }

    /// Handles one event by the retry policy; `false` when it was dead-lettered. A panic
    /// in the handler counts as a failure with the panic's message.
    async fn handle(&self, projection: &mut dyn Projection, event: &StoredEvent) -> Result<bool> {
        let policy = self.shared.config.retry;
        let mut attempt = 1;
        loop {
            let error: BoxError = match catch_unwind(projection.handle(event)).await {
                Ok(Ok(())) => return Ok(true),
                Ok(Err(error)) => error,
                Err(panic) => format!("handler {panic}").into(),
            };
            let permanent = matches!(classify(&error), Failure::Permanent);
            if attempt < policy.max_attempts && !permanent {
                tracing::debug!(attempt, %error, position = event.global_position, "handler failed; retrying");
                tokio::time::sleep(policy.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            tracing::warn!(
                subscription = %self.shared.name,
                position = event.global_position,
                event_type = event.event_type(),
                attempts = attempt,
                %error,
                "handler failed; event dead-lettered"
            );
            let message = error.to_string();
            self.dead_letter(FailedEvent::for_event(
                &self.shared.name,
                event,
                &message,
                attempt,
            ))
            .await?;
            self.shared.note_error(format!(
                "`{}` at position {}: {message}",
                event.event_type(),
                event.global_position
            ));
            self.shared
                .dead_lettered(event.global_position, event.event_type(), &message);
            return Ok(false);
        }
    }

    async fn dead_letter(&self, failed: FailedEvent) -> Result<()> {
        self.dead_letters.add_failed_event(failed).await.map(|_| ())
    }
}
