//! The dead-letter queue: events a projection failed to handle after every retry, kept
//! with the error so the subscription can move on and nothing is lost.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use uuid::Uuid;

use crate::envelope::now;
use crate::error::{Error, Result};
use crate::panics::catch_unwind;
use crate::projection::Projection;
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeadLetterStatus {
    /// Failed and waiting for a fix.
    Failed,
    /// Fixed (replayed successfully, or resolved by hand).
    Resolved,
}

impl DeadLetterStatus {
    /// The stored text (`"failed"`, `"resolved"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Failed => "failed",
            DeadLetterStatus::Resolved => "resolved",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "failed" => Some(DeadLetterStatus::Failed),
            "resolved" => Some(DeadLetterStatus::Resolved),
            _ => None,
        }
    }
}

/// An event a projection failed to handle.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedEvent {
    /// The event id.
    pub event_id: Uuid,
    /// The projection (subscription name) that failed.
    pub projection_name: String,
    /// The event type.
    pub event_type: String,
    /// The event's global position (to replay it from the store).
    pub global_position: u64,
    /// The payload as JSON.
    pub event_data: serde_json::Value,
    /// The last error.
    pub error: String,
    /// How many attempts failed.
    pub retry_count: u32,
}

/// A dead letter as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The dead letter's id.
    pub id: i64,
    /// The failed event and error.
    pub failed: FailedEvent,
    /// Failed or resolved.
    pub status: DeadLetterStatus,
    /// First failure.
    pub first_failed_at: DateTime<Utc>,
    /// Latest failure.
    pub last_failed_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// How it was resolved.
    pub resolution: Option<String>,
}

/// Counts over the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterStatistics {
    /// All dead letters.
    pub total: u64,
    /// Still failed.
    pub failed: u64,
    /// Resolved.
    pub resolved: u64,
    /// Still failed, per projection.
    pub failed_by_projection: BTreeMap<String, u64>,
}

impl DeadLetterStatistics {
    /// Adds `count` dead letters of `projection` in `status`.
    pub(crate) fn add(&mut self, projection: &str, status: DeadLetterStatus, count: u64) {
        self.total += count;
        match status {
            DeadLetterStatus::Failed => {
                self.failed += count;
                *self
                    .failed_by_projection
                    .entry(projection.to_owned())
                    .or_default() += count;
            }
            DeadLetterStatus::Resolved => self.resolved += count,
        }
    }
}

/// Where dead letters are kept: one per event and projection (a new failure of the same
/// pair updates it).
///
/// A [`SubscriptionManager`](crate::SubscriptionManager) writes them (give it a durable
/// one with `with_dead_letters`); operators read, resolve and replay them:
///
/// ```
/// use std::sync::Arc;
/// use eventsource::prelude::*;
/// use eventsource::{DeadLetterStatus, FailedEvent};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct OrderPlaced { total: f64 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// let store = SqliteEventStore::open(":memory:").await?;
/// store.initialize().await?; // the dead_letter_queue table too
/// let event = NewEvent::new(OrderPlaced { total: 5.0 });
/// store.append_events(uuid::Uuid::new_v4(), "Order", vec![event], ExpectedVersion::NoStream).await?;
/// let stored = store.get_events_by_type("Order", None, None).await?.remove(0);
///
/// let id = store
///     .add_failed_event(FailedEvent::for_event("billing", &stored, "card declined", 3))
///     .await?;
/// let failed = store.get_failed_events(Some("billing"), Some(DeadLetterStatus::Failed), 10).await?;
/// assert_eq!(failed[0].failed.error, "card declined");
/// assert_eq!(store.get_statistics().await?.failed_by_projection["billing"], 1);
///
/// store.mark_resolved(id, "refunded by hand").await?;
/// assert_eq!(store.get_statistics().await?.resolved, 1);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait DeadLetterStore: Send + Sync + fmt::Debug {
    /// Records a failure; returns the dead letter's id.
    ///
    /// # Errors
    /// Database errors.
    async fn add_failed_event(&self, failed: FailedEvent) -> Result<i64>;

    /// Dead letters, oldest first, optionally of one projection and status.
    ///
    /// # Errors
    /// Database errors.
    async fn get_failed_events(
        &self,
        projection_name: Option<&str>,
        status: Option<DeadLetterStatus>,
        limit: u64,
    ) -> Result<Vec<DeadLetter>>;

    /// One dead letter.
    ///
    /// # Errors
    /// Database errors.
    async fn get_failed_event(&self, id: i64) -> Result<Option<DeadLetter>>;

    /// Counts.
    ///
    /// # Errors
    /// Database errors.
    async fn get_statistics(&self) -> Result<DeadLetterStatistics>;

    /// Marks a dead letter resolved, with how.
    ///
    /// # Errors
    /// [`Error::DeadLetterNotFound`] for an unknown id; database errors.
    async fn mark_resolved(&self, id: i64, resolution: &str) -> Result<()>;
}

impl FailedEvent {
    /// The failure of `projection` on a stored event, after `retry_count` attempts.
    pub fn for_event(projection: &str, event: &StoredEvent, error: &str, retry_count: u32) -> Self {
        FailedEvent {
            event_id: event.event_id(),
            projection_name: projection.to_owned(),
            event_type: event.event_type().to_owned(),
            global_position: event.global_position,
            event_data: event.payload_json().unwrap_or(serde_json::Value::Null),
            error: error.to_owned(),
            retry_count,
        }
    }

