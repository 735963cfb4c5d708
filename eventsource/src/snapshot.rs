//! Snapshots: an aggregate's state saved at a version, so loading replays only the newer
//! events.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};

/// An aggregate's state as JSON, at a version, written with a state schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The aggregate id.
    pub aggregate_id: Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate version the state is at.
    pub version: u64,
    /// [`crate::Aggregate::SNAPSHOT_VERSION`] of the code that wrote it.
    pub schema_version: u32,
    /// The serialized state.
    pub state: serde_json::Value,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
}

/// Where snapshots are kept. One snapshot per aggregate: saving replaces the previous one,
/// unless that one is at a higher version.
#[async_trait]
pub trait SnapshotStore: Send + Sync + fmt::Debug {
    /// Saves `snapshot`, replacing the aggregate's previous one.
    ///
    /// # Errors
    /// Database errors.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()>;

    /// The aggregate's latest snapshot.
    ///
    /// # Errors
    /// Database errors; [`Error::CorruptEvent`]-like decoding problems are reported as
    /// [`Error::Database`] with the operation `get_snapshot`.
    async fn get_snapshot(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>>;

    /// Deletes the aggregate's snapshot, if any.
    ///
    /// # Errors
    /// Database errors.
    async fn delete_snapshot(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<()>;
}

/// When the repository takes a snapshot.
///
/// ```
/// use std::sync::Arc;
/// use eventsource::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # #[event(aggregate = "Counter")]
/// # struct Incremented { by: u32 }
///
/// #[derive(Debug, Default, Serialize, Deserialize)] // the state is stored as JSON
/// struct Counter { total: u32 }
///
/// #[aggregate(name = "Counter", snapshot_version = 1)]
/// impl Counter {
///     #[apply]
///     fn incremented(&mut self, e: &Incremented) { self.total += e.by; }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventsource::Result<()> {
/// let snapshots = Arc::new(InMemorySnapshotStore::new());
/// let repo = AggregateRepository::<Counter>::new(Arc::new(InMemoryEventStore::new()))
///     .with_snapshots(snapshots.clone(), SnapshotStrategy::every(100)?);
/// assert!(SnapshotStrategy::every(0).is_err());
///
/// let id = uuid::Uuid::new_v4();
/// let mut counter = repo.create_new(id);
/// for _ in 0..150 {
///     counter.apply_event(Incremented { by: 1 });
/// }
/// repo.save(&mut counter).await?; // crosses 100: a snapshot at version 150
/// use eventsource::SnapshotStore;
/// assert_eq!(snapshots.get_snapshot(id, "Counter").await?.map(|s| s.version), Some(150));
/// assert_eq!(repo.load(id).await?.state().total, 150); // from the snapshot, no replay
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStrategy {
    /// After a save that reaches or crosses a multiple of `n` events.
    EveryNEvents(u64),
}

impl SnapshotStrategy {
    /// Every `n` events.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] when `n` is 0.
    pub fn every(n: u64) -> Result<Self> {
        if n == 0 {
            return Err(Error::InvalidConfiguration {
                message: "a snapshot every 0 events: use a positive number".into(),
            });
        }
        Ok(SnapshotStrategy::EveryNEvents(n))
    }

    /// `true` when a save that moved the aggregate from `before` to `after` should take a
    /// snapshot.
    pub fn should_snapshot(self, before: u64, after: u64) -> bool {
        match self {
            SnapshotStrategy::EveryNEvents(0) => false,
            SnapshotStrategy::EveryNEvents(n) => after / n > before / n,
        }
    }
}

/// Snapshots in process memory, for tests.
#[derive(Debug, Clone, Default)]
pub struct InMemorySnapshotStore {
    snapshots: Arc<RwLock<HashMap<(Uuid, String), Snapshot>>>,
}

impl InMemorySnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of snapshots held.
    pub fn len(&self) -> usize {
        self.snapshots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// `true` when no snapshot is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SnapshotStore for InMemorySnapshotStore {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let key = (snapshot.aggregate_id, snapshot.aggregate_type.clone());
        let mut snapshots = self
            .snapshots
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Keep the newer one, as the SQLite store does.
        if snapshots
            .get(&key)
            .is_none_or(|old| old.version <= snapshot.version)
        {
            snapshots.insert(key, snapshot);
        }
        Ok(())
    }

    async fn get_snapshot(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>> {
        Ok(self
            .snapshots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(aggregate_id, aggregate_type.to_owned()))
            .cloned())
    }

    async fn delete_snapshot(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<()> {
        self.snapshots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(aggregate_id, aggregate_type.to_owned()));
        Ok(())
    }
}
