//! The [`DeadLetterStore`] of [`PostgresEventStore`]: the `dead_letter_queue` table.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::StoredTime;
use super::{db_error, to_i64, PostgresEventStore};
use crate::dlq::{
    DeadLetter, DeadLetterStatistics, DeadLetterStatus, DeadLetterStore, FailedEvent,
};
use crate::error::{Error, Result};
use crate::store::schema_state::Need;
use crate::store::sql::readable_rows;

const COLUMNS: &str =
    "id, event_id, projection_name, event_type, global_position, event_data::text, error_message, \
     retry_count, first_failed_at, last_failed_at, status, resolved_at, resolved_by";

fn decode(row: &PgRow) -> Result<DeadLetter> {
    let op = "get_failed_events";
    let id: i64 = row.try_get(0).map_err(db_error(op))?;
    let invalid = |detail: String| Error::Database {
        operation: op,
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: format!("dead letter {id}: {detail}").into(),
    };
    let status: String = row.try_get(10).map_err(db_error(op))?;
    let position: i64 = row.try_get(4).map_err(db_error(op))?;
    let retry_count: i32 = row.try_get(7).map_err(db_error(op))?;
    let data: String = row.try_get(5).map_err(db_error(op))?;
    Ok(DeadLetter {
        id,
        failed: FailedEvent {
            event_id: row.try_get::<Uuid, _>(1).map_err(db_error(op))?,
            projection_name: row.try_get(2).map_err(db_error(op))?,
            event_type: row.try_get(3).map_err(db_error(op))?,
            global_position: u64::try_from(position).unwrap_or(0),
            event_data: serde_json::from_str(&data)
                .map_err(|e| invalid(format!("event_data: {e}")))?,
            error: row.try_get(6).map_err(db_error(op))?,
            retry_count: u32::try_from(retry_count).unwrap_or(u32::MAX),
        },
        status: DeadLetterStatus::parse(&status)
            .ok_or_else(|| invalid(format!("unknown status `{status}`")))?,
        first_failed_at: row
            .try_get::<StoredTime, _>(8)
            .map_err(db_error(op))?
            .time()
            .map_err(|e| invalid(format!("first_failed_at: {e}")))?,
        last_failed_at: row
            .try_get::<StoredTime, _>(9)
            .map_err(db_error(op))?
            .time()
            .map_err(|e| invalid(format!("last_failed_at: {e}")))?,
        resolved_at: row
            .try_get::<Option<StoredTime>, _>(11)
            .map_err(db_error(op))?
            .map(StoredTime::time)
            .transpose()
            .map_err(|e| invalid(format!("resolved_at: {e}")))?,
        resolution: row.try_get(12).map_err(db_error(op))?,
    })
}

/// Records a dead letter through `conn` (inside a transactional projection's batch).
pub(super) async fn add_failed_event_on(
    conn: &mut PgConnection,
    table: &str,
    failed: &FailedEvent,
) -> Result<i64> {
    sqlx::query_scalar(&format!(
        "INSERT INTO {table} AS d (event_id, projection_name, event_type, global_position, event_data, \
             error_message, retry_count, first_failed_at, last_failed_at, status) \
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, now(), now(), 'failed') \
         ON CONFLICT (event_id, projection_name) DO UPDATE SET \
             error_message = excluded.error_message, retry_count = excluded.retry_count, \
             last_failed_at = excluded.last_failed_at, status = 'failed', resolved_at = NULL, resolved_by = NULL \
         RETURNING id"
    ))
    .bind(failed.event_id)
    .bind(&failed.projection_name)
    .bind(&failed.event_type)
    .bind(to_i64(failed.global_position))
    .bind(failed.event_data.to_string())
    .bind(&failed.error)
    .bind(i32::try_from(failed.retry_count).unwrap_or(i32::MAX))
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error("add_failed_event"))
}

