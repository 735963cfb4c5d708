//! The transactional outbox: when a store is opened with an outbox, every append writes
//! one outbox entry per event in the same transaction, and an [`OutboxRelay`] publishes
//! pending entries in order, in batches, with retries, to a bus or broker, then marks or
//! deletes them ([`OutboxRetention`]).

mod publisher;
mod relay;

pub use publisher::{BusOutboxPublisher, OutboxPublisher, PublishFailure};
pub use relay::{OutboxRelay, OutboxRelayHandle, OutboxRetention, RelayRound};

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::stored::StoredEvent;

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

/// How many entries an outbox holds by status, and how long the oldest pending one has
/// waited: what to watch to see whether the relay keeps up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Entries waiting to be published (the backlog).
    pub pending: u64,
    /// Published entries still kept (see [`OutboxRetention`]).
    pub published: u64,
    /// Entries given up on.
    pub failed: u64,
    /// When the oldest pending entry was written.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// Counts rows by their stored status text (an unknown status is counted nowhere).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn stats_from_counts(
    counts: impl IntoIterator<Item = (String, i64)>,
    oldest_pending_at: Option<DateTime<Utc>>,
) -> OutboxStats {
    let mut stats = OutboxStats {
        oldest_pending_at,
        ..OutboxStats::default()
    };
    for (status, count) in counts {
        let count = u64::try_from(count).unwrap_or(0);
        match OutboxStatus::parse(&status) {
            Some(OutboxStatus::Pending) => stats.pending += count,
            Some(OutboxStatus::Published) => stats.published += count,
            Some(OutboxStatus::Failed) => stats.failed += count,
            None => {}
        }
    }
    stats
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

    /// Up to `limit` pending entries, oldest first, claimed for `lease`: until the lease
    /// runs out (or the entries are marked, deleted or released), other relays calling
    /// this do not get them, so several relays share one outbox without publishing an
    /// entry twice in the normal case. An entry is never handed out while an earlier
    /// pending entry of the same aggregate is held by someone else, so each aggregate's
    /// entries still go out in order. The default (the in-memory and SQLite stores) is
    /// [`get_pending_events`](Self::get_pending_events): no claim, one relay per store.
    ///
    /// # Errors
    /// Database errors.
    async fn claim_pending(
        &self,
        limit: u64,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxEntry>> {
        let _ = lease;
        self.get_pending_events(limit).await
    }

    /// `true` when [`claim_pending`](Self::claim_pending) claims (PostgreSQL): the
    /// entries it hands out are not handed out again, to this relay or another, until
    /// they are marked, deleted or released or their lease runs out. A spawned
    /// [`OutboxRelay`] then claims its next batch while it marks the
    /// last one. The default (no claim: one relay per store) is `false`.
    fn claims_pending(&self) -> bool {
        false
    }

    /// Gives back claimed entries that were not published (a failed publish to retry),
    /// so that any relay may take them again at once. The default does nothing.
    ///
    /// # Errors
    /// Database errors.
    async fn release_claims(&self, ids: &[i64]) -> Result<()> {
        let _ = ids;
        Ok(())
    }

    /// Counts by status and the oldest pending entry's age.
    ///
    /// # Errors
    /// Database errors.
    async fn stats(&self) -> Result<OutboxStats>;

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

    /// Marks entries published, all of them or none (one transaction on the SQL
    /// stores): what the relay does after publishing a batch. The default marks them one
    /// by one.
    ///
    /// # Errors
    /// [`crate::Error::OutboxEntryNotFound`] naming an id that is not there (the SQL
    /// stores then mark none); database errors.
    async fn mark_published_batch(&self, ids: &[i64]) -> Result<()> {
        for id in ids {
            self.mark_published(*id).await?;
        }
        Ok(())
    }

    /// Deletes entries by id, whatever their status (the relay's
    /// [`OutboxRetention::DeleteOnPublish`]); returns how many were deleted.
    ///
    /// # Errors
    /// Database errors.
    async fn delete_entries(&self, ids: &[i64]) -> Result<u64>;

    /// Deletes the entries published before `published_before` (the relay's
    /// [`OutboxRetention::KeepFor`]), in chunks so that a long backlog of them does not
    /// hold the database's write lock for long; returns how many were deleted. Pending
    /// and failed entries are kept.
    ///
    /// # Errors
    /// Database errors.
    async fn prune_published(&self, published_before: DateTime<Utc>) -> Result<u64>;

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

    /// Puts failed entries back in the queue, for a relay to publish again: those of
    /// `ids` that are failed, or every failed entry (`None`). Each goes to the back of
    /// the queue as a new pending entry (a new id; the same event, data and creation
    /// time; no retries counted, no error), replacing the failed one in one transaction,
    /// so that relays that scan from a floor below every pending entry still find it.
    /// Returns how many were put back; ids that are not failed entries are passed over.
    ///
    /// # Errors
    /// Database errors (nothing is changed).
    async fn retry_failed(&self, ids: Option<&[i64]>) -> Result<u64>;
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
