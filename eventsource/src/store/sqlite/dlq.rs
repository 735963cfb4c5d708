//! The [`DeadLetterStore`] of [`SqliteEventStore`]: the `dead_letter_queue` table.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::timestamp::{format_timestamp, parse_timestamp};
use super::{db_error, SqliteEventStore};
use crate::dlq::{
    DeadLetter, DeadLetterStatistics, DeadLetterStatus, DeadLetterStore, FailedEvent,
};
use crate::envelope::now;
use crate::error::{Error, Result};
use crate::store::quoted;
use crate::store::schema_state::Need;
use crate::store::sql::readable_rows;

const COLUMNS: &str =
    "id, event_id, projection_name, event_type, global_position, event_data, error_message, \
     retry_count, first_failed_at, last_failed_at, status, resolved_at, resolved_by";

fn decode(row: &SqliteRow) -> Result<DeadLetter> {
    let op = "get_failed_events";
    let invalid = |detail: String| Error::Database {
        operation: op,
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: detail.into(),
    };
    let id: i64 = row.try_get(0).map_err(db_error(op))?;
    let text = |i: usize| row.try_get::<String, _>(i).map_err(db_error(op));
    let optional = |i: usize| row.try_get::<Option<String>, _>(i).map_err(db_error(op));
    let timestamp = |value: String| {
        parse_timestamp(&value).ok_or_else(|| {
            invalid(format!(
                "dead letter {id}: {} is not a timestamp",
                quoted(&value)
            ))
        })
    };
    let event_id = text(1)?;
    let status = text(10)?;
    let position: i64 = row.try_get(4).map_err(db_error(op))?;
    let retry_count: i64 = row.try_get(7).map_err(db_error(op))?;
    Ok(DeadLetter {
        id,
        failed: FailedEvent {
            event_id: Uuid::parse_str(&event_id)
                .map_err(|e| invalid(format!("dead letter {id}: event_id: {e}")))?,
            projection_name: text(2)?,
            event_type: text(3)?,
            global_position: u64::try_from(position).unwrap_or(0),
            event_data: serde_json::from_str(&text(5)?)
                .map_err(|e| invalid(format!("dead letter {id}: event_data: {e}")))?,
            error: text(6)?,
            retry_count: u32::try_from(retry_count).unwrap_or(u32::MAX),
        },
        status: DeadLetterStatus::parse(&status)
            .ok_or_else(|| invalid(format!("dead letter {id}: unknown status `{status}`")))?,
        first_failed_at: timestamp(text(8)?)?,
        last_failed_at: timestamp(text(9)?)?,
        resolved_at: optional(11)?.map(timestamp).transpose()?,
        resolution: optional(12)?,
    })
}

/// The dead-letter upsert on one connection, so it can share a transaction.
pub(super) async fn add_failed_event_on(
    conn: &mut SqliteConnection,
    failed: &FailedEvent,
) -> Result<i64> {
    let at = format_timestamp(now());
    sqlx::query_scalar(
        "INSERT INTO dead_letter_queue (event_id, projection_name, event_type, global_position, event_data, \
             error_message, retry_count, first_failed_at, last_failed_at, status) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'failed') \
         ON CONFLICT (event_id, projection_name) DO UPDATE SET \
             error_message = excluded.error_message, retry_count = excluded.retry_count, \
             last_failed_at = excluded.last_failed_at, status = 'failed', resolved_at = NULL, resolved_by = NULL \
         RETURNING id",
    )
    .bind(failed.event_id.to_string())
    .bind(&failed.projection_name)
    .bind(&failed.event_type)
    .bind(i64::try_from(failed.global_position).unwrap_or(i64::MAX))
    .bind(failed.event_data.to_string())
    .bind(&failed.error)
    .bind(i64::from(failed.retry_count))
    .bind(&at)
    .bind(&at)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error("add_failed_event"))
}

/// Resolves the failed dead letter `id` on one connection, so that it can share the
/// transaction of a replay; `false` when it is not failed (or not there).
pub(super) async fn resolve_on(
    conn: &mut SqliteConnection,
    id: i64,
    resolution: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE dead_letter_queue SET status = 'resolved', resolved_at = ?, resolved_by = ? \
         WHERE id = ? AND status = 'failed'",
    )
    .bind(format_timestamp(now()))
    .bind(resolution)
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(db_error("mark_resolved"))?;
    Ok(done.rows_affected() == 1)
}

