//! The transactional outbox: when a store is opened with an outbox, every append writes
//! one outbox entry per event in the same transaction, and an [`OutboxRelay`] publishes
//! pending entries in order, with retries, to a bus or broker.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::bus::EventBus;
use crate::error::{BoxError, Result};
use crate::panics::catch_unwind;
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;
use crate::subscription::RetryPolicy;

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// Waiting to be published.
    Pending,
    /// Published.
    Published,
    /// Given up after every retry; see `last_error`.
    Failed,
}

impl OutboxStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Published => "published",
            OutboxStatus::Failed => "failed",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(OutboxStatus::Pending),
            "published" => Some(OutboxStatus::Published),
            "failed" => Some(OutboxStatus::Failed),
            _ => None,
        }
    }
}

/// One event waiting in (or gone through) the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The entry id; entries are published in id order.
    pub id: i64,
    /// The event id.
    pub event_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// The aggregate id.
    pub aggregate_id: Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The tenant.
    pub tenant_id: Option<Uuid>,
    /// The event's global position in the store.
    pub global_position: u64,
    /// The payload as JSON.
    pub event_data: serde_json::Value,
    /// When the entry was written.
    pub created_at: DateTime<Utc>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
    /// Failed publishing attempts.
    pub retry_count: u32,
    /// The last publishing error.
    pub last_error: Option<String>,
    /// Pending, published or failed.
    pub status: OutboxStatus,
}

impl OutboxEntry {
    /// The entry for a stored event (id 0 until stored).
    ///
    /// # Errors
    /// [`crate::Error::Serialization`] when the payload does not serialize.
    pub fn for_event(event: &StoredEvent) -> Result<Self> {
        Ok(OutboxEntry {
            id: 0,
            event_id: event.event_id(),
            event_type: event.event_type().to_owned(),
            aggregate_id: event.aggregate_id(),
            aggregate_type: event.aggregate_type().to_owned(),
            tenant_id: event.envelope.tenant_id,
            global_position: event.global_position,
            event_data: event.payload_json()?,
            created_at: event.stored_at,
            published_at: None,
            retry_count: 0,
            last_error: None,
            status: OutboxStatus::Pending,
        })
    }
}

/// The outbox of a store.
#[async_trait]
pub trait OutboxStore: Send + Sync + fmt::Debug {
    /// Adds an entry for an event by hand (appends to a store opened with an outbox add
    /// them in the append's transaction); returns its id.
    ///
    /// # Errors
    /// Database errors.
    async fn add_event(&self, event: &StoredEvent) -> Result<i64>;

    /// Up to `limit` pending entries, oldest first.
    ///
    /// # Errors
    /// Database errors.
    async fn get_pending_events(&self, limit: u64) -> Result<Vec<OutboxEntry>>;

    /// Entries of any status, oldest first (inspection).
    ///
    /// # Errors
    /// Database errors.
    async fn get_entries(
        &self,
        status: Option<OutboxStatus>,
        limit: u64,
    ) -> Result<Vec<OutboxEntry>>;

    /// Marks an entry published.
    ///
    /// # Errors
    /// [`crate::Error::OutboxEntryNotFound`]; database errors.
    async fn mark_published(&self, id: i64) -> Result<()>;

    /// Counts a failed attempt with its error; returns the new retry count.
    ///
    /// # Errors
    /// [`crate::Error::OutboxEntryNotFound`]; database errors.
    async fn increment_retry(&self, id: i64, error: &str) -> Result<u32>;

    /// Gives up on an entry (it stays, with status failed, for inspection).
    ///
    /// # Errors
    /// [`crate::Error::OutboxEntryNotFound`]; database errors.
    async fn mark_failed(&self, id: i64) -> Result<()>;
}

/// Outbox rows as a store read them, each with its id when that column reads: the
/// entries that decode, in order. Each one that does not is reported (logged with its
/// id and why); when `pending`, it is also marked failed with that reason, so the relay
/// passes over it instead of stopping at it, and an operator finds it among the failed
/// entries.
///
/// # Errors
/// None so far: a failure to mark an entry is logged (the signature leaves room).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) async fn readable_entries(
    store: &dyn OutboxStore,
    rows: Vec<(Option<i64>, Result<OutboxEntry>)>,
    pending: bool,
) -> Result<Vec<OutboxEntry>> {
    let mut entries = Vec::with_capacity(rows.len());
    for (id, row) in rows {
        match row {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                tracing::error!(entry = ?id, %error, "an outbox entry does not read; it is passed over");
                if let (true, Some(id)) = (pending, id) {
                    // Even when it cannot be marked (a column too broken to update),
                    // the readable entries are still handed out.
                    let marked = match store
                        .increment_retry(id, &format!("unreadable entry: {error}"))
                        .await
                    {
                        Ok(_) => store.mark_failed(id).await,
                        Err(error) => Err(error),
                    };
                    if let Err(error) = marked {
                        tracing::error!(entry = id, %error, "an unreadable outbox entry could not be marked failed");
                    }
                }
            }
        }
    }
    Ok(entries)
}

