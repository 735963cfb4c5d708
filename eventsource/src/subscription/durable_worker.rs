//! One durable subscription's task: run the [`DurableRunner`]'s batches (each committed
//! whole with its checkpoint and dead letters), publish what they committed to the
//! subscription's health and waiters, and wait for the next wake-up.

use std::sync::Arc;

use tokio::sync::{watch, Mutex};

use super::durable::DurableRunner;
use super::health::{Shared, SubscriptionState};
use super::worker::{batch_failed, pause};
use crate::bus::BusSubscription;
use crate::error::Error;
use crate::projection::BatchReport;

/// One durable subscription's task.
pub(super) struct DurableWorker {
    pub(super) runner: Arc<Mutex<dyn DurableRunner>>,
    pub(super) wake: Option<BusSubscription>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) shared: Arc<Shared>,
    /// The checkpoint it starts from.
    pub(super) position: u64,
}

impl DurableWorker {
    pub(super) async fn run(mut self) {
        let name = self.shared.name.clone();
        self.shared.handled_to(self.position);
        self.shared.health().position = self.position;
        self.shared.position.send_replace(self.position);
        self.shared.set_state(SubscriptionState::CatchingUp);
        let mut failures = 0u32;
        let mut batch_error: Option<String> = None;
        loop {
            if *self.stop.borrow() {
                break;
            }
            let outcome = {
                let mut runner = self.runner.lock().await;
                runner.run_batch().await
            };
            match outcome {
                Ok(report) => {
                    if failures > 0 {
                        tracing::info!(subscription = %name, failures, "subscription recovered");
                        failures = 0;
                        let mut health = self.shared.health();
                        if health.last_error == batch_error.take() {
                            health.last_error = None;
                            health.last_error_at = None;
                        }
                    }
                    self.publish(&report);
                    if let Some(wait) = report.retry_after {
                        tracing::debug!(subscription = %name, error = report.retry_error.as_deref().unwrap_or(""), "handler failed; retrying after its backoff");
                        tokio::select! {
                            _ = self.stop.wait_for(|stopping| *stopping) => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        continue;
                    }
                    if !report.caught_up {
                        continue;
                    }
                }
                Err(Error::StoreClosed) => {
                    tracing::error!(subscription = %name, "the event store was closed; the subscription ends");
                    self.shared.note_error(Error::StoreClosed.to_string());
                    self.shared.end(SubscriptionState::Failed);
                    return;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let backoff = batch_failed(&self.shared, &error, failures);
                    batch_error = Some(error.to_string());
                    tokio::select! {
                        _ = self.stop.wait_for(|stopping| *stopping) => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    continue;
                }
            }
            if pause(&mut self.wake, &mut self.stop, &self.shared).await {
                break;
            }
        }
        self.shared.set_state(SubscriptionState::Stopped);
    }

    /// Tells the health and the waiters what a committed batch did.
    fn publish(&self, report: &BatchReport) {
        for letter in &report.dead_letters {
            self.shared.note_error(format!(
                "`{}` at position {}: {}",
                letter.event_type, letter.global_position, letter.error
            ));
            self.shared
                .dead_lettered(letter.global_position, &letter.event_type, &letter.error);
        }
        self.shared.handled_to(report.position);
        {
            let mut health = self.shared.health();
            health.position = report.position;
            health.head_position = report.head.max(report.position);
            health.events_processed += report.applied;
            health.events_failed += report.dead_lettered;
            health.state = if report.caught_up {
                SubscriptionState::Live
            } else {
                SubscriptionState::CatchingUp
            };
        }
        // Last, so that a `wait_for` that returns sees the health above.
        self.shared.position.send_replace(report.position);
    }
}