/// Counts a failed replay of the failed dead letter `id` (one more attempt, the new
/// error); a letter resolved meanwhile is left resolved.
pub(super) async fn note_failed_replay(
    store: &SqliteEventStore,
    id: i64,
    error: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE dead_letter_queue SET retry_count = retry_count + 1, error_message = ?, last_failed_at = ? \
         WHERE id = ? AND status = 'failed'",
    )
    .bind(error)
    .bind(format_timestamp(now()))
    .bind(id)
    .execute(&store.pool)
    .await
    .map_err(db_error("replay_dead_letter"))?;
    Ok(())
}

/// Resolves every failed dead letter of `projection` (as `resolution`) on one
/// connection: a rebuild hands their events to the projection again.
pub(super) async fn resolve_all_on(
    conn: &mut SqliteConnection,
    projection: &str,
    resolution: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE dead_letter_queue SET status = 'resolved', resolved_at = ?, resolved_by = ? \
         WHERE projection_name = ? AND status = 'failed'",
    )
    .bind(format_timestamp(now()))
    .bind(resolution)
    .bind(projection)
    .execute(&mut *conn)
    .await
    .map_err(db_error("rebuild_projection"))?;
    Ok(())
}

#[async_trait]
impl DeadLetterStore for SqliteEventStore {
    async fn add_failed_event(&self, failed: FailedEvent) -> Result<i64> {
        self.ready("add_failed_event", Need::Table("dead_letter_queue"), true)
            .await?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("add_failed_event"))?;
        add_failed_event_on(&mut conn, &failed).await
    }

    async fn get_failed_events(
        &self,
        projection_name: Option<&str>,
        status: Option<DeadLetterStatus>,
        limit: u64,
    ) -> Result<Vec<DeadLetter>> {
        self.ready("get_failed_events", Need::Table("dead_letter_queue"), false)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dead_letter_queue \
             WHERE (?1 IS NULL OR projection_name = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY id LIMIT ?3"
        ))
        .bind(projection_name)
        .bind(status.map(DeadLetterStatus::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("get_failed_events"))?;
        Ok(readable_rows("get_failed_events", rows.iter().map(decode)))
    }

    async fn get_failed_event(&self, id: i64) -> Result<Option<DeadLetter>> {
        self.ready("get_failed_event", Need::Table("dead_letter_queue"), false)
            .await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dead_letter_queue WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("get_failed_event"))?;
        row.as_ref().map(decode).transpose()
    }

    async fn get_statistics(&self) -> Result<DeadLetterStatistics> {
        self.ready(
            "get_dead_letter_statistics",
            Need::Table("dead_letter_queue"),
            false,
        )
        .await?;
        let rows = sqlx::query("SELECT projection_name, status, COUNT(*) FROM dead_letter_queue GROUP BY projection_name, status")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("get_statistics"))?;
        let mut stats = DeadLetterStatistics::default();
        for row in rows {
            let projection: String = row.try_get(0).map_err(db_error("get_statistics"))?;
            let status: String = row.try_get(1).map_err(db_error("get_statistics"))?;
            let count: i64 = row.try_get(2).map_err(db_error("get_statistics"))?;
            // A status this library does not write (edited by hand) counts nowhere.
            if let Some(status) = DeadLetterStatus::parse(&status) {
                stats.add(&projection, status, u64::try_from(count).unwrap_or(0));
            }
        }
        Ok(stats)
    }

    async fn mark_resolved(&self, id: i64, resolution: &str) -> Result<()> {
        self.ready("mark_resolved", Need::Table("dead_letter_queue"), true)
            .await?;
        let done = sqlx::query(
            "UPDATE dead_letter_queue SET status = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?",
        )
        .bind(format_timestamp(now()))
        .bind(resolution)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error("mark_resolved"))?;
        if done.rows_affected() == 0 {
            return Err(Error::DeadLetterNotFound { id });
        }
        Ok(())
    }
}
