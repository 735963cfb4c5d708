//! The [`SnapshotStore`] of [`PostgresEventStore`]: the `snapshots` table, one row per
//! aggregate.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::StoredTime;
use super::{db_error, to_i64, PostgresEventStore};
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
impl SnapshotStore for PostgresEventStore {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.ready(Need::Table("snapshots")).await?;
        let table = &self.tables.snapshots;
        sqlx::query(&format!(
            "INSERT INTO {table} AS s (aggregate_id, aggregate_type, version, schema_version, state, created_at) \
             VALUES ($1, $2, $3, $4, $5::jsonb, $6) \
             ON CONFLICT (aggregate_id, aggregate_type) DO UPDATE SET version = excluded.version, \
             schema_version = excluded.schema_version, state = excluded.state, created_at = excluded.created_at \
             WHERE excluded.version >= s.version"
        ))
        .bind(snapshot.aggregate_id)
        .bind(&snapshot.aggregate_type)
        .bind(to_i64(snapshot.version))
        .bind(i32::try_from(snapshot.schema_version).unwrap_or(i32::MAX))
        .bind(snapshot.state.to_string())
        .bind(snapshot.created_at)
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
        self.ready(Need::Table("snapshots")).await?;
        let row = sqlx::query(&format!(
            "SELECT version, schema_version, state::text, created_at FROM {} \
             WHERE aggregate_id = $1 AND aggregate_type = $2",
            self.tables.snapshots
        ))
        .bind(aggregate_id)
        .bind(aggregate_type)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("get_snapshot"))?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get(0).map_err(db_error("get_snapshot"))?;
        let schema_version: i32 = row.try_get(1).map_err(db_error("get_snapshot"))?;
        let state: String = row.try_get(2).map_err(db_error("get_snapshot"))?;
        let created_at = row
            .try_get::<StoredTime, _>(3)
            .map_err(db_error("get_snapshot"))?
            .time()
            .map_err(|e| corrupt(format!("created_at: {e}")))?;
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
            created_at,
        }))
    }

    async fn delete_snapshot(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<()> {
        self.ready(Need::Table("snapshots")).await?;
        sqlx::query(&format!(
            "DELETE FROM {} WHERE aggregate_id = $1 AND aggregate_type = $2",
            self.tables.snapshots
        ))
        .bind(aggregate_id)
        .bind(aggregate_type)
        .execute(&self.pool)
        .await
        .map_err(db_error("delete_snapshot"))?;
        Ok(())
    }
}
