//! What a subscription reports: its state, position and health, and the waiting for a
//! position (read-your-writes) that depends on them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Mutex};

use super::config::SubscriptionConfig;
use super::durable::DurableRunner;
use crate::error::{Error, Result};
use crate::projection::Projection;

/// What a subscription is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionState {
    /// Subscribed, not started.
    Pending,
    /// Reading full batches: behind the head.
    CatchingUp,
    /// Caught up; handling new events as they come.
    Live,
    /// Its last batch failed (the store unavailable, a dead letter that could not be
    /// written): it tries again, with the backoff of its retry policy.
    /// [`SubscriptionHealth::last_error`] says why.
    Retrying,
    /// Stopped by [`SubscriptionManager::stop`](crate::SubscriptionManager::stop).
    Stopped,
    /// Ended for good: its store was closed. [`SubscriptionHealth::last_error`] says why.
    Failed,
}

impl SubscriptionState {
    /// `true` for the states a subscription does not leave without a new
    /// [`start`](crate::SubscriptionManager::start).
    pub fn is_terminal(self) -> bool {
        matches!(self, SubscriptionState::Stopped | SubscriptionState::Failed)
    }
}

/// Health and lag of one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionHealth {
    /// The subscription name.
    pub name: String,
    /// What it is doing.
    pub state: SubscriptionState,
    /// The global position it has handled up to.
    pub position: u64,
    /// The store's head at its last read.
    pub head_position: u64,
    /// Events handled.
    pub events_processed: u64,
    /// Events dead-lettered.
    pub events_failed: u64,
    /// Bus messages missed because it lagged (they are read from the store anyway).
    pub bus_messages_missed: u64,
    /// The last error: a handler failure that was dead-lettered (kept, with its time), or
    /// a failed batch (cleared by the next batch that succeeds).
    pub last_error: Option<String>,
    /// When [`last_error`](Self::last_error) happened.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// How many dead-lettered positions a subscription remembers for
/// [`wait_for`](crate::Subscription::wait_for) (the oldest are forgotten first).
const DEAD_LETTERED_REMEMBERED: usize = 4096;

/// Why an event was dead-lettered, remembered by position.
#[derive(Debug, Clone)]
struct DeadLettered {
    event_type: String,
    error: String,
}

/// What handles a subscription's events.
#[derive(Clone)]
pub(super) enum Handler {
    /// A projection whose read model the manager hands each event.
    Projection(Arc<Mutex<dyn Projection>>),
    /// A runner committing each batch with its checkpoint in its own database.
    Durable(Arc<Mutex<dyn DurableRunner>>),
}

/// What a subscription's task shares with its handles and its manager.
pub(super) struct Shared {
    pub(super) name: String,
    pub(super) handled: &'static [&'static str],
    pub(super) durable: bool,
    pub(super) config: SubscriptionConfig,
    pub(super) handler: Handler,
    /// The position handled up to; also changed (to itself) when the state becomes
    /// terminal, so that waiters wake up.
    pub(super) position: watch::Sender<u64>,
    health: StdMutex<SubscriptionHealth>,
    dead_lettered: StdMutex<BTreeMap<u64, DeadLettered>>,
    pub(super) started: StdMutex<bool>,
    /// Set once it has run: a restart in this process resumes from `handled_up_to`.
    pub(super) has_run: std::sync::atomic::AtomicBool,
    /// The position the read model has handled up to, moved after every event (also when
    /// the batch then fails, or its task panics, before `position` is published).
    pub(super) handled_up_to: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(super) fn new(
        name: String,
        config: SubscriptionConfig,
        handler: Handler,
        handled: &'static [&'static str],
        durable: bool,
    ) -> Self {
        Shared {
            health: StdMutex::new(SubscriptionHealth {
                name: name.clone(),
                state: SubscriptionState::Pending,
                position: 0,
                head_position: 0,
                events_processed: 0,
                events_failed: 0,
                bus_messages_missed: 0,
                last_error: None,
                last_error_at: None,
            }),
            name,
            handled,
            durable,
            config,
            handler,
            position: watch::channel(0).0,
            dead_lettered: StdMutex::new(BTreeMap::new()),
            started: StdMutex::new(false),
            has_run: std::sync::atomic::AtomicBool::new(false),
            handled_up_to: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records that the read model has handled everything up to `position`.
    pub(super) fn handled_to(&self, position: u64) {
        self.handled_up_to
            .store(position, std::sync::atomic::Ordering::Release);
    }

    /// Where the read model is: what a restart in this process resumes from.
    pub(super) fn handled(&self) -> u64 {
        self.handled_up_to
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(super) fn health(&self) -> MutexGuard<'_, SubscriptionHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the state; a terminal one wakes every waiter.
    pub(super) fn set_state(&self, state: SubscriptionState) {
        self.health().state = state;
        if state.is_terminal() {
            self.position.send_modify(|_| {});
        }
    }

    /// Ends the subscription's task in a terminal state; a later
    /// [`start`](crate::SubscriptionManager::start) runs it again, from where it was.
    pub(super) fn end(&self, state: SubscriptionState) {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.set_state(state);
    }

    /// Records an error in the health, with its time.
    pub(super) fn note_error(&self, error: String) {
        let mut health = self.health();
        health.last_error = Some(error);
        health.last_error_at = Some(Utc::now());
    }

    /// Remembers that the event at `position` was dead-lettered.
    pub(super) fn dead_lettered(&self, position: u64, event_type: &str, error: &str) {
        let mut map = self
            .dead_lettered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.insert(
            position,
            DeadLettered {
                event_type: event_type.to_owned(),
                error: error.to_owned(),
            },
        );
        while map.len() > DEAD_LETTERED_REMEMBERED {
            map.pop_first();
        }
    }

    /// Forgets that the event at `position` was dead-lettered (it was replayed).
    pub(super) fn forget_dead_letter(&self, position: u64) {
        self.dead_lettered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&position);
    }

    fn dead_letter_at(&self, position: u64) -> Option<DeadLettered> {
        self.dead_lettered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&position)
            .cloned()
    }

    /// Waits until the subscription has handled `position`, has stopped or failed, or
    /// `timeout` passes.
    pub(super) async fn wait_for(&self, position: u64, timeout: Duration) -> Result<()> {
        let mut receiver = self.position.subscribe();
        // The `Ref` `wait_for` returns holds the channel's read lock: dropped here, before
        // the position is read again (a second read lock while a send waits for the
        // write lock would deadlock).
        let waited = tokio::time::timeout(
            timeout,
            receiver.wait_for(|p| *p >= position || self.health().state.is_terminal()),
        )
        .await
        .map(|reached| reached.map(|_| ()));
        let reached = *self.position.borrow();
        if reached >= position {
            if let Some(letter) = self.dead_letter_at(position) {
                return Err(Error::DeadLettered {
                    subscription: self.name.clone(),
                    position,
                    event_type: letter.event_type,
                    error: letter.error,
                });
            }
            return Ok(());
        }
        let health = self.health().clone();
        match waited {
            Ok(_) if health.state.is_terminal() => Err(Error::SubscriptionStopped {
                subscription: self.name.clone(),
                position,
                reached,
                state: health.state,
                last_error: health.last_error,
            }),
            _ => Err(Error::WaitTimeout {
                subscription: self.name.clone(),
                position,
                reached,
                state: health.state,
                head: health.head_position,
                last_error: health.last_error,
            }),
        }
    }
}
