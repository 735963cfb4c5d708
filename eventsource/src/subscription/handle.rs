//! [`Subscription`]: the handle a caller keeps on one subscribed projection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::health::{Shared, SubscriptionHealth};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::projection::Projection;

/// A handle on a subscribed projection: its read model, position, health, and
/// read-your-writes waiting.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use eventsource::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct TaskCreated { title: String }
///
/// #[derive(Debug, Default)]
/// struct Titles(Vec<String>);
///
/// #[projection]
/// impl Titles {
///     #[handles]
///     async fn created(&mut self, e: &TaskCreated) { self.0.push(e.title.clone()); }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// let store = Arc::new(InMemoryEventStore::new());
/// let manager = SubscriptionManager::new(
///     store.clone(),
///     Arc::new(InMemoryEventBus::new()),
///     Arc::new(InMemoryCheckpointStore::new()),
/// );
/// let titles = manager.subscribe(Titles::default(), SubscriptionConfig::new(), "titles").await?;
/// manager.start().await?;
///
/// let event = NewEvent::new(TaskCreated { title: "Write docs".into() });
/// let saved = store.append_events(uuid::Uuid::new_v4(), "Task", vec![event], ExpectedVersion::NoStream).await?;
/// titles.wait_for(saved.global_position, Duration::from_secs(5)).await?; // read your write
/// assert_eq!(titles.projection().lock().await.0, ["Write docs"]);
/// assert_eq!(titles.position(), saved.global_position);
/// println!("{:?}", titles.health()); // state, position, lag, last error
/// manager.stop().await;
/// # Ok(()) }
/// ```
pub struct Subscription<P> {
    pub(super) shared: Arc<Shared>,
    pub(super) projection: Arc<Mutex<P>>,
}

impl<P> Clone for Subscription<P> {
    fn clone(&self) -> Self {
        Subscription {
            shared: self.shared.clone(),
            projection: self.projection.clone(),
        }
    }
}

impl<P> fmt::Debug for Subscription<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.shared.name)
            .field("position", &*self.shared.position.borrow())
            .finish()
    }
}

impl<P: Projection> Subscription<P> {
    /// The subscription name (checkpoints and dead letters are kept under it).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The projection; lock it to query the read model (handling waits meanwhile).
    pub fn projection(&self) -> &Arc<Mutex<P>> {
        &self.projection
    }

    /// The global position handled up to.
    pub fn position(&self) -> u64 {
        *self.shared.position.borrow()
    }

    /// Health and lag.
    pub fn health(&self) -> SubscriptionHealth {
        self.shared.health().clone()
    }

    /// Waits until the projection has handled the event at `position` (the
    /// `global_position` a save or append returned), so the caller can read its own write
    /// from the read model.
    ///
    /// # Errors
    /// - [`Error::DeadLettered`] when the event at `position` was dead-lettered by this
    ///   subscription (in this process): the read model does not reflect it;
    /// - [`Error::SubscriptionStopped`] when the subscription is stopped or has failed
    ///   before reaching `position`;
    /// - [`Error::WaitTimeout`] when `timeout` passes first; it names the subscription's
    ///   state, position, the store's head and the last error.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<()> {
        self.shared.wait_for(position, timeout).await
    }
}
