//! [`SubscriptionManager`]: subscribes projections, starts and stops their tasks, and
//! reports their health.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use super::config::{StartFrom, SubscriptionConfig};
use super::durable::{DurableRunner, DurableSubscription};
use super::durable_worker::DurableWorker;
use super::handle::Subscription;
use super::handled_types::check_handled_types;
use super::health::{Handler, Shared, SubscriptionHealth, SubscriptionState};
use super::worker::Worker;
use crate::bus::{BusFilter, EventBus};
use crate::checkpoint::{lag_metrics, CheckpointStore, LagMetrics};
use crate::dlq::{DeadLetterStore, InMemoryDeadLetterStore};
use crate::error::{Error, Result};
use crate::panics::catch_unwind;
use crate::projection::Projection;
use crate::store::EventStore;

/// Runs projections over an event store: catch-up, then live, with checkpoints, retries
/// and dead letters.
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use eventsource::prelude::*;
/// # use eventsource::{InMemoryCheckpointStore, InMemoryEventBus, SubscriptionConfig, SubscriptionManager};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct Pinged {}
/// #[derive(Debug, Default)]
/// struct PingCount { pings: u64 }
///
/// #[projection]
/// impl PingCount {
///     #[handles]
///     async fn pinged(&mut self, _event: &Pinged) {
///         self.pings += 1;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// let store = Arc::new(InMemoryEventStore::new());
/// let bus = Arc::new(InMemoryEventBus::new());
/// let manager = SubscriptionManager::new(store.clone(), bus.clone(), Arc::new(InMemoryCheckpointStore::new()));
/// let pings = manager.subscribe(PingCount::default(), SubscriptionConfig::new(), "pings").await?;
/// manager.start().await?;
///
/// let saved = store
///     .append_events(uuid::Uuid::new_v4(), "Ping", vec![NewEvent::new(Pinged {})], ExpectedVersion::Any)
///     .await?;
/// pings.wait_for(saved.global_position, Duration::from_secs(5)).await?;
/// assert_eq!(pings.projection().lock().await.pings, 1);
/// manager.stop().await;
/// # Ok(()) }
/// ```
pub struct SubscriptionManager {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn EventBus>,
    checkpoints: Arc<dyn CheckpointStore>,
    dead_letters: Arc<dyn DeadLetterStore>,
    subscriptions: StdMutex<Vec<Arc<Shared>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    running: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for SubscriptionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionManager")
            .field("store", &self.store)
            .field("subscriptions", &self.health())
            .finish()
    }
}

