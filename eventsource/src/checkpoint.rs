//! Checkpoints: how far each projection has read the store's global feed, so a restart
//! resumes where it stopped.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use uuid::Uuid;

use crate::envelope::now;
use crate::error::Result;
use crate::store::{EventStore, ReadOptions};

/// A projection's saved position.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The subscription / projection name.
    pub projection_name: String,
    /// The global position of the last event handled (or skipped as not handled).
    pub global_position: u64,
    /// The id of the last event handled.
    pub last_event_id: Option<Uuid>,
    /// The type of the last event handled.
    pub last_event_type: Option<String>,
    /// Events handled since the checkpoint was created (or reset).
    pub events_processed: u64,
    /// When the checkpoint last moved.
    pub last_processed_at: Option<DateTime<Utc>>,
}

/// How far behind the store's head a projection is.
#[derive(Debug, Clone, PartialEq)]
pub struct LagMetrics {
    /// The projection name.
    pub projection_name: String,
    /// The checkpoint position.
    pub global_position: u64,
    /// The newest event position of the handled types.
    pub head_position: u64,
    /// Events of the handled types after the checkpoint.
    pub events_behind: u64,
    /// Events handled so far.
    pub events_processed: u64,
    /// Time between the last handled event and the newest one (0 when caught up).
    pub lag_seconds: f64,
    /// When the checkpoint last moved.
    pub last_processed_at: Option<DateTime<Utc>>,
}

/// Where projections keep their positions: an upsert per projection name.
#[async_trait]
pub trait CheckpointStore: Send + Sync + fmt::Debug {
    /// The projection's checkpoint.
    ///
    /// # Errors
    /// Database errors.
    async fn get_checkpoint(&self, projection_name: &str) -> Result<Option<Checkpoint>>;

    /// Moves the projection's checkpoint to `position`, counting `processed` more handled
    /// events.
    ///
    /// # Errors
    /// Database errors.
    async fn save_progress(
        &self,
        projection_name: &str,
        position: u64,
        last_event: Option<(Uuid, &str)>,
        processed: u64,
    ) -> Result<()>;

    /// Every checkpoint, by name.
    ///
    /// # Errors
    /// Database errors.
    async fn get_all_checkpoints(&self) -> Result<Vec<Checkpoint>>;

    /// Deletes the projection's checkpoint (a rebuild starts from the beginning).
    ///
    /// # Errors
    /// Database errors.
    async fn reset(&self, projection_name: &str) -> Result<()>;

    /// The projection's position (`None` before its first checkpoint).
    ///
    /// # Errors
    /// Database errors.
    async fn get_position(&self, projection_name: &str) -> Result<Option<u64>> {
        Ok(self
            .get_checkpoint(projection_name)
            .await?
            .map(|c| c.global_position))
    }

    /// Records one handled event at `position` (upsert).
    ///
    /// # Errors
    /// Database errors.
    async fn save_position(
        &self,
        projection_name: &str,
        position: u64,
        event_id: Uuid,
        event_type: &str,
    ) -> Result<()> {
        self.save_progress(projection_name, position, Some((event_id, event_type)), 1)
            .await
    }
}

/// How far `projection_name` is behind `store`'s head, counting only `event_types` when
/// given. `None` when the projection has no checkpoint yet.
///
/// # Errors
/// Errors of either store.
pub async fn lag_metrics(
    checkpoints: &dyn CheckpointStore,
    store: &dyn EventStore,
    projection_name: &str,
    event_types: Option<&[&str]>,
) -> Result<Option<LagMetrics>> {
    let Some(checkpoint) = checkpoints.get_checkpoint(projection_name).await? else {
        return Ok(None);
    };
    let filtered = |options: ReadOptions| match event_types {
        Some(types) => options.event_types(types.iter().copied()),
        None => options,
    };
    let mut behind = store.read_all(filtered(
        ReadOptions::new().from_position(checkpoint.global_position),
    ));
    let mut events_behind = 0;
    let mut newest = None;
    while let Some(event) = behind.next().await {
        let event = event?;
        events_behind += 1;
        newest = Some((event.global_position, event.envelope.timestamp));
    }
    drop(behind);
    let last_handled = match checkpoint.global_position {
        0 => None,
        position => {
            let mut last = store.read_all(ReadOptions::new().from_position(position - 1).limit(1));
            match last.next().await {
                Some(event) => Some(event?.envelope.timestamp),
                None => None,
            }
        }
    };
    let lag_seconds = match (newest, last_handled) {
        (Some((_, newest)), Some(last)) => {
            (newest - last).num_milliseconds().max(0) as f64 / 1000.0
        }
        _ => 0.0,
    };
    Ok(Some(LagMetrics {
        projection_name: projection_name.to_owned(),
        global_position: checkpoint.global_position,
        head_position: newest.map_or(checkpoint.global_position, |(p, _)| p),
        events_behind,
        events_processed: checkpoint.events_processed,
        lag_seconds,
        last_processed_at: checkpoint.last_processed_at,
    }))
}

/// Checkpoints in process memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpointStore {
    checkpoints: Arc<RwLock<HashMap<String, Checkpoint>>>,
}

impl InMemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CheckpointStore for InMemoryCheckpointStore {
    async fn get_checkpoint(&self, projection_name: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .checkpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(projection_name)
            .cloned())
    }

    async fn save_progress(
        &self,
        projection_name: &str,
        position: u64,
        last_event: Option<(Uuid, &str)>,
        processed: u64,
    ) -> Result<()> {
        let mut checkpoints = self
            .checkpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let checkpoint = checkpoints
            .entry(projection_name.to_owned())
            .or_insert_with(|| Checkpoint {
                projection_name: projection_name.to_owned(),
                global_position: 0,
                last_event_id: None,
                last_event_type: None,
                events_processed: 0,
                last_processed_at: None,
            });
        checkpoint.global_position = position;
        if let Some((id, event_type)) = last_event {
            checkpoint.last_event_id = Some(id);
            checkpoint.last_event_type = Some(event_type.to_owned());
        }
        checkpoint.events_processed += processed;
        checkpoint.last_processed_at = Some(now());
        Ok(())
    }

    async fn get_all_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let mut all: Vec<Checkpoint> = self
            .checkpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.projection_name.cmp(&b.projection_name));
        Ok(all)
    }

    async fn reset(&self, projection_name: &str) -> Result<()> {
        self.checkpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(projection_name);
        Ok(())
    }
}
