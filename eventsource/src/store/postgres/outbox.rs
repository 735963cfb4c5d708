//! The [`OutboxStore`] of [`PostgresEventStore`]: the `event_outbox` table, filled in
//! the append's transaction when the store has the outbox on.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::StoredTime;
use super::{db_error, to_i64, PostgresEventStore};
use crate::error::{Error, Result};
use crate::outbox::{readable_entries, OutboxEntry, OutboxStatus, OutboxStore};
use crate::store::schema_state::Need;
use crate::stored::StoredEvent;

const COLUMNS: &str =
    "id, event_id, event_type, aggregate_id, aggregate_type, tenant_id, global_position, \
     event_data::text, created_at, published_at, retry_count, last_error, status";

fn decode(row: &PgRow) -> Result<OutboxEntry> {
    let op = "get_outbox_entries";
    let id: i64 = row.try_get(0).map_err(db_error(op))?;
    let invalid = |detail: String| Error::Database {
        operation: op,
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: format!("outbox entry {id}: {detail}").into(),
    };
    let position: i64 = row.try_get(6).map_err(db_error(op))?;
    let retries: i32 = row.try_get(10).map_err(db_error(op))?;
    let status: String = row.try_get(12).map_err(db_error(op))?;
    let data: String = row.try_get(7).map_err(db_error(op))?;
    Ok(OutboxEntry {
        id,
        event_id: row.try_get::<Uuid, _>(1).map_err(db_error(op))?,
        event_type: row.try_get(2).map_err(db_error(op))?,
        aggregate_id: row.try_get::<Uuid, _>(3).map_err(db_error(op))?,
        aggregate_type: row.try_get(4).map_err(db_error(op))?,
        tenant_id: row.try_get::<Option<Uuid>, _>(5).map_err(db_error(op))?,
        global_position: u64::try_from(position).unwrap_or(0),
        event_data: serde_json::from_str(&data).map_err(|e| invalid(format!("event_data: {e}")))?,
        created_at: row
            .try_get::<StoredTime, _>(8)
            .map_err(db_error(op))?
            .time()
            .map_err(|e| invalid(format!("created_at: {e}")))?,
        published_at: row
            .try_get::<Option<StoredTime>, _>(9)
            .map_err(db_error(op))?
            .map(StoredTime::time)
            .transpose()
            .map_err(|e| invalid(format!("published_at: {e}")))?,
        retry_count: u32::try_from(retries).unwrap_or(u32::MAX),
        last_error: row.try_get(11).map_err(db_error(op))?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| invalid(format!("unknown status `{status}`")))?,
    })
}

impl PostgresEventStore {
    /// The rows of `event_outbox`, each decoded, with its id when that reads.
    async fn read_entries(
        &self,
        status: Option<OutboxStatus>,
        limit: u64,
    ) -> Result<Vec<(Option<i64>, Result<OutboxEntry>)>> {
        self.ready(Need::Table("event_outbox")).await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {} WHERE ($1::text IS NULL OR status = $1) ORDER BY id LIMIT $2",
            self.tables.outbox
        ))
        .bind(status.map(OutboxStatus::as_str))
        .bind(to_i64(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("get_outbox_entries"))?;
        Ok(rows
            .iter()
            .map(|row| (row.try_get::<i64, _>(0).ok(), decode(row)))
            .collect())
    }

    /// Runs an UPDATE of one outbox entry (`$1` is its id).
    async fn update_outbox(&self, id: i64, operation: &'static str, set: &str) -> Result<()> {
        self.ready(Need::Table("event_outbox")).await?;
        let done = sqlx::query(&format!(
            "UPDATE {} SET {set} WHERE id = $1",
            self.tables.outbox
        ))
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
impl OutboxStore for PostgresEventStore {
    async fn add_event(&self, event: &StoredEvent) -> Result<i64> {
        self.ready(Need::Table("event_outbox")).await?;
        let entry = OutboxEntry::for_event(event)?;
        sqlx::query_scalar(&format!(
            "INSERT INTO {} (event_id, event_type, aggregate_id, aggregate_type, tenant_id, \
                 global_position, event_data, created_at, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, now(), 'pending') RETURNING id",
            self.tables.outbox
        ))
        .bind(entry.event_id)
        .bind(&entry.event_type)
        .bind(entry.aggregate_id)
        .bind(&entry.aggregate_type)
        .bind(entry.tenant_id)
        .bind(to_i64(entry.global_position))
        .bind(entry.event_data.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("add_outbox_event"))
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
            "status = 'published', published_at = now()",
        )
        .await
    }

    async fn increment_retry(&self, id: i64, error: &str) -> Result<u32> {
        self.ready(Need::Table("event_outbox")).await?;
        let count: Option<i32> = sqlx::query_scalar(&format!(
            "UPDATE {} SET retry_count = retry_count + 1, last_error = $2 WHERE id = $1 RETURNING retry_count",
            self.tables.outbox
        ))
        .bind(id)
        .bind(error)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("increment_retry"))?;
        let count = count.ok_or(Error::OutboxEntryNotFound { id })?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn mark_failed(&self, id: i64) -> Result<()> {
        self.update_outbox(id, "mark_failed", "status = 'failed'")
            .await
    }
}
