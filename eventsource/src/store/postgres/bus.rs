//! [`PostgresEventBus`]: live delivery across processes through `LISTEN/NOTIFY`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{db_error, PostgresEventStore};
use crate::bus::{BusFilter, BusSubscription, EventBus};
use crate::error::{BoxError, Error, Result};
use crate::repository::EventPublisher;
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;

/// A bus fed by the notifications every [`PostgresEventStore`] append sends on commit, in
/// any process: subscribers in this process receive the events appended by all of them,
/// in global order, read from the store.
///
/// One connection of the store's pool stays in `LISTEN` on the schema's channel. When it
/// is lost (server restart, network), the bus reconnects with a growing pause (up to 1 s)
/// and then reads from the store everything after the last event it delivered, so no
/// event is skipped; notifications sent meanwhile are not needed. [`crate::SubscriptionManager`]
/// uses a bus only as a wake-up and keeps polling as the fallback while it is down. A
/// connection that dies silently (a half-open TCP connection, no error reported) is only
/// noticed when the operating system reports it; subscriptions' polling covers that time.
///
/// [`EventBus::publish`] is a no-op here: the store announces every committed append
/// itself, so publishing again would deliver events twice.
///
/// ```no_run
/// # async fn f(store: eventsource::PostgresEventStore) -> eventsource::Result<()> {
/// use std::sync::Arc;
/// use eventsource::{PostgresEventBus, SubscriptionManager};
///
/// let bus = PostgresEventBus::start(&store).await?;
/// let manager = SubscriptionManager::new(Arc::new(store.clone()), Arc::new(bus), Arc::new(store.clone()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresEventBus {
    sender: broadcast::Sender<Arc<StoredEvent>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    task: JoinHandle<()>,
    losses: AtomicU64,
    delivered: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PostgresEventBus {
    /// Listens on `store`'s channel and delivers events appended from now on, holding up
    /// to 1024 events per subscriber.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for a store whose pool has fewer than 2
    /// connections; [`Error::StoreClosed`]; database errors when the first `LISTEN` fails.
    pub async fn start(store: &PostgresEventStore) -> Result<Self> {
        Self::with_capacity(store, 1024).await
    }

    /// Like [`start`](Self::start), holding up to `capacity` (at least 1) events per
    /// subscriber; a slower subscriber is told how many it missed.
    ///
    /// # Errors
    /// See [`start`](Self::start).
    pub async fn with_capacity(store: &PostgresEventStore, capacity: usize) -> Result<Self> {
        store.ensure_open()?;
        if store.pool().options().get_max_connections() < 2 {
            return Err(Error::InvalidConfiguration {
                message: "a PostgresEventBus keeps one connection of the store's pool: give the \
                          store at least 2 (max_connections)"
                    .into(),
            });
        }
        let mut listener = PgListener::connect_with(store.pool())
            .await
            .map_err(db_error("listen"))?;
        listener
            .listen(store.notification_channel())
            .await
            .map_err(db_error("listen"))?;
        // The head once LISTEN is in place: anything committed later is announced.
        let head = store.get_global_position().await?;
        let sender = broadcast::channel(capacity.max(1)).0;
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let relay = Relay {
                store: store.clone(),
                sender: sender.clone(),
                shared: weak.clone(),
                position: head,
            };
            Shared {
                task: tokio::spawn(relay.run(listener)),
                losses: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
            }
        });
        Ok(PostgresEventBus { sender, shared })
    }

    /// How often the `LISTEN` connection was lost (each loss is followed by reconnection
    /// attempts until the server answers again, then a read of what was missed).
    pub fn connection_losses(&self) -> u64 {
        self.shared.losses.load(Ordering::Relaxed)
    }

    /// Events delivered to this process's subscribers so far.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// The number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[async_trait]
impl EventBus for PostgresEventBus {
    async fn publish(&self, _events: &[StoredEvent]) -> Result<(), BoxError> {
        Ok(())
    }

    fn subscribe(&self, filter: BusFilter) -> BusSubscription {
        BusSubscription::new(self.sender.subscribe(), filter)
    }
}

#[async_trait]
impl EventPublisher for PostgresEventBus {
    async fn publish(&self, _events: &[StoredEvent]) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The task behind a bus: waits for notifications, reads the new events, broadcasts them.
struct Relay {
    store: PostgresEventStore,
    sender: broadcast::Sender<Arc<StoredEvent>>,
    shared: std::sync::Weak<Shared>,
    /// The global position delivered up to.
    position: u64,
}

impl Relay {
    async fn run(mut self, mut listener: PgListener) {
        let mut pause = Duration::from_millis(50);
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    // Every notification means "read after your position": coalesce.
                    while listener.next_buffered().is_some() {}
                    pause = Duration::from_millis(50);
                }
                Ok(None) => {
                    // sqlx lost the connection and re-established it (LISTEN included):
                    // notifications sent meanwhile are gone, the store has the events.
                    self.count_loss();
                    tracing::info!("event bus: LISTEN connection re-established");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    // E.g. the server shutting down: start over on a new connection, and
                    // read the store only once it listens, so that nothing committed
                    // between the read and the LISTEN can wait for a later notification.
                    self.count_loss();
                    tracing::warn!(%error, "event bus: LISTEN connection lost; reconnecting");
                    drop(listener);
                    match self.listen_again(&mut pause).await {
                        Some(fresh) => listener = fresh,
                        None => return,
                    }
                }
            }
            // Read what is new (or may be, after a reconnect) until a read succeeds.
            loop {
                match self.deliver().await {
                    Ok(()) => break,
                    Err(Error::StoreClosed) => return,
                    Err(error) => {
                        tracing::debug!(%error, "event bus: reading new events failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
    }

    /// A new listener on the channel, retried with a growing pause until the server
    /// answers; `None` once the store is closed.
    async fn listen_again(&self, pause: &mut Duration) -> Option<PgListener> {
        loop {
            if self.store.pool().is_closed() {
                return None;
            }
            tokio::time::sleep(*pause).await;
            *pause = (*pause * 2).min(Duration::from_secs(1));
            let listener = async {
                let mut listener = PgListener::connect_with(self.store.pool()).await?;
                listener.listen(self.store.notification_channel()).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            match listener.await {
                Ok(listener) => {
                    tracing::info!("event bus: listening again");
                    return Some(listener);
                }
                Err(sqlx::Error::PoolClosed) => return None,
                Err(error) => tracing::debug!(%error, "event bus: reconnecting failed; retrying"),
            }
        }
    }

    fn count_loss(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.losses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads every event after `position` and broadcasts it.
    async fn deliver(&mut self) -> Result<()> {
        let mut events = self
            .store
            .read_all(ReadOptions::new().from_position(self.position));
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => {
                    self.position = event.global_position;
                    // No subscriber is not an error: the events are in the store.
                    let _ = self.sender.send(Arc::new(event));
                    if let Some(shared) = self.shared.upgrade() {
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // A row that does not decode is not a bus's business: subscribers that
                // read the store report it. Skip it.
                Err(Error::CorruptEvent {
                    global_position, ..
                }) => self.position = global_position,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}
