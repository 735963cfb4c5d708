//! The [`OutboxStore`] of [`SqliteEventStore`]: the `event_outbox` table.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::{format_timestamp, parse_timestamp};
use super::{db_error, SqliteEventStore};
use crate::envelope::now;
use crate::error::{Error, Result};
use crate::outbox::{readable_entries, OutboxEntry, OutboxStatus, OutboxStore};
use crate::store::quoted;
use crate::store::schema_state::Need;
use crate::stored::StoredEvent;

const COLUMNS: &str =
    "id, event_id, event_type, aggregate_id, aggregate_type, tenant_id, global_position, \
     event_data, created_at, published_at, retry_count, last_error, status";

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
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM event_outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id LIMIT ?2"
        ))
        .bind(status.map(OutboxStatus::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
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
}
