//! The [`OutboxStore`] of [`PostgresEventStore`]: the `event_outbox` table, filled in
//! the append's transaction when the store has the outbox on.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::timestamp::StoredTime;
use super::{db_error, to_i64, PostgresEventStore};
use crate::error::{Error, Result};
use crate::outbox::{
    readable_entries, stats_from_counts, OutboxEntry, OutboxStats, OutboxStatus, OutboxStore,
};
use crate::store::clamp_timestamp;
use crate::store::schema_state::Need;
use crate::stored::StoredEvent;

/// Rows deleted per statement when pruning.
const PRUNE_CHUNK: i64 = 5_000;

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
    /// Claims up to `limit` pending entries (see [`OutboxStore::claim_pending`]), in one
    /// transaction under the schema's claim lock (claims take turns; appends and
    /// markings do not wait for it): the oldest pending rows not leased; less those of an
    /// aggregate with an earlier pending entry this claim did not get (leased to another
    /// relay); the rest leased until now + `lease`. The lease is taken only where it is
    /// still free when written (a relay of an older version claims with row locks
    /// instead of the claim lock), and an aggregate's entries after one that was taken
    /// meanwhile are given back, so the order holds either way. Taking turns instead of
    /// locking every candidate row (`FOR UPDATE SKIP LOCKED`) saves a write of each row
    /// per claim.
    async fn claim(&self, limit: u64, lease: Duration) -> Result<Vec<OutboxEntry>> {
        const OP: &str = "claim_outbox_entries";
        self.ready(Need::Table("event_outbox")).await?;
        let table = &self.tables.outbox;
        // Every pending entry lies above the floor: scans start there, not at the first
        // index entry of a pending row, past the dead entries of every row published
        // since the table was last vacuumed.
        let floor = self.outbox_floor().await?;
        let mut tx = self.pool.begin().await.map_err(db_error(OP))?;
        let (class, object) = self.tables.claim_lock;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(class)
            .bind(object)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        let candidates: Vec<(i64, Uuid)> = sqlx::query_as(&format!(
            "SELECT id, aggregate_id FROM {table} WHERE status = 'pending' AND id > $2 \
                 AND (claimed_until IS NULL OR claimed_until < now()) \
             ORDER BY id LIMIT $1"
        ))
        .bind(to_i64(limit))
        .bind(floor)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        let Some(last) = candidates.iter().map(|(id, _)| *id).max() else {
            let _ = tx.rollback().await;
            return Ok(Vec::new());
        };
        let ids: Vec<i64> = candidates.iter().map(|(id, _)| *id).collect();
        let mut aggregates: Vec<Uuid> = candidates.iter().map(|(_, a)| *a).collect();
        aggregates.sort_unstable();
        aggregates.dedup();
        // Per aggregate, the first earlier pending entry that is not in this claim: its
        // later entries must wait for it. (The earlier pending entries of these
        // aggregates, filtered here against the claim's own.)
        let mine: std::collections::HashSet<i64> = ids.iter().copied().collect();
        let mut blocked: HashMap<Uuid, i64> = HashMap::new();
        let earlier: Vec<(Uuid, i64)> = sqlx::query_as(&format!(
            "SELECT aggregate_id, id FROM {table} WHERE status = 'pending' \
                 AND aggregate_id = ANY($1) AND id < $2 AND id > $3"
        ))
        .bind(&aggregates)
        .bind(last)
        .bind(floor)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        for (aggregate, id) in earlier {
            if !mine.contains(&id) {
                let first = blocked.entry(aggregate).or_insert(id);
                *first = (*first).min(id);
            }
        }
        let kept: Vec<i64> = candidates
            .iter()
            .filter(|(id, aggregate)| blocked.get(aggregate).is_none_or(|first| id < first))
            .map(|(id, _)| *id)
            .collect();
        let seconds = lease.as_secs_f64().min(1e9);
        let rows = sqlx::query(&format!(
            "UPDATE {table} SET claimed_until = now() + make_interval(secs => $2) \
             WHERE id = ANY($1) AND status = 'pending' \
                 AND (claimed_until IS NULL OR claimed_until < now()) RETURNING {COLUMNS}"
        ))
        .bind(&kept)
        .bind(seconds)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        let mut rows: Vec<(Option<i64>, Result<OutboxEntry>)> = rows
            .iter()
            .map(|row| (row.try_get::<i64, _>(0).ok(), decode(row)))
            .collect();
        rows.sort_by_key(|(id, _)| *id);
        if rows.len() < kept.len() {
            // Taken meanwhile (by a relay claiming with row locks): each aggregate's
            // entries after the first one taken go back.
            let got: std::collections::HashSet<i64> =
                rows.iter().filter_map(|(id, _)| *id).collect();
            let mut first_taken: HashMap<Uuid, i64> = HashMap::new();
            for (id, aggregate) in &candidates {
                if kept.contains(id) && !got.contains(id) {
                    first_taken.entry(*aggregate).or_insert(*id);
                }
            }
            let aggregate_of: HashMap<i64, Uuid> = candidates.iter().copied().collect();
            let (rows_kept, back): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(id, _)| {
                id.and_then(|id| aggregate_of.get(&id).map(|a| (id, a)))
                    .is_none_or(|(id, a)| first_taken.get(a).is_none_or(|first| id < *first))
            });
            rows = rows_kept;
            let back: Vec<i64> = back.iter().filter_map(|(id, _)| *id).collect();
            sqlx::query(&format!(
                "UPDATE {table} SET claimed_until = NULL WHERE id = ANY($1)"
            ))
            .bind(&back)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        }
        tx.commit().await.map_err(db_error(OP))?;
        readable_entries(self, rows, true).await
    }

    /// An id below every pending entry: the lowest pending id less one (or the highest id
    /// when none is pending), found by a scan from the floor found last time. Entries
    /// never become pending again, and every insert into the outbox (the appends'
    /// trigger, `add_event`) holds the append lock, so a row not committed yet has a
    /// larger id than every committed one.
    async fn outbox_floor(&self) -> Result<i64> {
        let known = self.outbox_floor.load(std::sync::atomic::Ordering::Acquire);
        // In one snapshot: the lowest pending id, or (none pending) the highest id, below
        // which nothing can become pending any more.
        let lowest: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT COALESCE((SELECT id FROM {table} WHERE status = 'pending' AND id > $1 \
                 ORDER BY id LIMIT 1), (SELECT MAX(id) + 1 FROM {table}))",
            table = self.tables.outbox
        ))
        .bind(known)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("claim_outbox_entries"))?;
        let floor = lowest.unwrap_or(known + 1).saturating_sub(1).max(known);
        self.outbox_floor
            .fetch_max(floor, std::sync::atomic::Ordering::AcqRel);
        Ok(floor)
    }

    /// The rows of `event_outbox`, each decoded, with its id when that reads.
    async fn read_entries(
        &self,
        status: Option<OutboxStatus>,
        limit: u64,
    ) -> Result<Vec<(Option<i64>, Result<OutboxEntry>)>> {
        self.ready(Need::Table("event_outbox")).await?;
        // One statement per case: a `($1 IS NULL OR status = $1)` plan cached for any
        // status would not use the (status, id) index.
        let sql = match status {
            Some(_) => format!(
                "SELECT {COLUMNS} FROM {} WHERE status = $2 ORDER BY id LIMIT $1",
                self.tables.outbox
            ),
            None => format!(
                "SELECT {COLUMNS} FROM {} ORDER BY id LIMIT $1",
                self.tables.outbox
            ),
        };
        let mut query = sqlx::query(&sql).bind(to_i64(limit));
        if let Some(status) = status {
            query = query.bind(status.as_str());
        }
        let rows = query
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
        const OP: &str = "add_outbox_event";
        // Under the append lock, as the appends' own entries: ids follow commits (see
        // `outbox_floor`).
        let mut tx = self.begin_append().await?;
        self.lock_appends(&mut tx).await?;
        let id: i64 = sqlx::query_scalar(&format!(
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
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        tx.commit().await.map_err(db_error(OP))?;
        Ok(id)
    }

    async fn stats(&self) -> Result<OutboxStats> {
        self.ready(Need::Table("event_outbox")).await?;
        let counts: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT status, COUNT(*) FROM {} GROUP BY status",
            self.tables.outbox
        ))
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

    async fn claim_pending(&self, limit: u64, lease: Duration) -> Result<Vec<OutboxEntry>> {
        match self.claim(limit, lease).await {
            Err(Error::Database { source, .. })
                if source
                    .downcast_ref::<sqlx::Error>()
                    .and_then(|e| e.as_database_error())
                    .and_then(|e| e.code())
                    .as_deref()
                    == Some("42703") =>
            {
                self.outbox_claims_missing
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::warn!(
                    schema = %self.tables.schema,
                    "the outbox has no claimed_until column (created by an older version): \
                     entries are read without a claim until initialize() adds it"
                );
                self.get_pending_events(limit).await
            }
            Ok(entries) => {
                self.outbox_claims_missing
                    .store(false, std::sync::atomic::Ordering::Release);
                Ok(entries)
            }
            other => other,
        }
    }

    fn claims_pending(&self) -> bool {
        !self
            .outbox_claims_missing
            .load(std::sync::atomic::Ordering::Acquire)
    }

    async fn release_claims(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.ready(Need::Table("event_outbox")).await?;
        sqlx::query(&format!(
            "UPDATE {} SET claimed_until = NULL WHERE id = ANY($1) AND status = 'pending'",
            self.tables.outbox
        ))
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(db_error("release_outbox_claims"))?;
        Ok(())
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

    async fn mark_published_batch(&self, ids: &[i64]) -> Result<()> {
        const OP: &str = "mark_published";
        self.ready(Need::Table("event_outbox")).await?;
        let mut tx = self.pool.begin().await.map_err(db_error(OP))?;
        let marked: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE {} SET status = 'published', published_at = now() WHERE id = ANY($1) RETURNING id",
            self.tables.outbox
        ))
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        if marked.len() < ids.len() {
            let marked: std::collections::HashSet<i64> = marked.into_iter().collect();
            if let Some(id) = ids.iter().find(|id| !marked.contains(id)) {
                let _ = tx.rollback().await;
                return Err(Error::OutboxEntryNotFound { id: *id });
            }
        }
        tx.commit().await.map_err(db_error(OP))
    }

    async fn delete_entries(&self, ids: &[i64]) -> Result<u64> {
        self.ready(Need::Table("event_outbox")).await?;
        let done = sqlx::query(&format!(
            "DELETE FROM {} WHERE id = ANY($1)",
            self.tables.outbox
        ))
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(db_error("delete_outbox_entries"))?;
        Ok(done.rows_affected())
    }

    async fn prune_published(&self, published_before: DateTime<Utc>) -> Result<u64> {
        self.ready(Need::Table("event_outbox")).await?;
        let sql = format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
             WHERE status = 'published' AND published_at < $1 ORDER BY id LIMIT $2)",
            table = self.tables.outbox
        );
        let mut deleted = 0;
        loop {
            let done = sqlx::query(&sql)
                .bind(clamp_timestamp(published_before))
                .bind(PRUNE_CHUNK)
                .execute(&self.pool)
                .await
                .map_err(db_error("prune_outbox"))?;
            deleted += done.rows_affected();
            if done.rows_affected() < PRUNE_CHUNK as u64 {
                return Ok(deleted);
            }
        }
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

    async fn retry_failed(&self, ids: Option<&[i64]>) -> Result<u64> {
        const OP: &str = "retry_failed";
        self.ready(Need::Table("event_outbox")).await?;
        let table = &self.tables.outbox;
        let filter = "status = 'failed' AND ($1::int8[] IS NULL OR id = ANY($1))";
        // Under the append lock, as every insert into the outbox: the new ids follow
        // commits, above every relay's floor (see `outbox_floor`).
        let mut tx = self.begin_append().await?;
        self.lock_appends(&mut tx).await?;
        // One statement, one snapshot: an entry marked failed meanwhile is neither
        // deleted nor copied, it stays failed.
        let moved = sqlx::query(&format!(
            "WITH moved AS (DELETE FROM {table} WHERE {filter} RETURNING *) \
             INSERT INTO {table} (event_id, event_type, aggregate_id, aggregate_type, tenant_id, \
                 global_position, event_data, created_at, status) \
             SELECT event_id, event_type, aggregate_id, aggregate_type, tenant_id, global_position, \
                 event_data, created_at, 'pending' FROM moved ORDER BY id"
        ))
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected());
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
