//! [`AggregateRepository`]: loads aggregates from their events (starting from a snapshot
//! when there is one) and saves their new events with optimistic concurrency.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::envelope::NewEvent;
use crate::error::{BoxError, Error, Result};
use crate::panics::catch_unwind;
use crate::snapshot::{SnapshotStore, SnapshotStrategy};
use crate::store::{AppendResult, EventStore, ExpectedVersion, GetEventsOptions};
use crate::stored::StoredEvent;

mod execute;
mod snapshots;

pub use execute::DEFAULT_COMMAND_ATTEMPTS;

use snapshots::{decode_state, encode_state, Snapshots};

/// Receives the events of every successful save (an event bus, a message broker).
#[async_trait]
pub trait EventPublisher: Send + Sync + fmt::Debug {
    /// Publishes events that are already stored, in order.
    ///
    /// # Errors
    /// Whatever the transport reports; the repository turns it into
    /// [`Error::PublishFailed`] (the events stay stored).
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), BoxError>;
}

/// The error of [`AggregateRepository::execute`] and
/// [`AggregateRepository::execute_with_retry`]: the command's own rejection, or a store
/// error.
///
/// It is a `std::error::Error` whenever the rejection displays (a `String` will do), so
/// `?` takes it into `Box<dyn Error>` or `anyhow`; the rejection is part of the message
/// (`command rejected: ...`), and [`source`](std::error::Error::source) is the store
/// error for [`Store`](Self::Store).
#[derive(Debug)]
pub enum CommandError<E> {
    /// The command refused (a business rule); nothing was saved.
    Rejected(E),
    /// Loading or saving failed (including a conflict that outlasted every retry).
    Store(Error),
}

impl<E> From<Error> for CommandError<E> {
    fn from(error: Error) -> Self {
        CommandError::Store(error)
    }
}

impl<E: fmt::Display> fmt::Display for CommandError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Rejected(reason) => write!(f, "command rejected: {reason}"),
            CommandError::Store(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl<E: fmt::Display + fmt::Debug> std::error::Error for CommandError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommandError::Rejected(_) => None,
            CommandError::Store(error) => std::error::Error::source(error),
        }
    }
}

/// Loads and saves aggregates of type `A` through any [`EventStore`].
///
/// ```
/// # use eventsource::prelude::*;
/// # use eventsource::{aggregate, AggregateRepository};
/// # use serde::{Deserialize, Serialize};
/// # use std::sync::Arc;
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct Incremented { by: u32 }
/// # #[derive(Debug, Default)]
/// # struct Counter { total: u32 }
/// # #[aggregate(name = "Counter")]
/// # impl Counter {
/// #     #[apply]
/// #     fn incremented(&mut self, e: &Incremented) { self.total += e.by; }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// let repo = AggregateRepository::<Counter>::new(Arc::new(InMemoryEventStore::new()));
/// let id = uuid::Uuid::new_v4();
/// let mut counter = repo.create_new(id);
/// counter.apply_event(Incremented { by: 3 });
/// repo.save(&mut counter).await?;
///
/// let loaded = repo.load(id).await?;
/// assert_eq!((loaded.version(), loaded.state().total), (1, 3));
/// # Ok(()) }
/// ```
pub struct AggregateRepository<A: Aggregate> {
    store: Arc<dyn EventStore>,
    publisher: Option<Arc<dyn EventPublisher>>,
    snapshots: Option<Snapshots<A>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> fmt::Debug for AggregateRepository<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateRepository")
            .field("aggregate_type", &A::AGGREGATE_TYPE)
            .field("store", &self.store)
            .field("publisher", &self.publisher)
            .field("snapshots", &self.snapshots.as_ref().map(|s| s.strategy))
            .finish()
    }
}

