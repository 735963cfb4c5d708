//! [`SubscriptionManager`]: runs projections over the store's global feed — catch-up from
//! a start position, then live — with checkpoints, retries and a dead-letter queue.
//!
//! Every event a projection handles is read from the store by global position; the bus
//! is only a wake-up signal (with polling as the fallback). The switch from catch-up to
//! live is therefore no switch at all: the same loop reads "everything after my position"
//! whether it is behind or not, so an event appended during the switch, or a bus message
//! that was lost, can delay delivery but never cause a gap or a duplicate.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::bus::{BusFilter, BusRecvError, BusSubscription, EventBus};
use crate::checkpoint::{lag_metrics, CheckpointStore, LagMetrics};
use crate::dlq::{DeadLetterStore, FailedEvent, InMemoryDeadLetterStore};
use crate::error::{BoxError, Error, Result};
use crate::projection::Projection;
use crate::store::EventStore;
use crate::stored::StoredEvent;

mod batches;

use batches::{BatchReader, ReadBatch};

/// Where a subscription starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// From the first event, whatever the checkpoint says (a full replay).
    Beginning,
    /// From the store's head when the subscription starts: only new events.
    End,
    /// After this global position.
    Position(u64),
    /// From the saved checkpoint, or the beginning when there is none (resumes after a
    /// restart).
    #[default]
    Checkpoint,
}

/// How a failing handler is retried before its event is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Growth of the wait per attempt.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 3 attempts, waiting 50 ms, then 100 ms.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// One attempt: a failure is dead-lettered at once.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        Duration::try_from_secs_f64(self.initial_backoff.as_secs_f64() * factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// How a subscription runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionConfig {
    /// Where to start (default: the checkpoint).
    pub start_from: StartFrom,
    /// Events read from the store per batch; the checkpoint is saved after each batch.
    pub batch_size: usize,
    /// Retries of a failing handler.
    pub retry: RetryPolicy,
    /// How often to look at the store when no wake-up arrives (default 1 s).
    pub poll_interval: Duration,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            start_from: StartFrom::Checkpoint,
            batch_size: 500,
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl SubscriptionConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets where to start.
    pub fn start_from(mut self, start_from: StartFrom) -> Self {
        self.start_from = start_from;
        self
    }

    /// Sets the batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the polling interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    fn check(&self) -> Result<()> {
        let invalid = |message: &str| {
            Err(Error::InvalidConfiguration {
                message: message.to_owned(),
            })
        };
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1");
        }
        if self.retry.max_attempts == 0 {
            return invalid("retry.max_attempts must be at least 1");
        }
        if self.poll_interval.is_zero() {
            return invalid("poll_interval must be positive");
        }
        Ok(())
    }
}

/// What a subscription is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Subscribed, not started.
    Pending,
    /// Reading full batches: behind the head.
    CatchingUp,
    /// Caught up; handling new events as they come.
    Live,
    /// Stopped.
    Stopped,
}

/// Health and lag of one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionHealth {
    /// The subscription name.
    pub name: String,
    /// What it is doing.
    pub state: SubscriptionState,
    /// The global position it has handled up to.
    pub position: u64,
    /// The store's head at its last read.
    pub head_position: u64,
    /// Events handled.
    pub events_processed: u64,
    /// Events dead-lettered.
    pub events_failed: u64,
    /// Bus messages missed because it lagged (they are read from the store anyway).
    pub bus_messages_missed: u64,
    /// The last error (store unavailable, handler failure), if any.
    pub last_error: Option<String>,
}

struct Shared {
    name: String,
    handled: &'static [&'static str],
    config: SubscriptionConfig,
    projection: Arc<Mutex<dyn Projection>>,
    position: watch::Sender<u64>,
    health: StdMutex<SubscriptionHealth>,
    started: StdMutex<bool>,
    /// Set once it has run: a restart in this process resumes from `position`.
    has_run: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn health(&self) -> std::sync::MutexGuard<'_, SubscriptionHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<()> {
        let mut receiver = self.position.subscribe();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::WaitTimeout {
                subscription: self.name.clone(),
                position,
                reached: *self.position.borrow(),
            }),
        }
    }
}