/// Resolves the failed dead letter `id` in `table` on one connection, so that it can
/// share the transaction of a replay; `false` when it is not failed (or not there).
pub(super) async fn resolve_on(
    conn: &mut PgConnection,
    table: &str,
    id: i64,
    resolution: &str,
) -> Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE {table} SET status = 'resolved', resolved_at = now(), resolved_by = $2 \
         WHERE id = $1 AND status = 'failed'"
    ))
    .bind(id)
    .bind(resolution)
    .execute(&mut *conn)
    .await
    .map_err(db_error("mark_resolved"))?;
    Ok(done.rows_affected() == 1)
}

/// Counts a failed replay of the failed dead letter `id` (one more attempt, the new
/// error); a letter resolved meanwhile is left resolved.
pub(super) async fn note_failed_replay(
    store: &PostgresEventStore,
    id: i64,
    error: &str,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {} SET retry_count = retry_count + 1, error_message = $2, last_failed_at = now() \
         WHERE id = $1 AND status = 'failed'",
        store.tables.dead_letters
    ))
    .bind(id)
    .bind(error)
    .execute(&store.pool)
    .await
    .map_err(db_error("replay_dead_letter"))?;
    Ok(())
}

/// Resolves every failed dead letter of `projection` in `table` (as `resolution`) on
/// one connection: a rebuild hands their events to the projection again.
pub(super) async fn resolve_all_on(
    conn: &mut PgConnection,
    table: &str,
    projection: &str,
    resolution: &str,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {table} SET status = 'resolved', resolved_at = now(), resolved_by = $2 \
         WHERE projection_name = $1 AND status = 'failed'"
    ))
    .bind(projection)
    .bind(resolution)
    .execute(&mut *conn)
    .await
    .map_err(db_error("rebuild_projection"))?;
    Ok(())
}

#[async_trait]
impl DeadLetterStore for PostgresEventStore {
    async fn add_failed_event(&self, failed: FailedEvent) -> Result<i64> {
        self.ready(Need::Table("dead_letter_queue")).await?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("add_failed_event"))?;
        add_failed_event_on(&mut conn, &self.tables.dead_letters, &failed).await
    }

    async fn get_failed_events(
        &self,
        projection_name: Option<&str>,
        status: Option<DeadLetterStatus>,
        limit: u64,
    ) -> Result<Vec<DeadLetter>> {
        self.ready(Need::Table("dead_letter_queue")).await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {} \
             WHERE ($1::text IS NULL OR projection_name = $1) AND ($2::text IS NULL OR status = $2) \
             ORDER BY id LIMIT $3",
            self.tables.dead_letters
        ))
        .bind(projection_name)
        .bind(status.map(DeadLetterStatus::as_str))
        .bind(to_i64(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("get_failed_events"))?;
        Ok(readable_rows("get_failed_events", rows.iter().map(decode)))
    }

    async fn get_failed_event(&self, id: i64) -> Result<Option<DeadLetter>> {
        self.ready(Need::Table("dead_letter_queue")).await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {} WHERE id = $1",
            self.tables.dead_letters
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("get_failed_event"))?;
        row.as_ref().map(decode).transpose()
    }

    async fn get_statistics(&self) -> Result<DeadLetterStatistics> {
        self.ready(Need::Table("dead_letter_queue")).await?;
        let rows = sqlx::query(&format!(
            "SELECT projection_name, status, COUNT(*) FROM {} GROUP BY projection_name, status",
            self.tables.dead_letters
        ))
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
        self.ready(Need::Table("dead_letter_queue")).await?;
        let done = sqlx::query(&format!(
            "UPDATE {} SET status = 'resolved', resolved_at = now(), resolved_by = $2 WHERE id = $1",
            self.tables.dead_letters
        ))
        .bind(id)
        .bind(resolution)
        .execute(&self.pool)
        .await
        .map_err(db_error("mark_resolved"))?;
        if done.rows_affected() == 0 {
            return Err(Error::DeadLetterNotFound { id });
        }
        Ok(())
    }
}
