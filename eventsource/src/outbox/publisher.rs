//! Delivering outbox entries: [`OutboxPublisher`] (one entry, or a batch at once) and
//! [`BusOutboxPublisher`] to an [`EventBus`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::OutboxEntry;
use crate::bus::EventBus;
use crate::error::{BoxError, Result};
use crate::panics::catch_unwind;
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;

/// A batch publish that stopped: how many entries (from the start of the batch) went out
/// before it, and the error of the one that did not.
#[derive(Debug)]
pub struct PublishFailure {
    /// Entries published, from the start of the batch, before the failure.
    pub published: usize,
    /// The error of the entry after them.
    pub error: BoxError,
}

/// Delivers outbox entries somewhere (a message broker, an [`EventBus`]).
#[async_trait]
pub trait OutboxPublisher: Send + Sync + fmt::Debug {
    /// Publishes one entry.
    ///
    /// # Errors
    /// The transport's error: the relay retries the entry.
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), BoxError>;

    /// Publishes `entries` in order, stopping at the first that fails. The default
    /// publishes them one by one (a panic counts as a failure of that entry); a publisher
    /// that can send many at once (one broker call, one bus publish) overrides it.
    ///
    /// # Errors
    /// [`PublishFailure`]: how many went out before the failure, and its error.
    async fn publish_batch(&self, entries: &[OutboxEntry]) -> Result<(), PublishFailure> {
        for (published, entry) in entries.iter().enumerate() {
            let error = match catch_unwind(self.publish(entry)).await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(panic) => format!("publisher {panic}").into(),
            };
            return Err(PublishFailure { published, error });
        }
        Ok(())
    }
}

/// Publishes outbox entries to an [`EventBus`], with the stored events read back from
/// the store by their global positions: a batch is one read of its positions and one
/// publish to the bus.
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

    /// The stored events of `entries` (in order), read in one pass over their
    /// positions; stops at the first entry whose event is not at its position.
    async fn events_of(&self, entries: &[OutboxEntry]) -> (Vec<StoredEvent>, Option<BoxError>) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return (Vec::new(), None);
        };
        let span = last.global_position.saturating_sub(first.global_position) + 1;
        let mut stored = self.store.read_all(
            ReadOptions::new()
                .from_position(first.global_position.saturating_sub(1))
                .limit(span),
        );
        let mut events = Vec::with_capacity(entries.len());
        let mut next = None;
        for entry in entries {
            let found = loop {
                let event = match next.take() {
                    Some(event) => event,
                    None => match stored.next().await {
                        Some(Ok(event)) => event,
                        Some(Err(error)) => return (events, Some(Box::new(error))),
                        None => break None,
                    },
                };
                if event.global_position < entry.global_position
                    || (event.global_position == entry.global_position
                        && event.event_id() != entry.event_id)
                {
                    continue;
                }
                if event.global_position > entry.global_position {
                    next = Some(event);
                    break None;
                }
                break Some(event);
            };
            match found {
                Some(event) => events.push(event),
                None => {
                    let error = format!(
                        "event {} is not at position {}",
                        entry.event_id, entry.global_position
                    );
                    return (events, Some(error.into()));
                }
            }
        }
        (events, None)
    }
}

#[async_trait]
impl OutboxPublisher for BusOutboxPublisher {
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), BoxError> {
        match self.publish_batch(std::slice::from_ref(entry)).await {
            Ok(()) => Ok(()),
            Err(failure) => Err(failure.error),
        }
    }

    async fn publish_batch(&self, entries: &[OutboxEntry]) -> Result<(), PublishFailure> {
        // One read covers the batch when its positions ascend and lie close together
        // (entries are written in commit order); otherwise one read per entry.
        let dense = entries
            .windows(2)
            .all(|w| w[0].global_position < w[1].global_position)
            && entries.last().map_or(0, |e| e.global_position)
                - entries.first().map_or(0, |e| e.global_position)
                < 4 * entries.len() as u64 + 64;
        if !dense && entries.len() > 1 {
            for (published, entry) in entries.iter().enumerate() {
                if let Err(error) = self.publish(entry).await {
                    return Err(PublishFailure { published, error });
                }
            }
            return Ok(());
        }
        let (events, missing) = self.events_of(entries).await;
        if !events.is_empty() {
            self.bus
                .publish(&events)
                .await
                .map_err(|error| PublishFailure {
                    published: 0,
                    error,
                })?;
        }
        match missing {
            None => Ok(()),
            Some(error) => Err(PublishFailure {
                published: events.len(),
                error,
            }),
        }
    }
}
