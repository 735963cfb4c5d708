//! The [`OutboxStore`] of [`InMemoryEventStore`]: entries by id, in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryEventStore;
use crate::envelope::now;
use crate::error::{Error, Result};
use crate::outbox::{OutboxEntry, OutboxStats, OutboxStatus, OutboxStore};
use crate::stored::StoredEvent;

impl InMemoryEventStore {
    fn outbox_entry<T>(&self, id: i64, change: impl FnOnce(&mut OutboxEntry) -> T) -> Result<T> {
        let mut state = self.write();
        let entry = state
            .outbox
            .get_mut(&id)
            .ok_or(Error::OutboxEntryNotFound { id })?;
        Ok(change(entry))
    }
}

#[async_trait]
impl OutboxStore for InMemoryEventStore {
    async fn add_event(&self, event: &StoredEvent) -> Result<i64> {
        let mut entry = OutboxEntry::for_event(event)?;
        let mut state = self.write();
        state.last_outbox_id += 1;
        entry.id = state.last_outbox_id;
        let id = entry.id;
        state.outbox.insert(id, entry);
        Ok(id)
    }

    async fn stats(&self) -> Result<OutboxStats> {
        let state = self.read();
        let mut stats = OutboxStats::default();
        for entry in state.outbox.values() {
            match entry.status {
                OutboxStatus::Pending => {
                    stats.pending += 1;
                    if stats.oldest_pending_at.is_none() {
                        stats.oldest_pending_at = Some(entry.created_at);
                    }
                }
                OutboxStatus::Published => stats.published += 1,
                OutboxStatus::Failed => stats.failed += 1,
            }
        }
        Ok(stats)
    }

    async fn get_pending_events(&self, limit: u64) -> Result<Vec<OutboxEntry>> {
        self.get_entries(Some(OutboxStatus::Pending), limit).await
    }

    async fn get_entries(
        &self,
        status: Option<OutboxStatus>,
        limit: u64,
    ) -> Result<Vec<OutboxEntry>> {
        Ok(self
            .read()
            .outbox
            .values()
            .filter(|e| status.is_none_or(|s| e.status == s))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn mark_published(&self, id: i64) -> Result<()> {
        self.outbox_entry(id, |entry| {
            entry.status = OutboxStatus::Published;
            entry.published_at = Some(now());
        })
    }

    async fn mark_published_batch(&self, ids: &[i64]) -> Result<()> {
        let mut state = self.write();
        // All or none, as the SQL stores do.
        if let Some(id) = ids.iter().find(|id| !state.outbox.contains_key(id)) {
            return Err(Error::OutboxEntryNotFound { id: *id });
        }
        let at = now();
        for id in ids {
            if let Some(entry) = state.outbox.get_mut(id) {
                entry.status = OutboxStatus::Published;
                entry.published_at = Some(at);
            }
        }
        Ok(())
    }

    async fn delete_entries(&self, ids: &[i64]) -> Result<u64> {
        let mut state = self.write();
        Ok(ids
            .iter()
            .filter(|id| state.outbox.remove(id).is_some())
            .count() as u64)
    }

    async fn prune_published(&self, published_before: DateTime<Utc>) -> Result<u64> {
        let mut state = self.write();
        let before = state.outbox.len();
        state.outbox.retain(|_, entry| {
            entry.status != OutboxStatus::Published
                || entry.published_at.is_none_or(|at| at >= published_before)
        });
        Ok((before - state.outbox.len()) as u64)
    }

    async fn increment_retry(&self, id: i64, error: &str) -> Result<u32> {
        self.outbox_entry(id, |entry| {
            entry.retry_count += 1;
            entry.last_error = Some(error.to_owned());
            entry.retry_count
        })
    }

    async fn mark_failed(&self, id: i64) -> Result<()> {
        self.outbox_entry(id, |entry| entry.status = OutboxStatus::Failed)
    }

    async fn retry_failed(&self, ids: Option<&[i64]>) -> Result<u64> {
        let mut state = self.write();
        let failed: Vec<i64> = state
            .outbox
            .values()
            .filter(|e| e.status == OutboxStatus::Failed)
            .filter(|e| ids.is_none_or(|ids| ids.contains(&e.id)))
            .map(|e| e.id)
            .collect();
        for id in &failed {
            let Some(mut entry) = state.outbox.remove(id) else {
                continue;
            };
            state.last_outbox_id += 1;
            entry.id = state.last_outbox_id;
            entry.status = OutboxStatus::Pending;
            entry.retry_count = 0;
            entry.last_error = None;
            entry.published_at = None;
            state.outbox.insert(entry.id, entry);
        }
        Ok(failed.len() as u64)
    }
}
