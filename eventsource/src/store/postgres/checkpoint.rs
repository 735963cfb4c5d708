//! The [`CheckpointStore`] of [`PostgresEventStore`]: the `projection_checkpoints` table.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::StoredTime;
use super::{db_error, to_i64, PostgresEventStore};
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::error::{Error, Result};
use crate::store::schema_state::Need;
use crate::store::sql::readable_rows;

const COLUMNS: &str =
    "projection_name, global_position, last_event_id, last_event_type, events_processed, last_processed_at";

/// A checkpoint row; one that does not read (and names its projection) is
/// [`Error::InvalidCheckpoint`], so that it is not mistaken for a broken database.
fn decode(row: &PgRow) -> Result<Checkpoint> {
    decode_row(row).map_err(|error| match (row.try_get::<String, _>(0), error) {
        (Ok(projection), error @ Error::Database { .. }) => Error::InvalidCheckpoint {
            projection,
            detail: error.to_string(),
        },
        (_, error) => error,
    })
}

fn decode_row(row: &PgRow) -> Result<Checkpoint> {
    let op = "get_checkpoint";
    let name: String = row.try_get(0).map_err(db_error(op))?;
    let position: i64 = row.try_get(1).map_err(db_error(op))?;
    let event_id: Option<Uuid> = row.try_get(2).map_err(db_error(op))?;
    let event_type: Option<String> = row.try_get(3).map_err(db_error(op))?;
    let processed: i64 = row.try_get(4).map_err(db_error(op))?;
    // A time chrono cannot hold ('infinity') is no time of processing.
    let processed_at = row
        .try_get::<Option<StoredTime>, _>(5)
        .map_err(db_error(op))?
        .and_then(|t| t.0);
    Ok(Checkpoint {
        global_position: u64::try_from(position).map_err(|_| Error::Database {
            operation: op,
            kind: crate::error::DatabaseErrorKind::Corrupt,
            source: format!("checkpoint `{name}` has position {position}").into(),
        })?,
        last_event_id: event_id,
        last_event_type: event_type,
        events_processed: u64::try_from(processed).unwrap_or(0),
        last_processed_at: processed_at,
        projection_name: name,
    })
}

/// Saves a checkpoint's progress through `conn` (inside a transaction, for a
/// transactional projection's batch).
pub(super) async fn save_progress_on(
    conn: &mut PgConnection,
    table: &str,
    projection_name: &str,
    position: u64,
    last_event: Option<(Uuid, &str)>,
    processed: u64,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {table} AS c \
             (projection_name, global_position, last_event_id, last_event_type, events_processed, \
              last_processed_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, now(), now(), now()) \
         ON CONFLICT (projection_name) DO UPDATE SET \
             global_position = excluded.global_position, \
             last_event_id = COALESCE(excluded.last_event_id, c.last_event_id), \
             last_event_type = COALESCE(excluded.last_event_type, c.last_event_type), \
             events_processed = c.events_processed + excluded.events_processed, \
             last_processed_at = excluded.last_processed_at, \
             updated_at = excluded.updated_at"
    ))
    .bind(projection_name)
    .bind(to_i64(position))
    .bind(last_event.map(|(id, _)| id))
    .bind(last_event.map(|(_, t)| t))
    .bind(to_i64(processed))
    .execute(&mut *conn)
    .await
    .map_err(db_error("save_checkpoint"))?;
    Ok(())
}

/// The checkpoint's position through `conn` (0 when it has none). With `lock`, inside a
/// transaction, the row is created when missing and locked until the transaction ends,
/// so that two runners of one name take turns instead of applying a batch twice.
pub(super) async fn position_on(
    conn: &mut PgConnection,
    table: &str,
    projection_name: &str,
    lock: bool,
) -> Result<u64> {
    if lock {
        sqlx::query(&format!(
            "INSERT INTO {table} (projection_name, global_position, events_processed, created_at, updated_at) \
             VALUES ($1, 0, 0, now(), now()) ON CONFLICT (projection_name) DO NOTHING"
        ))
        .bind(projection_name)
        .execute(&mut *conn)
        .await
        .map_err(db_error("get_checkpoint"))?;
    }
    let position: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT global_position FROM {table} WHERE projection_name = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(projection_name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("get_checkpoint"))?;
    match position {
        None => Ok(0),
        Some(p) => u64::try_from(p).map_err(|_| Error::InvalidCheckpoint {
            projection: projection_name.to_owned(),
            detail: format!("it is at position {p}"),
        }),
    }
}

#[async_trait]
impl CheckpointStore for PostgresEventStore {
    async fn get_checkpoint(&self, projection_name: &str) -> Result<Option<Checkpoint>> {
        self.ready(Need::Table("projection_checkpoints")).await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {} WHERE projection_name = $1",
            self.tables.checkpoints
        ))
        .bind(projection_name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("get_checkpoint"))?;
        row.as_ref().map(decode).transpose()
    }

    async fn save_progress(
        &self,
        projection_name: &str,
        position: u64,
        last_event: Option<(Uuid, &str)>,
        processed: u64,
    ) -> Result<()> {
        self.ready(Need::Table("projection_checkpoints")).await?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("save_checkpoint"))?;
        save_progress_on(
            &mut conn,
            &self.tables.checkpoints,
            projection_name,
            position,
            last_event,
            processed,
        )
        .await
    }

    async fn get_all_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.ready(Need::Table("projection_checkpoints")).await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {} ORDER BY projection_name",
            self.tables.checkpoints
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("get_all_checkpoints"))?;
        Ok(readable_rows(
            "get_all_checkpoints",
            rows.iter().map(decode),
        ))
    }

    async fn reset(&self, projection_name: &str) -> Result<()> {
        self.ready(Need::Table("projection_checkpoints")).await?;
        sqlx::query(&format!(
            "DELETE FROM {} WHERE projection_name = $1",
            self.tables.checkpoints
        ))
        .bind(projection_name)
        .execute(&self.pool)
        .await
        .map_err(db_error("reset_checkpoint"))?;
        Ok(())
    }
}