/// A handle on a subscribed projection: its read model, position, health, and
/// read-your-writes waiting.
pub struct Subscription<P> {
    shared: Arc<Shared>,
    projection: Arc<Mutex<P>>,
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
    /// [`Error::WaitTimeout`] when `timeout` passes first.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<()> {
        self.shared.wait_for(position, timeout).await
    }
}

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
        let projection = Arc::new(Mutex::new(projection));
        let dynamic: Arc<Mutex<dyn Projection>> = projection.clone();
        let shared = Arc::new(Shared {
            name: name.clone(),
            handled,
            config,
            projection: dynamic,
            position: watch::channel(0).0,
            health: StdMutex::new(SubscriptionHealth {
                name: name.clone(),
                state: SubscriptionState::Pending,
                position: 0,
                head_position: 0,
                events_processed: 0,
                events_failed: 0,
                bus_messages_missed: 0,
                last_error: None,
            }),
            started: StdMutex::new(false),
            has_run: std::sync::atomic::AtomicBool::new(false),
        });
        {
            let mut subscriptions = self.subscriptions();
            if subscriptions.iter().any(|s| s.name == name) {
                return Err(Error::InvalidConfiguration {
                    message: format!("a subscription named `{name}` exists already"),
                });
            }
            subscriptions.push(shared.clone());
        }
        if self.is_running() {
            self.spawn_pending().await?;
        }
        Ok(Subscription { shared, projection })
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
        self.stop.send_replace(false);
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
            // A restart in this process goes on where it stopped, into the same read
            // model; the configured start applies to the first run.
            let resumed = shared
                .has_run
                .swap(true, std::sync::atomic::Ordering::SeqCst)
                .then(|| *shared.position.borrow());
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
            let worker = Worker {
                store: self.store.clone(),
                checkpoints: self.checkpoints.clone(),
                dead_letters: self.dead_letters.clone(),
                // Subscribe to the bus before the first read: a wake-up for anything
                // appended after that read cannot be missed.
                wake: Some(self.bus.subscribe(BusFilter::All)),
                stop: self.stop.subscribe(),
                shared,
                position,
                reader: None,
            };
            let span = tracing::debug_span!("subscription", subscription = %worker.shared.name);
            tasks.push(tokio::spawn(tracing::Instrument::instrument(
                worker.run(),
                span,
            )));
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
    /// [`Error::WaitTimeout`] naming the first subscription that did not get there.
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
        let handled = self
            .subscriptions()
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.handled);
        lag_metrics(
            self.checkpoints.as_ref(),
            self.store.as_ref(),
            name,
            handled,
        )
        .await
    }
}

/// One subscription's task.
struct Worker {
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    dead_letters: Arc<dyn DeadLetterStore>,
    wake: Option<BusSubscription>,
    stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    /// The global position handled up to.
    position: u64,
    /// The task reading the batches, kept while they come full.
    reader: Option<BatchReader>,
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
        StartFrom::Checkpoint => checkpoints.get_position(&shared.name).await?.unwrap_or(0),
    })
}

/// How a batch ended.
enum Batch {
    /// A full batch: there may be more right away.
    Full,
    /// Fewer than a batch: caught up with the head.
    CaughtUp,
}

impl Worker {
    async fn run(mut self) {
        let name = self.shared.name.clone();
        let mut position = self.position;
        self.shared.position.send_replace(position);
        self.shared.health().position = position;
        self.shared.health().state = SubscriptionState::CatchingUp;
        loop {
            if *self.stop.borrow() {
                break;
            }
            match self.batch(&mut position).await {
                Ok(Batch::Full) => continue,
                Ok(Batch::CaughtUp) => {}
                Err(error) => {
                    tracing::warn!(subscription = %name, %error, "subscription batch failed; retrying");
                    self.note_error(&error.to_string());
                }
            }
            if self.pause().await {
                break;
            }
        }
        self.stopped();
    }

    fn stopped(&self) {
        self.shared.health().state = SubscriptionState::Stopped;
    }

    fn note_error(&self, error: &str) {
        self.shared.health().last_error = Some(error.to_owned());
    }

