//! The event bus: in-process delivery of saved events to subscribers.
//!
//! [`crate::SubscriptionManager`] uses a bus only as a wake-up signal and reads every
//! event it hands to a projection from the store by position, so a lost or lagging bus
//! message can delay a projection but never make it skip or repeat an event.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::error::{BoxError, Result};
use crate::repository::EventPublisher;
use crate::stored::StoredEvent;

/// Which events a bus subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusFilter {
    /// Every event (the wildcard).
    All,
    /// Only these event types.
    EventTypes(Vec<String>),
}

impl BusFilter {
    fn accepts(&self, event: &StoredEvent) -> bool {
        match self {
            BusFilter::All => true,
            BusFilter::EventTypes(types) => types.iter().any(|t| t == event.event_type()),
        }
    }
}

/// Why [`BusSubscription::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BusRecvError {
    /// The subscriber fell behind and `missed` events were dropped for it: it must read
    /// them from the store.
    #[error("the subscriber lagged behind and missed {missed} events")]
    Lagged {
        /// How many events were missed.
        missed: u64,
    },
    /// The bus is gone.
    #[error("the event bus is closed")]
    Closed,
}

/// A subscriber's end of a bus.
#[derive(Debug)]
pub struct BusSubscription {
    receiver: broadcast::Receiver<Arc<StoredEvent>>,
    filter: BusFilter,
    missed: u64,
}

impl BusSubscription {
    /// A subscriber on a broadcast channel of stored events.
    pub(crate) fn new(receiver: broadcast::Receiver<Arc<StoredEvent>>, filter: BusFilter) -> Self {
        BusSubscription {
            receiver,
            filter,
            missed: 0,
        }
    }

    /// The next event that passes the filter.
    ///
    /// # Errors
    /// [`BusRecvError::Lagged`] when events were dropped for this slow subscriber (the
    /// next call goes on with the oldest event still held); [`BusRecvError::Closed`].
    pub async fn recv(&mut self) -> Result<Arc<StoredEvent>, BusRecvError> {
        loop {
            match self.receiver.recv().await {
                Ok(event) if self.filter.accepts(&event) => return Ok(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.missed += missed;
                    return Err(BusRecvError::Lagged { missed });
                }
                Err(broadcast::error::RecvError::Closed) => return Err(BusRecvError::Closed),
            }
        }
    }

    /// Events dropped for this subscriber so far because it lagged.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// Delivers published events to subscribers.
#[async_trait]
pub trait EventBus: Send + Sync + fmt::Debug {
    /// Publishes stored events, in order.
    ///
    /// # Errors
    /// Transport errors.
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), BoxError>;

    /// A new subscriber that receives events published from now on.
    fn subscribe(&self, filter: BusFilter) -> BusSubscription;
}

/// A bus inside one process, on a bounded tokio broadcast channel: publishers never wait;
/// a subscriber more than `capacity` events behind loses the oldest and is told so
/// ([`BusRecvError::Lagged`]).
#[derive(Debug, Clone)]
pub struct InMemoryEventBus {
    sender: broadcast::Sender<Arc<StoredEvent>>,
}

impl Default for InMemoryEventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventBus {
    /// A bus holding up to 1024 events per subscriber.
    pub fn new() -> Self {
        Self::with_capacity(1024)
    }

    /// A bus holding up to `capacity` (at least 1) events per subscriber.
    pub fn with_capacity(capacity: usize) -> Self {
        InMemoryEventBus {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// The number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[async_trait]
impl EventBus for InMemoryEventBus {
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), BoxError> {
        for event in events {
            // No subscriber is not an error: the events are in the store.
            let _ = self.sender.send(Arc::new(event.clone()));
        }
        Ok(())
    }

    fn subscribe(&self, filter: BusFilter) -> BusSubscription {
        BusSubscription::new(self.sender.subscribe(), filter)
    }
}

#[async_trait]
impl EventPublisher for InMemoryEventBus {
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), BoxError> {
        EventBus::publish(self, events).await
    }
}
