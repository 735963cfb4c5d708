//! Durable read models under the [`SubscriptionManager`](crate::SubscriptionManager): a
//! [`DurableRunner`] (the exactly-once runner of a SQL backend) subscribed with
//! [`subscribe_durable`](crate::SubscriptionManager::subscribe_durable), and the
//! [`DurableSubscription`] handle kept on it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::config::RetryPolicy;
use super::health::{Shared, SubscriptionHealth};
use crate::checkpoint::LagMetrics;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::projection::{BatchReport, RebuildProgress};

/// A read model whose every batch (its read-model writes, dead letters and checkpoint)
/// commits in one transaction of its own database, so that each event is applied exactly
/// once whatever crashes: what a [`SubscriptionManager`](crate::SubscriptionManager) runs
/// with [`subscribe_durable`](crate::SubscriptionManager::subscribe_durable).
///
/// `SqliteProjectionRunner` and `PostgresProjectionRunner` implement it; a runner of
/// another backend would implement it with the same guarantee.
#[async_trait]
pub trait DurableRunner: Send + 'static {
    /// The name its checkpoint and dead letters are kept under.
    fn name(&self) -> &str;

    /// The event types its projection handles.
    fn handled_event_types(&self) -> &'static [&'static str];

    /// Takes a subscription's batch size (events per batch and per transaction) and retry
    /// policy.
    fn configure(&mut self, batch_size: u64, retry: RetryPolicy);

    /// Its checkpoint, as committed with the read model.
    ///
    /// # Errors
    /// [`Error::InvalidCheckpoint`] when it is beyond the head of the store (a restored
    /// backup, another store's table); errors of the database.
    async fn checkpoint(&mut self) -> Result<u64>;

    /// Reads the next batch after the checkpoint and applies it in one transaction.
    ///
    /// # Errors
    /// Errors of the database (the batch is rolled back whole and nothing is lost).
    async fn run_batch(&mut self) -> Result<BatchReport>;

    /// How far it is behind the store, from its checkpoint.
    ///
    /// # Errors
    /// Errors of the database.
    async fn lag(&mut self) -> Result<Option<LagMetrics>>;

    /// Hands the event of the dead letter `id` to the projection again, in one
    /// transaction with the dead letter's resolution; returns the event's position.
    ///
    /// # Errors
    /// As the runner's own `replay_dead_letter`.
    async fn replay_dead_letter(&mut self, id: i64) -> Result<u64>;

    /// Clears the read model and its checkpoint in one transaction, then applies every
    /// event again, telling `progress` after every batch; returns the events applied.
    ///
    /// # Errors
    /// As the runner's own `rebuild`.
    async fn rebuild(&mut self, progress: &mut (dyn FnMut(RebuildProgress) + Send)) -> Result<u64>;
}

/// A handle on a durable read model run by a
/// [`SubscriptionManager`](crate::SubscriptionManager): its position, health,
/// read-your-writes waiting and dead-letter replay. The read model itself is in its
/// database: query it there.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use eventsource::prelude::*;
/// # use eventsource::sqlx::SqliteConnection;
/// # use eventsource::{SqliteEventStore, SqliteProjectionRunner};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct Pinged {}
/// # #[derive(Debug, Default)]
/// # struct Pings;
/// # #[projection]
/// # impl Pings {
/// #     #[handles]
/// #     async fn pinged(&mut self, _e: &Pinged, conn: &mut SqliteConnection) -> Result<(), eventsource::sqlx::Error> {
/// #         eventsource::sqlx::query("UPDATE pings SET n = n + 1").execute(conn).await.map(|_| ())
/// #     }
/// # }
/// # async fn run(store: SqliteEventStore, manager: SubscriptionManager, at: u64) -> eventsource::Result<()> {
/// let pings = manager
///     .subscribe_durable(SqliteProjectionRunner::new(store, Pings, "pings"), SubscriptionConfig::new())
///     .await?;
/// manager.start().await?;
/// pings.wait_for(at, Duration::from_secs(5)).await?; // committed with its checkpoint
/// println!("{:?}", pings.health());
/// # Ok(()) }
/// ```
pub struct DurableSubscription<R> {
    pub(super) shared: Arc<Shared>,
    pub(super) runner: Arc<Mutex<R>>,
}

impl<R> Clone for DurableSubscription<R> {
    fn clone(&self) -> Self {
        DurableSubscription {
            shared: self.shared.clone(),
            runner: self.runner.clone(),
        }
    }
}

impl<R> fmt::Debug for DurableSubscription<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableSubscription")
            .field("name", &self.shared.name)
            .field("position", &*self.shared.position.borrow())
            .finish()
    }
}

impl<R: DurableRunner> DurableSubscription<R> {
    /// The subscription name: the runner's, its checkpoint and dead letters are kept
    /// under it.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The runner; lock it to reach the projection (batches wait meanwhile).
    pub fn runner(&self) -> &Arc<Mutex<R>> {
        &self.runner
    }

    /// The global position committed up to.
    pub fn position(&self) -> u64 {
        *self.shared.position.borrow()
    }

    /// Health and lag.
    pub fn health(&self) -> SubscriptionHealth {
        self.shared.health().clone()
    }

    /// Waits until the read model has committed the event at `position`.
    ///
    /// # Errors
    /// As [`Subscription::wait_for`](crate::Subscription::wait_for):
    /// [`Error::DeadLettered`], [`Error::SubscriptionStopped`], [`Error::WaitTimeout`].
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<()> {
        self.shared.wait_for(position, timeout).await
    }

    /// Hands the event of the dead letter `id` to the projection again, between two
    /// batches, in one transaction with the dead letter's resolution (exactly once).
    ///
    /// # Errors
    /// As the runner's `replay_dead_letter`: [`Error::DeadLetterNotFound`],
    /// [`Error::InvalidInput`] (another projection's, resolved already, or not reached
    /// yet), [`Error::HandlerFailed`], errors of the database.
    pub async fn replay_dead_letter(&self, id: i64) -> Result<()> {
        let position = self.runner.lock().await.replay_dead_letter(id).await?;
        // Applied now: waiting for it no longer reports it dead-lettered.
        self.shared.forget_dead_letter(position);
        Ok(())
    }
}