    /// Waits for a wake-up, the poll interval, or stop; `true` when stopping.
    async fn pause(&mut self) -> bool {
        let poll = tokio::time::sleep(self.shared.config.poll_interval);
        let woken = async {
            match self.wake.as_mut() {
                Some(wake) => match wake.recv().await {
                    Ok(_) => None,
                    Err(BusRecvError::Lagged { missed }) => Some(Ok(missed)),
                    Err(BusRecvError::Closed) => Some(Err(())),
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.stop.changed() => return true,
            _ = poll => {}
            outcome = woken => match outcome {
                Some(Ok(missed)) => self.shared.health().bus_messages_missed += missed,
                // The bus is gone: polling only, from now on.
                Some(Err(())) => self.wake = None,
                None => {}
            },
        }
        *self.stop.borrow()
    }

    /// Reads and handles one batch after `position`, then saves the checkpoint.
    async fn batch(&mut self, position: &mut u64) -> Result<Batch> {
        let batch_size = self.shared.config.batch_size;
        let mut reader = match self.reader.take() {
            Some(reader) if reader.reads_after(*position) => reader,
            _ => BatchReader::start(
                self.store.clone(),
                *position,
                batch_size,
                self.shared.handled,
            ),
        };
        let ReadBatch {
            head,
            latest_head,
            items,
        } = reader.next().await?;
        let read = items.len();
        let mut processed = 0;
        // Handled events that failed (and were dead-lettered), among `processed`.
        let mut failed = 0;
        // Rows that did not decode (dead-lettered, never handled), apart from them.
        let mut corrupt = 0;
        let mut last_event = None;
        let mut read_error = None;
        let start = *position;
        {
            let mut projection = self.shared.projection.lock().await;
            for item in items {
                match item {
                    Ok(event) => {
                        // A failure to record a dead letter stops the batch; what was
                        // handled before it is checkpointed below.
                        match self.handle(&mut *projection, &event).await {
                            Ok(true) => {}
                            Ok(false) => failed += 1,
                            Err(error) => {
                                read_error = Some(error);
                                break;
                            }
                        }
                        processed += 1;
                        *position = event.global_position;
                        last_event = Some((event.event_id(), event.event_type().to_owned()));
                    }
                    // Undecodable: kept in the store, dead-lettered, and passed over.
                    Err(error) => match FailedEvent::for_corrupt_row(&self.shared.name, &error) {
                        Some(letter) => {
                            let at = letter.global_position;
                            if let Err(error) = self.dead_letter(letter).await {
                                read_error = Some(error);
                                break;
                            }
                            corrupt += 1;
                            *position = at;
                        }
                        None => {
                            read_error = Some(error);
                            break;
                        }
                    },
                }
            }
        }
        let caught_up = read_error.is_none() && read < batch_size;
        if caught_up {
            // Every handled event up to `head` was in this read: `head` was read first,
            // and every store makes positions follow commit order (memory and SQLite by
            // their write lock, PostgreSQL by its append lock), so no event at or below
            // `head` can commit later.
            *position = (*position).max(head);
        }
        let last = last_event
            .as_ref()
            .map(|(id, t): &(Uuid, String)| (*id, t.as_str()));
        // Nothing new (an empty poll): no write.
        if *position != start || processed > 0 {
            self.checkpoints
                .save_progress(&self.shared.name, *position, last, processed)
                .await?;
        }
        // A full batch handled to its end and checkpointed: the reader has the next one
        // on its way.
        if read_error.is_none() && read == batch_size {
            self.reader = Some(reader);
        }
        {
            let mut health = self.shared.health();
            health.position = *position;
            health.head_position = latest_head.max(*position);
            health.events_processed += processed - failed;
            health.events_failed += failed + corrupt;
            health.state = if caught_up {
                SubscriptionState::Live
            } else {
                SubscriptionState::CatchingUp
            };
        }
        // Last, so that a `wait_for` that returns sees the health above.
        self.shared.position.send_replace(*position);
        match read_error {
            Some(error) => Err(error),
            None if caught_up => Ok(Batch::CaughtUp),
            None => Ok(Batch::Full),
        }
    }

    /// Handles one event by the retry policy; `false` when it was dead-lettered.
    async fn handle(&self, projection: &mut dyn Projection, event: &StoredEvent) -> Result<bool> {
        let policy = self.shared.config.retry;
        let mut attempt = 1;
        loop {
            let error: BoxError = match projection.handle(event).await {
                Ok(()) => return Ok(true),
                Err(error) => error,
            };
            if attempt < policy.max_attempts {
                tracing::debug!(attempt, %error, position = event.global_position, "handler failed; retrying");
                tokio::time::sleep(policy.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            tracing::warn!(
                subscription = %self.shared.name,
                position = event.global_position,
                event_type = event.event_type(),
                %error,
                "handler failed on every attempt; event dead-lettered"
            );
            self.note_error(&format!(
                "`{}` at position {}: {error}",
                event.event_type(),
                event.global_position
            ));
            self.dead_letter(FailedEvent::for_event(
                &self.shared.name,
                event,
                &error.to_string(),
                attempt,
            ))
            .await?;
            return Ok(false);
        }
    }

    async fn dead_letter(&self, failed: FailedEvent) -> Result<()> {
        self.dead_letters.add_failed_event(failed).await.map(|_| ())
    }
}
