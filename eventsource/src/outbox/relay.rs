//! The [`OutboxRelay`]: publishes pending entries in batches, in order, with retries,
//! and keeps the table bounded ([`OutboxRetention`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::publisher::OutboxPublisher;
use super::{OutboxEntry, OutboxStore};
use crate::error::Result;
use crate::panics::catch_unwind;
use crate::subscription::RetryPolicy;

/// What the relay does with entries once they are published, so that the outbox table
/// stays bounded whatever the store's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxRetention {
    /// Mark them published and delete them once they are older than this (checked at
    /// most once a minute). The default keeps them 7 days, for inspection.
    KeepFor(Duration),
    /// Delete them as soon as they are published (nothing to inspect afterwards).
    DeleteOnPublish,
    /// Mark them published and keep them for ever (the table grows with the store).
    KeepAll,
}

impl Default for OutboxRetention {
    fn default() -> Self {
        OutboxRetention::KeepFor(Duration::from_secs(7 * 24 * 3600))
    }
}

/// How often [`OutboxRetention::KeepFor`] looks for entries to delete.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Publishes pending outbox entries in order, a batch at a time: one read of up to
/// `batch_size` pending entries, one [`OutboxPublisher::publish_batch`], one transaction
/// marking (or deleting) what went out. An entry that fails is retried (with backoff)
/// before any later one is published; after `retry.max_attempts` it is marked failed and
/// the relay moves on, so one poison entry cannot stop the outbox (the entries after it
/// then go out before it would have). Delivery is at least once: entries whose marking
/// fails after a successful publish are published again.
///
/// Several relays may share a PostgreSQL outbox (in one process or many): each claims
/// its batch for [`claim_lease`](Self::claim_lease) (claims take turns under an
/// advisory lock), so they publish different entries, and an aggregate's entries are
/// claimed only once its earlier ones are out, so each aggregate's order holds across
/// relays. Spawned there, a relay claims its next batch while it marks the last one. On
/// SQLite and in memory, run one relay per store.
///
/// ```
/// use std::sync::Arc;
/// use eventsource::prelude::*;
/// use eventsource::{OutboxRetention, OutboxStore};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct OrderPlaced { total: f64 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// let store = Arc::new(InMemoryEventStore::new().with_outbox());
/// let bus = Arc::new(InMemoryEventBus::new());
/// let publisher = Arc::new(BusOutboxPublisher::new(store.clone(), bus.clone()));
/// let relay = OutboxRelay::new(store.clone(), publisher)
///     .batch_size(500)
///     .retention(OutboxRetention::DeleteOnPublish);
///
/// let event = NewEvent::new(OrderPlaced { total: 9.5 });
/// store.append_events(uuid::Uuid::new_v4(), "Order", vec![event], ExpectedVersion::NoStream).await?;
/// assert_eq!(store.stats().await?.pending, 1);
///
/// // One round by hand (a test, a cron job), or `relay.spawn()` to run it in a task.
/// let round = relay.run_once().await?;
/// assert_eq!(round.published, 1);
/// assert_eq!(store.stats().await?.pending, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    outbox: Arc<dyn OutboxStore>,
    publisher: Arc<dyn OutboxPublisher>,
    batch_size: u64,
    poll_interval: Duration,
    retry: RetryPolicy,
    retention: OutboxRetention,
    claim_lease: Duration,
    /// When published entries were last pruned (shared by clones).
    pruned_at: Arc<Mutex<Option<Instant>>>,
}

