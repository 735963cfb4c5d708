//! The [`OutboxStore`] of [`SqliteEventStore`]: the `event_outbox` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::{format_timestamp, parse_timestamp};
use super::{db_error, SqliteEventStore};
use crate::envelope::now;
use crate::error::{Error, Result};
use crate::outbox::{
    readable_entries, stats_from_counts, OutboxEntry, OutboxStats, OutboxStatus, OutboxStore,
};
use crate::store::schema_state::Need;
use crate::store::{clamp_timestamp, quoted};
use crate::stored::StoredEvent;

const COLUMNS: &str =
    "id, event_id, event_type, aggregate_id, aggregate_type, tenant_id, global_position, \
     event_data, created_at, published_at, retry_count, last_error, status";

/// The query of entries in id order (the limit bound), of one status or of all. The
/// status is a literal (one of three fixed words), so that SQLite can use the partial
/// index of pending entries, which a bound parameter would not let it prove applies.
fn entries_sql(status: Option<OutboxStatus>) -> String {
    let filter = status.map_or(String::new(), |s| {
        format!("WHERE status = '{}' ", s.as_str())
    });
    format!("SELECT {COLUMNS} FROM event_outbox {filter}ORDER BY id LIMIT ?")
}

/// Rows deleted per statement when pruning: each statement holds the write lock briefly.
const PRUNE_CHUNK: i64 = 5_000;

/// `ids` as the JSON array `json_each` reads in SQL.
fn id_list(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

fn decode(row: &SqliteRow) -> Result<OutboxEntry> {
    let op = "get_outbox_entries";
    let id: i64 = row.try_get(0).map_err(db_error(op))?;
    let invalid = |detail: String| Error::Database {
        operation: op,
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: format!("outbox entry {id}: {detail}").into(),
    };
    let text = |i: usize| row.try_get::<String, _>(i).map_err(db_error(op));
    let optional = |i: usize| row.try_get::<Option<String>, _>(i).map_err(db_error(op));
    let uuid = |value: String| {
        Uuid::parse_str(&value).map_err(|e| invalid(format!("{}: {e}", quoted(&value))))
    };
    let timestamp = |value: String| {
        parse_timestamp(&value)
            .ok_or_else(|| invalid(format!("{} is not a timestamp", quoted(&value))))
    };
    let position: i64 = row.try_get(6).map_err(db_error(op))?;
    let retries: i64 = row.try_get(10).map_err(db_error(op))?;
    let status = text(12)?;
    Ok(OutboxEntry {
        id,
        event_id: uuid(text(1)?)?,
        event_type: text(2)?,
        aggregate_id: uuid(text(3)?)?,
        aggregate_type: text(4)?,
        tenant_id: optional(5)?.map(uuid).transpose()?,
        global_position: u64::try_from(position).unwrap_or(0),
        event_data: serde_json::from_str(&text(7)?)
            .map_err(|e| invalid(format!("event_data: {e}")))?,
        created_at: timestamp(text(8)?)?,
        published_at: optional(9)?.map(timestamp).transpose()?,
        retry_count: u32::try_from(retries).unwrap_or(u32::MAX),
        last_error: optional(11)?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| invalid(format!("unknown status `{status}`")))?,
    })
}

impl SqliteEventStore {
    /// The rows of `event_outbox`, each decoded, with its id when that reads.
    async fn read_entries(
        &self,
        status: Option<OutboxStatus>,
        limit: u64,
    ) -> Result<Vec<(Option<i64>, Result<OutboxEntry>)>> {
        self.ready("get_outbox_entries", Need::Table("event_outbox"), false)
            .await?;
        // One statement per case: `(? IS NULL OR status = ?)` would keep SQLite from the
        // index of pending entries, and the pending query would pass over every published
        // row.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(&entries_sql(status))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("get_outbox_entries"))?;
        Ok(rows
            .iter()
            .map(|row| (row.try_get::<i64, _>(0).ok(), decode(row)))
            .collect())
    }