impl<A: Aggregate> AggregateRepository<A> {
    /// A repository over `store`, without publisher or snapshots.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        AggregateRepository {
            store,
            publisher: None,
            snapshots: None,
            _aggregate: PhantomData,
        }
    }

    /// Hands the events of every successful save to `publisher`.
    pub fn with_publisher(mut self, publisher: Arc<dyn EventPublisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Takes snapshots into `store` by `strategy`, and starts loads from the latest one.
    /// The state is stored as JSON; a snapshot whose schema version is not
    /// `A::SNAPSHOT_VERSION` (`#[aggregate(snapshot_version = N)]`) is ignored.
    pub fn with_snapshots(
        mut self,
        store: Arc<dyn SnapshotStore>,
        strategy: SnapshotStrategy,
    ) -> Self
    where
        A: Serialize + DeserializeOwned,
    {
        self.snapshots = Some(Snapshots {
            store,
            strategy,
            encode: encode_state::<A>,
            decode: decode_state::<A>,
        });
        self
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// A new aggregate (version 0, initial state); nothing is stored until
    /// [`save`](Self::save).
    pub fn create_new(&self, aggregate_id: Uuid) -> AggregateRoot<A> {
        AggregateRoot::new(aggregate_id)
    }

    /// `true` when the aggregate has stored events.
    ///
    /// # Errors
    /// Store errors.
    pub async fn exists(&self, aggregate_id: Uuid) -> Result<bool> {
        Ok(self
            .store
            .get_stream_version(aggregate_id, A::AGGREGATE_TYPE)
            .await?
            > 0)
    }

    /// Loads an aggregate: the latest usable snapshot, then the events after it.
    ///
    /// # Errors
    /// [`Error::AggregateNotFound`] when it has no events; [`Error::UnhandledEvent`] for an
    /// event it cannot apply (naming type and position); store errors.
    pub async fn load(&self, aggregate_id: Uuid) -> Result<AggregateRoot<A>> {
        let root = self.load_or_create(aggregate_id).await?;
        if root.version() == 0 {
            return Err(Error::AggregateNotFound {
                aggregate_id,
                aggregate_type: A::AGGREGATE_TYPE.to_owned(),
            });
        }
        Ok(root)
    }

    /// Loads an aggregate, or returns a new one when it has no events.
    ///
    /// # Errors
    /// As [`load`](Self::load), without the not-found case.
    pub async fn load_or_create(&self, aggregate_id: Uuid) -> Result<AggregateRoot<A>> {
        let span = tracing::debug_span!("load", aggregate_type = A::AGGREGATE_TYPE, %aggregate_id);
        tracing::Instrument::instrument(self.load_inner(aggregate_id), span).await
    }

    async fn load_inner(&self, aggregate_id: Uuid) -> Result<AggregateRoot<A>> {
        let mut root = match self.load_snapshot(aggregate_id).await {
            Some(root) => root,
            None => AggregateRoot::new(aggregate_id),
        };
        let from = root.version() + 1;
        let mut replayed = self.replay_into(&mut root, from).await?;
        if root.version() > 0 && replayed == 0 {
            // A snapshot ahead of the stream (the event store was reset, say) must not
            // bring back an aggregate the events do not have.
            let stored = self
                .store
                .get_stream_version(aggregate_id, A::AGGREGATE_TYPE)
                .await?;
            if stored < root.version() {
                tracing::warn!(
                    %aggregate_id,
                    snapshot = root.version(),
                    stream = stored,
                    "snapshot ahead of the stream ignored"
                );
                root = AggregateRoot::new(aggregate_id);
                replayed = self.replay_into(&mut root, 1).await?;
            }
        }
        if crate::EventRegistry::global().has_splits() {
            // A split row that reads as no event still counts in the stream's version:
            // read it from the same rows (another query could see a later append).
            self.catch_up_rows_without_events(&mut root).await?;
        }
        tracing::debug!(version = root.version(), replayed, "loaded");
        Ok(root)
    }

    /// Applies the stream's events from version `from` on to `root`, page by page as
    /// they are read (a long stream is never held whole); how many were applied.
    async fn replay_into(&self, root: &mut AggregateRoot<A>, from: u64) -> Result<usize> {
        use futures::TryStreamExt;
        let mut pages =
            self.store
                .replay_stream_pages(root.aggregate_id(), A::AGGREGATE_TYPE, from);
        let mut replayed = 0;
        while let Some(page) = pages.try_next().await? {
            for event in &page {
                root.replay(event)?;
            }
            replayed += page.len();
        }
        Ok(replayed)
    }

    /// Moves `root` to the version of the last row of its stream when the rows after its
    /// version (read in one query) hold no event: split rows that read as nothing. Rows
    /// with events are left for the next load (they were appended after the replay).
    async fn catch_up_rows_without_events(&self, root: &mut AggregateRoot<A>) -> Result<()> {
        let after = self
            .store
            .get_events(
                root.aggregate_id(),
                A::AGGREGATE_TYPE,
                GetEventsOptions::from_version(root.version() + 1),
            )
            .await?;
        if after.events.is_empty() && after.version > root.version() {
            root.set_replayed_version(after.version);
        }
        Ok(())
    }

    /// Appends the aggregate's uncommitted events, expecting the version it was loaded at.
    /// On success they are cleared, a snapshot is taken when the strategy says so, and the
    /// stored events are handed to the publisher. With nothing to save it returns at once
    /// (global position 0).
    ///
    /// # Errors
    /// [`Error::OptimisticLock`] when another writer saved first: the events stay
    /// uncommitted on `root` (reload and re-run the command, or use
    /// [`execute_with_retry`](Self::execute_with_retry)); [`Error::PublishFailed`] when the
    /// events were stored but publishing failed; store errors.
    pub async fn save(&self, root: &mut AggregateRoot<A>) -> Result<AppendResult> {
        let span = tracing::debug_span!(
            "save",
            aggregate_type = A::AGGREGATE_TYPE,
            aggregate_id = %root.aggregate_id(),
            count = root.uncommitted_events().len()
        );
        tracing::Instrument::instrument(self.save_inner(root), span).await
    }

    async fn save_inner(&self, root: &mut AggregateRoot<A>) -> Result<AppendResult> {
        if !root.has_uncommitted_events() {
            return Ok(AppendResult {
                new_version: root.version(),
                global_position: 0,
                already_stored: false,
            });
        }
        let committed = root.committed_version();
        let events = root.take_uncommitted();
        let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id()).collect();
        let appended = self
            .store
            .append_events(
                root.aggregate_id(),
                A::AGGREGATE_TYPE,
                events.clone(),
                ExpectedVersion::from(committed),
            )
            .await;
        let mut result = match appended {
            Ok(result) => result,
            Err(error) => {
                root.restore_uncommitted(events);
                return Err(error);
            }
        };
        if result.new_version != root.version() {
            if let Some(last_position) = self.stored_as_sent(root, committed, &events).await? {
                // A save retried after a lost acknowledgement, with another writer's events
                // after it: these very events are stored, at the versions this root gave
                // them.
                result.new_version = root.version();
                result.global_position = last_position;
            }
        }
        if result.new_version != root.version() {
            // Some events were stored already (reused event ids): the store skipped them,
            // but this root applied them again and no longer matches the stream.
            return Err(Error::OptimisticLock {
                aggregate_id: root.aggregate_id(),
                aggregate_type: A::AGGREGATE_TYPE.to_owned(),
                expected: ExpectedVersion::Exact(root.version()),
                actual: result.new_version,
            });
        }
        tracing::debug!(
            new_version = result.new_version,
            global_position = result.global_position,
            "saved"
        );
        self.snapshot_after_save(root, committed).await;
        if let Some(publisher) = &self.publisher {
            self.publish(publisher.as_ref(), root, committed, &ids, result)
                .await?;
        }
        Ok(result)
    }

    /// The global position of the last of `events` when the stream holds exactly them
    /// right after version `committed`, in order; `None` otherwise.
    async fn stored_as_sent(
        &self,
        root: &AggregateRoot<A>,
        committed: u64,
        events: &[NewEvent],
    ) -> Result<Option<u64>> {
        let stream = self
            .store
            .get_events(
                root.aggregate_id(),
                A::AGGREGATE_TYPE,
                GetEventsOptions::from_version(committed + 1),
            )
            .await?;
        let stored = stream.events.get(..events.len());
        let same = stored.is_some_and(|stored| {
            stored
                .iter()
                .zip(events)
                .all(|(s, e)| s.event_id() == e.event_id())
        });
        Ok(same
            .then(|| stored.and_then(|s| s.last()).map(|e| e.global_position))
            .flatten())
    }

    /// Publishes the saved events as the store holds them (positions included).
    async fn publish(
        &self,
        publisher: &dyn EventPublisher,
        root: &AggregateRoot<A>,
        committed: u64,
        ids: &HashSet<Uuid>,
        result: AppendResult,
    ) -> Result<()> {
        let failed = |source: BoxError| Error::PublishFailed {
            new_version: result.new_version,
            global_position: result.global_position,
            source,
        };
        let stream = self
            .store
            .get_events(
                root.aggregate_id(),
                A::AGGREGATE_TYPE,
                GetEventsOptions::from_version(committed + 1),
            )
            .await
            .map_err(|e| failed(Box::new(e)))?;
        let saved: Vec<StoredEvent> = stream
            .events
            .into_iter()
            .filter(|e| ids.contains(&e.event_id()))
            .collect();
        // A panicking publisher is a failed publish: the events are stored either way.
        match catch_unwind(publisher.publish(&saved)).await {
            Ok(result) => result.map_err(failed),
            Err(panic) => Err(failed(format!("publisher {panic}").into())),
        }
    }
}
