//! The [`SnapshotStore`] of [`SqliteEventStore`]: the `snapshots` table, one row per
//! aggregate.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::{format_timestamp, parse_timestamp};
use super::{db_error, SqliteEventStore};
use crate::error::{Error, Result};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::store::schema_state::Need;

fn corrupt(detail: String) -> Error {
    Error::Database {
        operation: "get_snapshot",
        kind: crate::error::DatabaseErrorKind::Corrupt,
        source: detail.into(),
    }
}

#[async_trait]
impl SnapshotStore for SqliteEventStore {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.ready("save_snapshot", Need::Table("snapshots"), true)
            .await?;
        sqlx::query(
            "INSERT INTO snapshots (aggregate_id, aggregate_type, version, schema_version, state, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (aggregate_id, aggregate_type) DO UPDATE SET version = excluded.version, \
             schema_version = excluded.schema_version, state = excluded.state, created_at = excluded.created_at \
             WHERE excluded.version >= snapshots.version",
        )
        .bind(snapshot.aggregate_id.to_string())
        .bind(&snapshot.aggregate_type)
        .bind(i64::try_from(snapshot.version).unwrap_or(i64::MAX))
        .bind(i64::from(snapshot.schema_version))
        .bind(snapshot.state.to_string())
        .bind(format_timestamp(snapshot.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_error("save_snapshot"))?;
        Ok(())
    }

    async fn get_snapshot(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>> {
        self.ready("get_snapshot", Need::Table("snapshots"), false)
            .await?;
        let row = sqlx::query(
            "SELECT version, schema_version, state, created_at FROM snapshots WHERE aggregate_id = ? AND aggregate_type = ?",
        )
        .bind(aggregate_id.to_string())
        .bind(aggregate_type)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("get_snapshot"))?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get(0).map_err(db_error("get_snapshot"))?;
        let schema_version: i64 = row.try_get(1).map_err(db_error("get_snapshot"))?;
        let state: String = row.try_get(2).map_err(db_error("get_snapshot"))?;
        let created_at: String = row.try_get(3).map_err(db_error("get_snapshot"))?;
        Ok(Some(Snapshot {
            aggregate_id,
            aggregate_type: aggregate_type.to_owned(),
            version: u64::try_from(version)
                .map_err(|_| corrupt(format!("negative snapshot version {version}")))?,
            schema_version: u32::try_from(schema_version).map_err(|_| {
                corrupt(format!("invalid snapshot schema version {schema_version}"))
            })?,
            state: serde_json::from_str(&state)
                .map_err(|e| corrupt(format!("snapshot state is not JSON: {e}")))?,
            created_at: parse_timestamp(&created_at).ok_or_else(|| {
                corrupt(format!(
                    "snapshot created_at `{created_at}` is not a timestamp"
                ))
            })?,
        }))
    }

    async fn delete_snapshot(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<()> {
        self.ready("delete_snapshot", Need::Table("snapshots"), true)
            .await?;
        sqlx::query("DELETE FROM snapshots WHERE aggregate_id = ? AND aggregate_type = ?")
            .bind(aggregate_id.to_string())
            .bind(aggregate_type)
            .execute(&self.pool)
            .await
            .map_err(db_error("delete_snapshot"))?;
        Ok(())
    }
}