    async fn update_outbox(
        &self,
        id: i64,
        operation: &'static str,
        sql: &str,
        error: Option<&str>,
    ) -> Result<()> {
        self.ready(operation, Need::Table("event_outbox"), true)
            .await?;
        let mut query = sqlx::query(sql);
        if let Some(error) = error {
            query = query.bind(error);
        } else {
            query = query.bind(format_timestamp(now()));
        }
        let done = query
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error(operation))?;
        if done.rows_affected() == 0 {
            return Err(Error::OutboxEntryNotFound { id });
        }
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for SqliteEventStore {
    async fn add_event(&self, event: &StoredEvent) -> Result<i64> {
        self.ready("add_outbox_event", Need::Table("event_outbox"), true)
            .await?;
        let entry = OutboxEntry::for_event(event)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO event_outbox (event_id, event_type, aggregate_id, aggregate_type, tenant_id, \
                 global_position, event_data, created_at, status) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending') RETURNING id",
        )
        .bind(entry.event_id.to_string())
        .bind(&entry.event_type)
        .bind(entry.aggregate_id.to_string())
        .bind(&entry.aggregate_type)
        .bind(entry.tenant_id.map(|t| t.to_string()))
        .bind(i64::try_from(entry.global_position).unwrap_or(i64::MAX))
        .bind(entry.event_data.to_string())
        .bind(format_timestamp(now()))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("add_outbox_event"))?;
        Ok(id)
    }

    async fn stats(&self) -> Result<OutboxStats> {
        self.ready("outbox_stats", Need::Table("event_outbox"), false)
            .await?;
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM event_outbox GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("outbox_stats"))?;
        // The oldest pending entry as the listings read it (without marking a row that
        // does not read: a statistic changes nothing).
        let oldest = self
            .read_entries(Some(OutboxStatus::Pending), 1)
            .await?
            .into_iter()
            .find_map(|(_, entry)| entry.ok())
            .map(|entry| entry.created_at);
        Ok(stats_from_counts(counts, oldest))
    }

    async fn get_pending_events(&self, limit: u64) -> Result<Vec<OutboxEntry>> {
        let rows = self
            .read_entries(Some(OutboxStatus::Pending), limit)
            .await?;
        readable_entries(self, rows, true).await
    }

    async fn get_entries(
        &self,
        status: Option<OutboxStatus>,
        limit: u64,
    ) -> Result<Vec<OutboxEntry>> {
        let rows = self.read_entries(status, limit).await?;
        readable_entries(self, rows, false).await
    }

    async fn mark_published(&self, id: i64) -> Result<()> {
        self.update_outbox(
            id,
            "mark_published",
            "UPDATE event_outbox SET status = 'published', published_at = ? WHERE id = ?",
            None,
        )
        .await
    }

    async fn mark_published_batch(&self, ids: &[i64]) -> Result<()> {
        const OP: &str = "mark_published";
        self.ready(OP, Need::Table("event_outbox"), true).await?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(OP))?;
        let done = sqlx::query(
            "UPDATE event_outbox SET status = 'published', published_at = ? \
             WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(format_timestamp(now()))
        .bind(id_list(ids))
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if done.rows_affected() != distinct.len() as u64 {
            let found: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM event_outbox WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(id_list(ids))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error(OP))?;
            let _ = tx.rollback().await;
            let id = distinct
                .into_iter()
                .find(|id| !found.contains(id))
                .unwrap_or_default();
            return Err(Error::OutboxEntryNotFound { id });
        }
        tx.commit().await.map_err(db_error(OP))
    }

    async fn delete_entries(&self, ids: &[i64]) -> Result<u64> {
        self.ready("delete_outbox_entries", Need::Table("event_outbox"), true)
            .await?;
        let done =
            sqlx::query("DELETE FROM event_outbox WHERE id IN (SELECT value FROM json_each(?))")
                .bind(id_list(ids))
                .execute(&self.pool)
                .await
                .map_err(db_error("delete_outbox_entries"))?;
        Ok(done.rows_affected())
    }

    async fn prune_published(&self, published_before: DateTime<Utc>) -> Result<u64> {
        const OP: &str = "prune_outbox";
        self.ready(OP, Need::Table("event_outbox"), true).await?;
        let before = format_timestamp(clamp_timestamp(published_before));
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM event_outbox WHERE id IN (SELECT id FROM event_outbox \
                 WHERE status = 'published' AND published_at < ? ORDER BY id LIMIT ?)",
            )
            .bind(&before)
            .bind(PRUNE_CHUNK)
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
            deleted += done.rows_affected();
            if done.rows_affected() < PRUNE_CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }

    async fn increment_retry(&self, id: i64, error: &str) -> Result<u32> {
        self.ready("increment_retry", Need::Table("event_outbox"), true)
            .await?;
        let count: Option<i64> = sqlx::query_scalar(
            "UPDATE event_outbox SET retry_count = retry_count + 1, last_error = ? WHERE id = ? RETURNING retry_count",
        )
        .bind(error)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("increment_retry"))?;
        let count = count.ok_or(Error::OutboxEntryNotFound { id })?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn mark_failed(&self, id: i64) -> Result<()> {
        self.ready("mark_failed", Need::Table("event_outbox"), true)
            .await?;
        let done = sqlx::query("UPDATE event_outbox SET status = 'failed' WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error("mark_failed"))?;
        if done.rows_affected() == 0 {
            return Err(Error::OutboxEntryNotFound { id });
        }
        Ok(())
    }

    async fn retry_failed(&self, ids: Option<&[i64]>) -> Result<u64> {
        const OP: &str = "retry_failed";
        self.ready(OP, Need::Table("event_outbox"), true).await?;
        // The ids as a JSON array (all failed entries when none is given).
        let chosen = ids.map(|ids| serde_json::Value::from(ids.to_vec()).to_string());
        let filter =
            "status = 'failed' AND (?1 IS NULL OR id IN (SELECT value FROM json_each(?1)))";
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(OP))?;
        let moved = async {
            let inserted = sqlx::query(&format!(
                "INSERT INTO event_outbox (event_id, event_type, aggregate_id, aggregate_type, tenant_id, \
                     global_position, event_data, created_at, status) \
                 SELECT event_id, event_type, aggregate_id, aggregate_type, tenant_id, global_position, \
                     event_data, created_at, 'pending' FROM event_outbox WHERE {filter} ORDER BY id"
            ))
            .bind(&chosen)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!("DELETE FROM event_outbox WHERE {filter}"))
                .bind(&chosen)
                .execute(&mut *tx)
                .await?;
            Ok::<u64, sqlx::Error>(inserted.rows_affected())
        }
        .await;
        match moved {
            Ok(moved) => {
                tx.commit().await.map_err(db_error(OP))?;
                Ok(moved)
            }
            Err(error) => {
                let _ = tx.rollback().await;
                Err(db_error(OP)(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entries_sql;
    use crate::SqliteEventStore;

    /// The relay's pending query walks the partial index of pending entries: it reads
    /// them only, however many published ones come before them.
    #[tokio::test]
    async fn the_pending_query_is_served_by_the_index_of_pending_entries() {
        let store = SqliteEventStore::open(":memory:").await.unwrap();
        store.initialize().await.unwrap();
        let sql = entries_sql(Some(crate::OutboxStatus::Pending));
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(10_i64)
                .fetch_all(store.pool())
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING INDEX idx_outbox_pending")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:?}"
        );
    }
}
