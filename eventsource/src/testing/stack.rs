//! [`FullStack`]: a store, a bus, a repository publishing to the bus and a started
//! subscription manager feeding one projection: the twin of eventsource-py's `full_stack`
//! pytest fixture.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::Aggregate;
use crate::bus::InMemoryEventBus;
use crate::checkpoint::InMemoryCheckpointStore;
use crate::error::Result;
use crate::projection::Projection;
use crate::repository::AggregateRepository;
use crate::store::sqlite::SqliteEventStore;
use crate::store::EventStore;
use crate::subscription::{StartFrom, Subscription, SubscriptionConfig, SubscriptionManager};

/// How long [`FullStack::settle`] waits for the projection before it fails.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything an integration test of one aggregate and one projection needs, wired as in
/// production: SQLite (`:memory:`), an [`InMemoryEventBus`] the repository publishes to,
/// in-memory checkpoints, and a started [`SubscriptionManager`] feeding the projection
/// from the beginning. [`settle`](Self::settle) waits (instead of sleeping) until the
/// projection has handled every stored event.
///
/// ```
/// use std::collections::HashMap;
/// use eventsource::prelude::*;
/// use eventsource::testing::FullStack;
/// use serde::{Deserialize, Serialize};
/// use uuid::Uuid;
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Order")]
/// struct OrderPlaced { total: f64 }
///
/// #[derive(Debug, Default)]
/// struct Order { placed: bool }
///
/// #[aggregate(name = "Order")]
/// impl Order {
///     #[apply]
///     fn placed(&mut self, _: &OrderPlaced) { self.placed = true; }
/// }
///
/// #[derive(Debug, Default)]
/// struct OrderList { totals: HashMap<Uuid, f64> }
///
/// #[projection]
/// impl OrderList {
///     #[handles]
///     async fn placed(&mut self, e: &OrderPlaced, ctx: &EventContext<'_>) {
///         self.totals.insert(ctx.aggregate_id(), e.total);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// let stack = FullStack::<Order, _>::start(OrderList::default()).await?;
/// let id = Uuid::new_v4();
/// let mut order = stack.repo.create_new(id);
/// order.apply_event(OrderPlaced { total: 50.0 });
/// stack.repo.save(&mut order).await?;
///
/// stack.settle().await?;
/// assert_eq!(stack.projection.projection().lock().await.totals[&id], 50.0);
/// stack.stop().await;
/// # Ok(()) }
/// ```
pub struct FullStack<A: Aggregate, P: Projection, S: EventStore + 'static = SqliteEventStore> {
    /// The store (SQLite `:memory:` from [`start`](Self::start), or the one given to
    /// [`start_on`](Self::start_on)).
    pub store: Arc<S>,
    /// The bus the repository publishes to and the manager is woken by.
    pub bus: Arc<InMemoryEventBus>,
    /// The checkpoints of the subscription.
    pub checkpoints: Arc<InMemoryCheckpointStore>,
    /// A repository of `A` on the store, publishing every save to the bus.
    pub repo: AggregateRepository<A>,
    /// The started manager.
    pub manager: SubscriptionManager,
    /// The projection's subscription (`projection.projection().lock().await` to read it).
    pub projection: Subscription<P>,
}

impl<A: Aggregate, P: Projection, S: EventStore + 'static> fmt::Debug for FullStack<A, P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FullStack")
            .field("aggregate_type", &A::AGGREGATE_TYPE)
            .field("store", &self.store)
            .field("subscription", &self.projection.name())
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate, P: Projection> FullStack<A, P> {
    /// Opens a SQLite `:memory:` store, subscribes `projection` (from the beginning,
    /// under its name) and starts the manager.
    ///
    /// # Errors
    /// Opening the store, or subscribing and starting.
    pub async fn start(projection: P) -> Result<Self> {
        let store = Arc::new(SqliteEventStore::open(":memory:").await?);
        store.initialize().await?;
        Self::start_on(store, projection).await
    }
}

impl<A: Aggregate, P: Projection, S: EventStore + 'static> FullStack<A, P, S> {
    /// The same stack on `store`, initialized already: a PostgreSQL store of the test
    /// harness (`eventsource::testing::postgres::server()`), a file store, your own
    /// backend.
    ///
    /// # Errors
    /// Subscribing and starting.
    pub async fn start_on(store: Arc<S>, projection: P) -> Result<Self> {
        let bus = Arc::new(InMemoryEventBus::new());
        let checkpoints = Arc::new(InMemoryCheckpointStore::new());
        let manager = SubscriptionManager::new(store.clone(), bus.clone(), checkpoints.clone());
        let name = projection.name().to_owned();
        let subscription = manager
            .subscribe(
                projection,
                SubscriptionConfig::new().start_from(StartFrom::Beginning),
                name,
            )
            .await?;
        manager.start().await?;
        let repo = AggregateRepository::new(store.clone()).with_publisher(bus.clone());
        Ok(FullStack {
            store,
            bus,
            checkpoints,
            repo,
            manager,
            projection: subscription,
        })
    }

    /// Waits until the projection has handled every event stored so far (at most
    /// [`SETTLE_TIMEOUT`]).
    ///
    /// # Errors
    /// [`crate::Error::WaitTimeout`] (naming the subscription's state and last error),
    /// [`crate::Error::DeadLettered`] when the last event was dead-lettered,
    /// [`crate::Error::SubscriptionStopped`], or the store's error.
    pub async fn settle(&self) -> Result<()> {
        let head = self.store.get_global_position().await?;
        self.manager.wait_for(head, SETTLE_TIMEOUT).await
    }

    /// Stops the manager (the batch in progress finishes).
    pub async fn stop(self) {
        self.manager.stop().await;
    }
}