    /// A stored row that does not read back ([`Error::CorruptEvent`]): one dead letter per
    /// row, keyed by its event id, or by an id made from its position when that does not
    /// read either. `None` for any other error.
    pub fn for_corrupt_row(projection: &str, error: &Error) -> Option<Self> {
        let Error::CorruptEvent {
            global_position,
            event_id,
            event_type,
            reason,
        } = error
        else {
            return None;
        };
        Some(FailedEvent {
            event_id: event_id.unwrap_or_else(|| Uuid::from_u64_pair(u64::MAX, *global_position)),
            projection_name: projection.to_owned(),
            event_type: event_type.clone(),
            global_position: *global_position,
            event_data: serde_json::Value::Null,
            error: reason.clone(),
            retry_count: 0,
        })
    }
}

/// Reads a dead-lettered event back from the store and hands it to `projection` again;
/// on success the dead letter is resolved as `"replayed"`, on failure its retry count and
/// error are updated.
///
/// # Errors
/// [`Error::DeadLetterNotFound`]; [`Error::HandlerFailed`] when the projection fails (or
/// panics) again; errors of the stores.
pub async fn replay_dead_letter(
    dead_letters: &dyn DeadLetterStore,
    store: &dyn EventStore,
    projection: &mut dyn Projection,
    id: i64,
) -> Result<()> {
    let letter = dead_letters
        .get_failed_event(id)
        .await?
        .ok_or(Error::DeadLetterNotFound { id })?;
    let position = letter.failed.global_position;
    let event = dead_lettered_event(store, &letter).await?;
    // A panic is a failure like an error: recorded on the dead letter.
    let handled = match catch_unwind(projection.handle(&event)).await {
        Ok(result) => result,
        Err(panic) => Err(format!("handler {panic}").into()),
    };
    match handled {
        Ok(()) => dead_letters.mark_resolved(id, "replayed").await,
        Err(source) => {
            let mut failed = letter.failed;
            failed.retry_count += 1;
            failed.error = source.to_string();
            dead_letters.add_failed_event(failed).await?;
            Err(Error::HandlerFailed {
                projection: projection.name().to_owned(),
                event_type: event.event_type().to_owned(),
                global_position: position,
                source,
            })
        }
    }
}

/// The event of `letter`, read back from the store.
///
/// # Errors
/// [`Error::DeadLetterNotFound`] when the store has no such event at its position; errors
/// of the store.
pub(crate) async fn dead_lettered_event(
    store: &dyn EventStore,
    letter: &DeadLetter,
) -> Result<StoredEvent> {
    let position = letter.failed.global_position;
    // One row (all its events, when a split upcaster makes several of it).
    let mut events = store.read_all(
        ReadOptions::new()
            .from_position(position.saturating_sub(1))
            .limit(1),
    );
    while let Some(event) = events.next().await {
        let event = event?;
        if event.global_position != position {
            break;
        }
        if event.event_id() == letter.failed.event_id {
            return Ok(event);
        }
    }
    Err(Error::DeadLetterNotFound { id: letter.id })
}

/// Dead letters in process memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDeadLetterStore {
    letters: Arc<RwLock<Vec<DeadLetter>>>,
}

impl InMemoryDeadLetterStore {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DeadLetterStore for InMemoryDeadLetterStore {
    async fn add_failed_event(&self, failed: FailedEvent) -> Result<i64> {
        let mut letters = self.letters.write().unwrap_or_else(PoisonError::into_inner);
        let at = now();
        if let Some(letter) = letters.iter_mut().find(|l| {
            l.failed.event_id == failed.event_id
                && l.failed.projection_name == failed.projection_name
        }) {
            letter.failed = failed;
            letter.last_failed_at = at;
            letter.status = DeadLetterStatus::Failed;
            letter.resolved_at = None;
            letter.resolution = None;
            return Ok(letter.id);
        }
        let id = letters.len() as i64 + 1;
        letters.push(DeadLetter {
            id,
            failed,
            status: DeadLetterStatus::Failed,
            first_failed_at: at,
            last_failed_at: at,
            resolved_at: None,
            resolution: None,
        });
        Ok(id)
    }

    async fn get_failed_events(
        &self,
        projection_name: Option<&str>,
        status: Option<DeadLetterStatus>,
        limit: u64,
    ) -> Result<Vec<DeadLetter>> {
        Ok(self
            .letters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|l| projection_name.is_none_or(|p| l.failed.projection_name == p))
            .filter(|l| status.is_none_or(|s| l.status == s))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn get_failed_event(&self, id: i64) -> Result<Option<DeadLetter>> {
        Ok(self
            .letters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|l| l.id == id)
            .cloned())
    }

    async fn get_statistics(&self) -> Result<DeadLetterStatistics> {
        let letters = self.letters.read().unwrap_or_else(PoisonError::into_inner);
        let mut stats = DeadLetterStatistics::default();
        for letter in letters.iter() {
            stats.add(&letter.failed.projection_name, letter.status, 1);
        }
        Ok(stats)
    }

    async fn mark_resolved(&self, id: i64, resolution: &str) -> Result<()> {
        let mut letters = self.letters.write().unwrap_or_else(PoisonError::into_inner);
        let letter = letters
            .iter_mut()
            .find(|l| l.id == id)
            .ok_or(Error::DeadLetterNotFound { id })?;
        letter.status = DeadLetterStatus::Resolved;
        letter.resolved_at = Some(now());
        letter.resolution = Some(resolution.to_owned());
        Ok(())
    }
}