impl SubscriptionManager {
    /// A manager reading `store`, woken by `bus`, saving positions in `checkpoints`, with
    /// dead letters kept in memory. With durable checkpoints, give it a durable dead-letter
    /// store too ([`with_dead_letters`](Self::with_dead_letters)): otherwise the record of
    /// a failed event (the event itself stays in the store) is gone after a restart.
    pub fn new(
        store: Arc<dyn EventStore>,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> Self {
        SubscriptionManager {
            store,
            bus,
            checkpoints,
            dead_letters: Arc::new(InMemoryDeadLetterStore::new()),
            subscriptions: StdMutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            stop: watch::channel(false).0,
            running: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Keeps dead letters in `dead_letters` (e.g. the SQLite store's table).
    pub fn with_dead_letters(mut self, dead_letters: Arc<dyn DeadLetterStore>) -> Self {
        self.dead_letters = dead_letters;
        self
    }

    /// The dead-letter queue.
    pub fn dead_letters(&self) -> &Arc<dyn DeadLetterStore> {
        &self.dead_letters
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Shared>>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a projection under `name`. It runs from [`start`](Self::start) (at once if the
    /// manager is already started).
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for a bad config or a name already subscribed.
    pub async fn subscribe<P: Projection>(
        &self,
        projection: P,
        config: SubscriptionConfig,
        name: impl Into<String>,
    ) -> Result<Subscription<P>> {
        config.check()?;
        let name = name.into();
        let handled = projection.handled_event_types();
        if !config.allow_unregistered_types {
            check_handled_types(projection.name(), &name, handled)?;
        }
        let durable = projection.is_durable();
        let projection = Arc::new(Mutex::new(projection));
        let handler = Handler::Projection(projection.clone());
        let shared = Arc::new(Shared::new(name, config, handler, handled, durable));
        self.add(shared.clone()).await?;
        Ok(Subscription { shared, projection })
    }

    /// Adds a durable read model: `runner` (a `SqliteProjectionRunner` or
    /// `PostgresProjectionRunner`) commits each batch's read-model writes, dead letters
    /// and checkpoint in one transaction of its own database, so every event is applied
    /// exactly once whatever crashes; the manager runs it as it runs any projection (from
    /// [`start`](Self::start), woken by the bus, stopped by [`stop`](Self::stop)) with
    /// the same health, `wait_for`, retries and dead letters. Its name is the runner's,
    /// and it resumes from the checkpoint in its database.
    ///
    /// The config's batch size and retry policy replace the runner's; its poll interval
    /// applies. Its dead letters are written to the runner's database, whatever
    /// [`with_dead_letters`](Self::with_dead_letters) says (give the manager the same
    /// store to see them through [`dead_letters`](Self::dead_letters)).
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for a bad config, a start other than
    /// [`StartFrom::Checkpoint`] (a durable read model goes on from its own checkpoint;
    /// rebuild it to start over), a handled type no registered event is named, or a name
    /// already subscribed.
    pub async fn subscribe_durable<R: DurableRunner>(
        &self,
        mut runner: R,
        config: SubscriptionConfig,
    ) -> Result<DurableSubscription<R>> {
        config.check()?;
        let name = runner.name().to_owned();
        if config.start_from != StartFrom::Checkpoint {
            return Err(Error::InvalidConfiguration {
                message: format!(
                    "durable subscription `{name}` starts from {:?}: a durable read model goes on from \
                     the checkpoint committed with it (StartFrom::Checkpoint); to start over, rebuild it",
                    config.start_from
                ),
            });
        }
        let handled = runner.handled_event_types();
        if !config.allow_unregistered_types {
            check_handled_types(&name, &name, handled)?;
        }
        runner.configure(config.batch_size as u64, config.retry);
        let runner = Arc::new(Mutex::new(runner));
        let handler = Handler::Durable(runner.clone());
        let shared = Arc::new(Shared::new(name, config, handler, handled, true));
        self.add(shared.clone()).await?;
        Ok(DurableSubscription { shared, runner })
    }

    /// Registers a subscription, and starts it if the manager is running.
    async fn add(&self, shared: Arc<Shared>) -> Result<()> {
        {
            let mut subscriptions = self.subscriptions();
            if subscriptions.iter().any(|s| s.name == shared.name) {
                return Err(Error::InvalidConfiguration {
                    message: format!("a subscription named `{}` exists already", shared.name),
                });
            }
            subscriptions.push(shared);
        }
        if self.is_running() {
            self.spawn_pending().await?;
        }
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts every subscription: each catches up from its start position, then goes live.
    /// Start positions are fixed before this returns, so an event appended afterwards is
    /// delivered even with [`StartFrom::End`].
    ///
    /// # Errors
    /// Errors of the stores while reading start positions (those subscriptions stay
    /// pending; call `start` again).
    pub async fn start(&self) -> Result<()> {
        // Only a change wakes the running workers: sending `false` to workers that are
        // running would look like a stop to them.
        self.stop
            .send_if_modified(|stopping| std::mem::replace(stopping, false));
        self.running
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.spawn_pending().await
    }

    async fn spawn_pending(&self) -> Result<()> {
        let pending: Vec<Arc<Shared>> = self
            .subscriptions()
            .iter()
            .filter(|s| {
                let mut started = s.started.lock().unwrap_or_else(PoisonError::into_inner);
                !std::mem::replace(&mut *started, true)
            })
            .cloned()
            .collect();
        let mut tasks = self.tasks.lock().await;
        let mut first_error = None;
        for shared in pending {
            if let Handler::Durable(runner) = &shared.handler {
                let runner = runner.clone();
                // Its checkpoint is committed with the read model: always the start.
                let checkpoint = runner.lock().await.checkpoint().await;
                match checkpoint {
                    Ok(position) => {
                        let worker = DurableWorker {
                            runner,
                            wake: Some(self.bus.subscribe(BusFilter::All)),
                            stop: self.stop.subscribe(),
                            shared: shared.clone(),
                            position,
                        };
                        shared.set_state(SubscriptionState::CatchingUp);
                        tasks.push(spawn_guarded(shared, worker.run()));
                    }
                    Err(error) => {
                        *shared
                            .started
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = false;
                        first_error.get_or_insert(error);
                    }
                }
                continue;
            }
            // A restart in this process goes on where it stopped, into the same read
            // model; the configured start applies to the first run.
            let resumed = shared
                .has_run
                .swap(true, std::sync::atomic::Ordering::SeqCst)
                .then(|| shared.handled().max(*shared.position.borrow()));
            let start = match resumed {
                Some(position) => Ok(position),
                None => {
                    start_position(&shared, self.store.as_ref(), self.checkpoints.as_ref()).await
                }
            };
            let position = match start {
                Ok(position) => position,
                Err(error) => {
                    *shared
                        .started
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = false;
                    shared
                        .has_run
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    first_error.get_or_insert(error);
                    continue;
                }
            };
            // Not stopped any more from here on: a `wait_for` right after `start` waits.
            shared.set_state(SubscriptionState::CatchingUp);
            let Handler::Projection(projection) = shared.handler.clone() else {
                continue;
            };
            let worker = Worker {
                projection,
                store: self.store.clone(),
                checkpoints: self.checkpoints.clone(),
                dead_letters: self.dead_letters.clone(),
                // Subscribe to the bus before the first read: a wake-up for anything
                // appended after that read cannot be missed.
                wake: Some(self.bus.subscribe(BusFilter::All)),
                stop: self.stop.subscribe(),
                shared: shared.clone(),
                position,
                reader: None,
                failures: 0,
                batch_error: None,
                unsaved: resumed.is_some(),
            };
            tasks.push(spawn_guarded(shared, worker.run()));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stops every subscription gracefully: a batch being handled finishes and its
    /// checkpoint is saved; then the tasks end.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        self.running
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().await.drain(..).collect();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a subscription task panicked");
            }
        }
        for shared in self.subscriptions().iter() {
            *shared
                .started
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = false;
        }
    }

    /// Health and lag of every subscription.
    pub fn health(&self) -> Vec<SubscriptionHealth> {
        self.subscriptions()
            .iter()
            .map(|s| s.health().clone())
            .collect()
    }

    /// Waits until every subscription has handled `position`.
    ///
    /// # Errors
    /// As [`Subscription::wait_for`], for the first subscription that did not get there:
    /// [`Error::DeadLettered`], [`Error::SubscriptionStopped`], [`Error::WaitTimeout`].
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<()> {
        let now = tokio::time::Instant::now();
        // A timeout too long to add is as good as none.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        let subscriptions: Vec<Arc<Shared>> = self.subscriptions().clone();
        for shared in subscriptions {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            shared.wait_for(position, left).await?;
        }
        Ok(())
    }

    /// Lag of the subscription `name` against the store, from its checkpoint.
    ///
    /// # Errors
    /// Errors of the stores.
    pub async fn lag(&self, name: &str) -> Result<Option<LagMetrics>> {
        let found = self
            .subscriptions()
            .iter()
            .find(|s| s.name == name)
            .map(|s| (s.handled, s.handler.clone()));
        let handled = match found {
            // From the checkpoint in its own database.
            Some((_, Handler::Durable(runner))) => return runner.lock().await.lag().await,
            Some((handled, Handler::Projection(_))) => Some(handled),
            None => None,
        };
        lag_metrics(
            self.checkpoints.as_ref(),
            self.store.as_ref(),
            name,
            handled,
        )
        .await
    }
}

/// Runs a subscription's task; a panic outside the handlers (a store, a checkpoint or
/// dead-letter store of the user's) ends it, loudly: the health says so and waiters wake
/// up.
fn spawn_guarded(
    shared: Arc<Shared>,
    run: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let span = tracing::debug_span!("subscription", subscription = %shared.name);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            if let Err(panic) = catch_unwind(run).await {
                tracing::error!(subscription = %shared.name, %panic, "the subscription task panicked");
                // What the read model has is handled, checkpointed or not.
                let published = *shared.position.borrow();
                shared
                    .position
                    .send_replace(shared.handled().max(published));
                shared.note_error(format!("the subscription task {panic}"));
                shared.end(SubscriptionState::Failed);
            }
        },
        span,
    ))
}

/// Where a subscription starts, by its config.
async fn start_position(
    shared: &Shared,
    store: &dyn EventStore,
    checkpoints: &dyn CheckpointStore,
) -> Result<u64> {
    Ok(match shared.config.start_from {
        StartFrom::Beginning => 0,
        StartFrom::Position(position) => position,
        StartFrom::End => store.get_global_position().await?,
        StartFrom::Checkpoint => {
            let name = &shared.name;
            let distrust = |detail: String| -> Result<u64> {
                if shared.durable {
                    return Err(Error::InvalidCheckpoint {
                        projection: name.clone(),
                        detail,
                    });
                }
                tracing::error!(subscription = %name, %detail, "the checkpoint cannot be trusted; rebuilding the in-memory projection from the beginning");
                Ok(0)
            };
            let saved = match checkpoints.get_position(name).await {
                Ok(saved) => saved.unwrap_or(0),
                Err(Error::InvalidCheckpoint { detail, .. }) => return distrust(detail),
                Err(error) => return Err(error),
            };
            if saved == 0 {
                return Ok(0);
            }
            let head = store.get_global_position().await?;
            if saved > head {
                return distrust(format!(
                    "it is at position {saved}, beyond the store's head {head}"
                ));
            }
            if shared.durable {
                saved
            } else {
                // The read model is in memory and this process has not run it: it is
                // empty, whatever the checkpoint of an earlier process says.
                tracing::warn!(
                    subscription = %name,
                    checkpoint = saved,
                    "the projection is not durable (its read model is in memory): rebuilding it from the beginning instead of resuming at the checkpoint of an earlier process"
                );
                0
            }
        }
    })
}