impl OutboxRelay {
    /// A relay from `outbox` to `publisher`: batches of 1,000, polling every second, 5
    /// attempts per entry, published entries kept 7 days.
    pub fn new(outbox: Arc<dyn OutboxStore>, publisher: Arc<dyn OutboxPublisher>) -> Self {
        OutboxRelay {
            outbox,
            publisher,
            batch_size: 1000,
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: 5,
                ..RetryPolicy::default()
            },
            retention: OutboxRetention::default(),
            claim_lease: Duration::from_secs(60),
            pruned_at: Arc::new(Mutex::new(None)),
        }
    }

    /// Entries read and published per round.
    pub fn batch_size(mut self, batch_size: u64) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The wait when nothing is pending.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Attempts and backoff per entry.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// What happens to published entries.
    pub fn retention(mut self, retention: OutboxRetention) -> Self {
        self.retention = retention;
        self
    }

    /// How long a batch stays claimed by this relay (default 60 s): on stores that
    /// claim ([`OutboxStore::claim_pending`]: PostgreSQL), other relays pass over the
    /// batch's entries until then, and take them over if this relay stops without
    /// publishing them. It must be longer than publishing a batch takes, or a slow batch
    /// is published twice.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease;
        self
    }

    /// Publishes one batch of pending entries, going on past entries given up on, until
    /// one fails (to be retried) or the batch is done; returns how many were published
    /// and, if one failed, its retry count. Prunes published entries when that is due.
    ///
    /// # Errors
    /// Errors of the outbox store (publishing errors are recorded on the entry).
    pub async fn run_once(&self) -> Result<RelayRound> {
        let pending = self.claim().await?;
        Ok(self.publish_claimed(&pending, false).await?.0)
    }

    async fn claim(&self) -> Result<Vec<OutboxEntry>> {
        self.outbox
            .claim_pending(self.batch_size, self.claim_lease)
            .await
    }

    /// Publishes `pending` (read or claimed already) as [`run_once`](Self::run_once)
    /// says. With `claim_next`, on a store that claims ([`OutboxStore::claims_pending`])
    /// and once the whole batch went out, the next batch is claimed while this one is
    /// marked, and returned: the two statements run at once on two connections.
    async fn publish_claimed(
        &self,
        pending: &[OutboxEntry],
        claim_next: bool,
    ) -> Result<(RelayRound, Option<Vec<OutboxEntry>>)> {
        let mut round = RelayRound::default();
        let mut next = None;
        let mut rest = pending;
        while !rest.is_empty() {
            // A panicking publisher is a failed publish: retried, then given up on.
            let (published, failure) = match catch_unwind(self.publisher.publish_batch(rest)).await
            {
                Ok(Ok(())) => (rest.len(), None),
                Ok(Err(failure)) => (failure.published.min(rest.len()), Some(failure.error)),
                Err(panic) => (0, Some(format!("publisher {panic}").into())),
            };
            if claim_next && failure.is_none() && self.outbox.claims_pending() {
                next = Some(self.settle_and_claim(&rest[..published], pending).await?);
            } else {
                self.settle(&rest[..published]).await?;
            }
            round.published += published;
            let (Some(error), Some(entry)) = (failure, rest.get(published)) else {
                break;
            };
            let retries = self
                .outbox
                .increment_retry(entry.id, &error.to_string())
                .await?;
            tracing::warn!(entry = entry.id, retries, %error, "outbox publish failed");
            if retries < self.retry.max_attempts {
                // Keep the order: nothing after this entry goes out before it. The
                // entries not published go back, for whichever relay comes next.
                round.failed_retries = Some(retries);
                let unpublished: Vec<i64> = rest[published..].iter().map(|e| e.id).collect();
                self.outbox.release_claims(&unpublished).await?;
                return Ok((round, None));
            }
            self.outbox.mark_failed(entry.id).await?;
            round.given_up += 1;
            rest = &rest[published + 1..];
        }
        self.prune_if_due().await;
        Ok((round, next))
    }

    /// Settles `published` (the rest of `batch`) and claims the next batch, at once. The
    /// next batch holds no entry of an aggregate whose entries are being marked (they
    /// are pending and claimed until the marking commits, so the claim passes over that
    /// aggregate's later entries), so each aggregate's order holds. When the marking
    /// fails, the next batch is released.
    async fn settle_and_claim(
        &self,
        published: &[OutboxEntry],
        batch: &[OutboxEntry],
    ) -> Result<Vec<OutboxEntry>> {
        let (settled, claimed) = tokio::join!(self.settle(published), self.claim());
        match (settled, claimed) {
            (Ok(()), Ok(mut next)) => {
                // A claim does not hand out entries claimed already; were one to, it
                // would not go out twice from this relay.
                let ids: HashSet<i64> = batch.iter().map(|e| e.id).collect();
                next.retain(|e| !ids.contains(&e.id));
                Ok(next)
            }
            (Err(error), Ok(next)) => {
                self.release(&next).await;
                Err(error)
            }
            (Ok(()), Err(error)) | (Err(error), Err(_)) => Err(error),
        }
    }

    /// Gives back the claims of entries this relay will not publish; a failure is
    /// logged (their leases run out).
    async fn release(&self, entries: &[OutboxEntry]) {
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        if let Err(error) = self.outbox.release_claims(&ids).await {
            tracing::warn!(%error, entries = ids.len(), "outbox claims could not be released; their leases will run out");
        }
    }

    /// Marks (or deletes) entries that went out, in one statement.
    async fn settle(&self, published: &[OutboxEntry]) -> Result<()> {
        if published.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = published.iter().map(|e| e.id).collect();
        match self.retention {
            OutboxRetention::DeleteOnPublish => self.outbox.delete_entries(&ids).await.map(|_| ()),
            _ => self.outbox.mark_published_batch(&ids).await,
        }
    }

    /// Deletes entries published longer ago than [`OutboxRetention::KeepFor`] says, at
    /// most every [`PRUNE_EVERY`]; a failure is logged (the next round tries again).
    async fn prune_if_due(&self) {
        let OutboxRetention::KeepFor(keep) = self.retention else {
            return;
        };
        {
            let mut pruned_at = self
                .pruned_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pruned_at.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
                return;
            }
            *pruned_at = Some(Instant::now());
        }
        let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let before = crate::envelope::now()
            .checked_sub_signed(keep)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        match self.outbox.prune_published(before).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "published outbox entries pruned"),
            Err(error) => tracing::warn!(%error, "published outbox entries could not be pruned"),
        }
    }

    /// Runs the relay in a task until [`OutboxRelayHandle::stop`]. On a store that
    /// claims ([`OutboxStore::claims_pending`]: PostgreSQL) it claims each next batch
    /// while it marks the last one; a batch claimed when it stops is released.
    pub fn spawn(self) -> OutboxRelayHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut claimed: Option<Vec<OutboxEntry>> = None;
            loop {
                let pending = match claimed.take() {
                    Some(pending) => Ok(pending),
                    None => self.claim().await,
                };
                let result = match pending {
                    Ok(pending) => self.publish_claimed(&pending, true).await,
                    Err(error) => Err(error),
                };
                let wait = match result {
                    Ok((_, Some(next))) if !next.is_empty() => {
                        claimed = Some(next);
                        Duration::ZERO
                    }
                    Ok((
                        RelayRound {
                            failed_retries: Some(retries),
                            ..
                        },
                        _,
                    )) => self.retry.backoff(retries),
                    Ok((round, _)) if round.published > 0 || round.given_up > 0 => Duration::ZERO,
                    Ok(_) => self.poll_interval,
                    Err(error) => {
                        tracing::warn!(%error, "outbox relay could not read the outbox");
                        self.poll_interval
                    }
                };
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                if *stopped.borrow() {
                    break;
                }
            }
            if let Some(next) = claimed {
                self.release(&next).await;
            }
        });
        OutboxRelayHandle { stop, task }
    }
}

/// What one relay round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayRound {
    /// Entries published.
    pub published: usize,
    /// Entries marked failed after their last attempt.
    pub given_up: usize,
    /// When an entry failed and will be retried: its retry count.
    pub failed_retries: Option<u32>,
}

/// A running [`OutboxRelay`].
#[derive(Debug)]
pub struct OutboxRelayHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl OutboxRelayHandle {
    /// Stops the relay after the round in progress (at most one batch), and waits for it.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the outbox relay task panicked");
        }
    }
}
