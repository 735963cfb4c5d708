//! Snapshots in the repository: how a load starts from one, and when a save takes one.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::AggregateRepository;
use crate::aggregate::{Aggregate, AggregateRoot};
use crate::envelope::now;
use crate::snapshot::{Snapshot, SnapshotStore, SnapshotStrategy};

/// A repository's snapshot store and strategy, with the state's serde functions.
pub(super) struct Snapshots<A> {
    pub(super) store: Arc<dyn SnapshotStore>,
    pub(super) strategy: SnapshotStrategy,
    pub(super) encode: fn(&A) -> serde_json::Result<serde_json::Value>,
    pub(super) decode: fn(serde_json::Value) -> serde_json::Result<A>,
}

pub(super) fn encode_state<A: Serialize>(state: &A) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(state)
}

pub(super) fn decode_state<A: DeserializeOwned>(state: serde_json::Value) -> serde_json::Result<A> {
    serde_json::from_value(state)
}

impl<A: Aggregate> AggregateRepository<A> {
    /// The aggregate rebuilt from its snapshot, when there is a usable one.
    pub(super) async fn load_snapshot(&self, aggregate_id: Uuid) -> Option<AggregateRoot<A>> {
        let snapshots = self.snapshots.as_ref()?;
        let snapshot = match snapshots
            .store
            .get_snapshot(aggregate_id, A::AGGREGATE_TYPE)
            .await
        {
            Ok(snapshot) => snapshot?,
            Err(error) => {
                tracing::warn!(%aggregate_id, %error, "snapshot unreadable; replaying every event");
                return None;
            }
        };
        if snapshot.schema_version != A::SNAPSHOT_VERSION {
            tracing::info!(
                %aggregate_id,
                found = snapshot.schema_version,
                expected = A::SNAPSHOT_VERSION,
                "snapshot from another state schema ignored"
            );
            return None;
        }
        match (snapshots.decode)(snapshot.state) {
            Ok(state) => Some(AggregateRoot::from_state(
                aggregate_id,
                snapshot.version,
                state,
            )),
            Err(error) => {
                tracing::warn!(%aggregate_id, %error, "snapshot does not decode; replaying every event");
                None
            }
        }
    }

    pub(super) async fn snapshot_after_save(&self, root: &AggregateRoot<A>, committed: u64) {
        let Some(snapshots) = &self.snapshots else {
            return;
        };
        if !snapshots
            .strategy
            .should_snapshot(committed, root.version())
        {
            return;
        }
        let state = match (snapshots.encode)(root.state()) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%error, "state does not serialize; no snapshot taken");
                return;
            }
        };
        let snapshot = Snapshot {
            aggregate_id: root.aggregate_id(),
            aggregate_type: A::AGGREGATE_TYPE.to_owned(),
            version: root.version(),
            schema_version: A::SNAPSHOT_VERSION,
            state,
            created_at: now(),
        };
        // A snapshot only speeds up loads: failing to write one never fails the save.
        if let Err(error) = snapshots.store.save_snapshot(snapshot).await {
            tracing::warn!(%error, "snapshot not saved");
        }
    }
}
