//! The [`CheckpointStore`] of [`SqliteEventStore`]: the `projection_checkpoints` table.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::timestamp::{format_timestamp, parse_timestamp};
use super::{db_error, SqliteEventStore};
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::envelope::now;
use crate::error::{Error, Result};
use crate::store::schema_state::Need;
use crate::store::sql::readable_rows;

const COLUMNS: &str =
    "projection_name, global_position, last_event_id, last_event_type, events_processed, last_processed_at";

/// A checkpoint row; one that does not read (and names its projection) is
/// [`Error::InvalidCheckpoint`], so that it is not mistaken for a broken database.
fn decode(row: &SqliteRow) -> Result<Checkpoint> {
    decode_row(row).map_err(|error| match (row.try_get::<String, _>(0), error) {
        (Ok(projection), error @ Error::Database { .. }) => Error::InvalidCheckpoint {
            projection,
            detail: error.to_string(),
        },
        (_, error) => error,
    })
}

fn decode_row(row: &SqliteRow) -> Result<Checkpoint> {
    let invalid = |detail: String| Error::Database {
        operation: "get_checkpoint",
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: detail.into(),
    };
    let name: String = row.try_get(0).map_err(db_error("get_checkpoint"))?;
    let position: i64 = row.try_get(1).map_err(db_error("get_checkpoint"))?;
    let event_id: Option<String> = row.try_get(2).map_err(db_error("get_checkpoint"))?;
    let event_type: Option<String> = row.try_get(3).map_err(db_error("get_checkpoint"))?;
    let processed: i64 = row.try_get(4).map_err(db_error("get_checkpoint"))?;
    let processed_at: Option<String> = row.try_get(5).map_err(db_error("get_checkpoint"))?;
    Ok(Checkpoint {
        global_position: u64::try_from(position)
            .map_err(|_| invalid(format!("checkpoint `{name}` has position {position}")))?,
        last_event_id: event_id
            .map(|id| {
                Uuid::parse_str(&id)
                    .map_err(|e| invalid(format!("checkpoint `{name}`: last_event_id: {e}")))
            })
            .transpose()?,
        last_event_type: event_type,
        events_processed: u64::try_from(processed).unwrap_or(0),
        last_processed_at: processed_at.as_deref().and_then(parse_timestamp),
        projection_name: name,
    })
}

/// The checkpoint upsert on one connection, so it can share a transaction with a read
/// model's writes.
pub(super) async fn save_progress_on(
    conn: &mut SqliteConnection,
    projection_name: &str,
    position: u64,
    last_event: Option<(Uuid, &str)>,
    processed: u64,
) -> Result<()> {
    let at = format_timestamp(now());
    sqlx::query(
        "INSERT INTO projection_checkpoints \
             (projection_name, global_position, last_event_id, last_event_type, events_processed, \
              last_processed_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (projection_name) DO UPDATE SET \
             global_position = excluded.global_position, \
             last_event_id = COALESCE(excluded.last_event_id, projection_checkpoints.last_event_id), \
             last_event_type = COALESCE(excluded.last_event_type, projection_checkpoints.last_event_type), \
             events_processed = projection_checkpoints.events_processed + excluded.events_processed, \
             last_processed_at = excluded.last_processed_at, \
             updated_at = excluded.updated_at",
    )
    .bind(projection_name)
    .bind(i64::try_from(position).unwrap_or(i64::MAX))
    .bind(last_event.map(|(id, _)| id.to_string()))
    .bind(last_event.map(|(_, t)| t))
    .bind(i64::try_from(processed).unwrap_or(i64::MAX))
    .bind(&at)
    .bind(&at)
    .bind(&at)
    .execute(&mut *conn)
    .await
    .map_err(db_error("save_checkpoint"))?;
    Ok(())
}

/// The checkpoint position on one connection.
pub(super) async fn position_on(conn: &mut SqliteConnection, projection_name: &str) -> Result<u64> {
    let position: Option<i64> = sqlx::query_scalar(
        "SELECT global_position FROM projection_checkpoints WHERE projection_name = ?",
    )
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
impl CheckpointStore for SqliteEventStore {
    async fn get_checkpoint(&self, projection_name: &str) -> Result<Option<Checkpoint>> {
        self.ready(
            "get_checkpoint",
            Need::Table("projection_checkpoints"),
            false,
        )
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM projection_checkpoints WHERE projection_name = ?"
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
        self.ready("save_progress", Need::Table("projection_checkpoints"), true)
            .await?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("save_checkpoint"))?;
        save_progress_on(&mut conn, projection_name, position, last_event, processed).await
    }

    async fn get_all_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.ready(
            "get_all_checkpoints",
            Need::Table("projection_checkpoints"),
            false,
        )
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM projection_checkpoints ORDER BY projection_name"
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
        self.ready(
            "reset_checkpoint",
            Need::Table("projection_checkpoints"),
            true,
        )
        .await?;
        sqlx::query("DELETE FROM projection_checkpoints WHERE projection_name = ?")
            .bind(projection_name)
            .execute(&self.pool)
            .await
            .map_err(db_error("reset_checkpoint"))?;
        Ok(())
    }
}