/// Delivers outbox entries somewhere (a message broker, an [`EventBus`]).
#[async_trait]
pub trait OutboxPublisher: Send + Sync + fmt::Debug {
    /// Publishes one entry.
    ///
    /// # Errors
    /// The transport's error: the relay retries the entry.
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), BoxError>;
}

/// Publishes outbox entries to an [`EventBus`], with the stored event read back from the
/// store by its global position.
#[derive(Debug, Clone)]
pub struct BusOutboxPublisher {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn EventBus>,
}

impl BusOutboxPublisher {
    /// A publisher reading events from `store` and publishing them to `bus`.
    pub fn new(store: Arc<dyn EventStore>, bus: Arc<dyn EventBus>) -> Self {
        BusOutboxPublisher { store, bus }
    }
}

#[async_trait]
impl OutboxPublisher for BusOutboxPublisher {
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), BoxError> {
        let mut events = self.store.read_all(
            ReadOptions::new()
                .from_position(entry.global_position.saturating_sub(1))
                .limit(1),
        );
        let event = match events.next().await {
            Some(event) => event?,
            None => return Err(format!("event {} is not in the store", entry.event_id).into()),
        };
        if event.event_id() != entry.event_id {
            return Err(format!(
                "event {} is not at position {}",
                entry.event_id, entry.global_position
            )
            .into());
        }
        self.bus.publish(std::slice::from_ref(&event)).await
    }
}

/// Publishes pending outbox entries in order: an entry that fails is retried (with
/// backoff) before any later one is published; after `retry.max_attempts` it is marked
/// failed and the relay moves on, so one poison entry cannot stop the outbox (the entries
/// after it then go out before it would have). Delivery is at least once: an entry whose
/// `mark_published` fails after a successful publish is published again.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    outbox: Arc<dyn OutboxStore>,
    publisher: Arc<dyn OutboxPublisher>,
    batch_size: u64,
    poll_interval: Duration,
    retry: RetryPolicy,
}

impl OutboxRelay {
    /// A relay from `outbox` to `publisher`: batches of 100, polling every second, 5
    /// attempts per entry.
    pub fn new(outbox: Arc<dyn OutboxStore>, publisher: Arc<dyn OutboxPublisher>) -> Self {
        OutboxRelay {
            outbox,
            publisher,
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: 5,
                ..RetryPolicy::default()
            },
        }
    }

    /// Entries read per round.
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

    /// Publishes pending entries until one fails or none is left; returns how many were
    /// published and, if one failed, its retry count.
    ///
    /// # Errors
    /// Errors of the outbox store (publishing errors are recorded on the entry).
    pub async fn run_once(&self) -> Result<RelayRound> {
        let mut round = RelayRound::default();
        let pending = self.outbox.get_pending_events(self.batch_size).await?;
        for entry in pending {
            // A panicking publisher is a failed publish: retried, then given up on.
            let published = match catch_unwind(self.publisher.publish(&entry)).await {
                Ok(result) => result,
                Err(panic) => Err(format!("publisher {panic}").into()),
            };
            match published {
                Ok(()) => {
                    self.outbox.mark_published(entry.id).await?;
                    round.published += 1;
                }
                Err(error) => {
                    let retries = self
                        .outbox
                        .increment_retry(entry.id, &error.to_string())
                        .await?;
                    tracing::warn!(entry = entry.id, retries, %error, "outbox publish failed");
                    if retries >= self.retry.max_attempts {
                        self.outbox.mark_failed(entry.id).await?;
                        round.given_up += 1;
                        continue;
                    }
                    // Keep the order: nothing after this entry goes out before it.
                    round.failed_retries = Some(retries);
                    return Ok(round);
                }
            }
        }
        Ok(round)
    }

    /// Runs the relay in a task until [`OutboxRelayHandle::stop`].
    pub fn spawn(self) -> OutboxRelayHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let wait = match self.run_once().await {
                    Ok(RelayRound {
                        failed_retries: Some(retries),
                        ..
                    }) => self.retry.backoff(retries),
                    Ok(round) if round.published > 0 || round.given_up > 0 => Duration::ZERO,
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
