//! How a subscription runs: where it starts, its batch size, its retry policy.

use std::time::Duration;

use crate::error::{Error, Result};
#[cfg(doc)]
use crate::projection::Projection;

/// Where a subscription starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// From the first event, whatever the checkpoint says (a full replay).
    Beginning,
    /// From the store's head when the subscription starts: only new events.
    End,
    /// After this global position.
    Position(u64),
    /// From the saved checkpoint, or the beginning when there is none: resumes after a
    /// restart. Only a durable projection ([`Projection::is_durable`]) resumes from a
    /// checkpoint saved by an earlier process; one that keeps its read model in memory
    /// starts empty in a new process, so it is rebuilt from the beginning instead (its
    /// checkpoint then only tracks progress). Within one process, a restarted manager
    /// always goes on where it stopped.
    #[default]
    Checkpoint,
}

/// How a failing handler is retried before its event is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Growth of the wait per attempt.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 3 attempts, waiting 50 ms, then 100 ms.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// One attempt: a failure is dead-lettered at once.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        Duration::try_from_secs_f64(self.initial_backoff.as_secs_f64() * factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// How a subscription runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionConfig {
    /// Where to start (default: the checkpoint).
    pub start_from: StartFrom,
    /// Events read from the store per batch; the checkpoint is saved after each batch.
    pub batch_size: usize,
    /// Retries of a failing handler.
    pub retry: RetryPolicy,
    /// How often to look at the store when no wake-up arrives (default 1 s).
    pub poll_interval: Duration,
    /// Lets the projection handle event type names no registered Rust type has (default
    /// `false`): a hand-written [`Projection::handled_event_types`] naming an unregistered
    /// type is refused by [`SubscriptionManager::subscribe`] as the typo it usually is.
    /// Set it for a projection that reads such events as raw JSON on purpose.
    ///
    /// [`Projection::handled_event_types`]: crate::Projection::handled_event_types
    /// [`SubscriptionManager::subscribe`]: crate::SubscriptionManager::subscribe
    pub allow_unregistered_types: bool,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            start_from: StartFrom::Checkpoint,
            batch_size: 500,
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(1),
            allow_unregistered_types: false,
        }
    }
}

impl SubscriptionConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets where to start.
    pub fn start_from(mut self, start_from: StartFrom) -> Self {
        self.start_from = start_from;
        self
    }

    /// Sets the batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the polling interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Allows handled event types without a registered Rust type (see
    /// [`allow_unregistered_types`](Self::allow_unregistered_types)).
    pub fn allow_unregistered_types(mut self, allow: bool) -> Self {
        self.allow_unregistered_types = allow;
        self
    }

    pub(super) fn check(&self) -> Result<()> {
        let invalid = |message: &str| {
            Err(Error::InvalidConfiguration {
                message: message.to_owned(),
            })
        };
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1");
        }
        if self.retry.max_attempts == 0 {
            return invalid("retry.max_attempts must be at least 1");
        }
        if self.poll_interval.is_zero() {
            return invalid("poll_interval must be positive");
        }
        Ok(())
    }
}
