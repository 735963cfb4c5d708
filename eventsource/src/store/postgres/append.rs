//! Appends to a [`PostgresEventStore`].
//!
//! An append, or a group of concurrent appends (group commit, see
//! [`crate::store::group_commit`]), is one call of the schema's `eventsource_append_v2`
//! function, created by `initialize()`: one statement, one round trip, its own
//! transaction. The function takes the schema's append lock, then plans and writes each
//! append of the group in order, exactly as the statement-by-statement path does (event
//! ids stored elsewhere, an all-stored retry, the expected version against the stream,
//! appends earlier in the group included), answers each on its own, and notifies the
//! channel once. A group that fails as a whole in SQL is written again one append at a
//! time. Schemas initialized before the function existed are appended to statement by
//! statement until `initialize()` runs again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::Row;
use uuid::Uuid;

use super::append_function::Call;
use super::{db_error, is_unique_violation, to_i64, to_u64, PostgresEventStore};
use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::store::group_commit::{copy_error, must_not_retry, AppendRequest, GroupWriter};
use crate::store::sql::{end_append, EncodedEvent, Failed, Written};
use crate::store::{plan_append, AppendPlan, AppendResult, ExpectedVersion, StoredId};

impl PostgresEventStore {
    pub(super) async fn stream_version_on(
        &self,
        conn: &mut PgConnection,
        aggregate_id: Uuid,
        aggregate_type: &str,
        operation: &'static str,
    ) -> Result<u64> {
        let version: i64 = sqlx::query_scalar(&format!(
            "SELECT COALESCE(MAX(version), 0) FROM {} WHERE aggregate_id = $1 AND aggregate_type = $2",
            self.tables.events
        ))
        .bind(aggregate_id)
        .bind(aggregate_type)
        .fetch_one(conn)
        .await
        .map_err(db_error(operation))?;
        Ok(to_u64(version))
    }

    /// Global positions of the batch's events that are stored already.
    async fn stored_positions(
        &self,
        conn: &mut PgConnection,
        events: &[NewEvent],
        aggregate_id: Uuid,
        aggregate_type: &str,
    ) -> Result<HashMap<Uuid, (u64, StoredId)>> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let rows = sqlx::query(&format!(
            "SELECT event_id, global_position, aggregate_id = $1 AND aggregate_type = $2 \
             FROM {} WHERE event_id = ANY($3)",
            self.tables.events
        ))
        .bind(aggregate_id)
        .bind(aggregate_type)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("append_events"))?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get(0).map_err(db_error("append_events"))?;
            let position = to_u64(row.try_get(1).map_err(db_error("append_events"))?);
            let same_stream: bool = row.try_get(2).map_err(db_error("append_events"))?;
            let place = if same_stream {
                StoredId::InThisStream
            } else {
                StoredId::Elsewhere(position)
            };
            found.insert(id, (position, place));
        }
        Ok(found)
    }

    async fn conflict(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        expected: ExpectedVersion,
    ) -> Error {
        let actual = match self.pool.acquire().await {
            Ok(mut conn) => self
                .stream_version_on(&mut conn, aggregate_id, aggregate_type, "append_events")
                .await
                .unwrap_or(0),
            Err(_) => 0,
        };
        Error::OptimisticLock {
            aggregate_id,
            aggregate_type: aggregate_type.to_owned(),
            expected,
            actual,
        }
    }

    /// A transaction for an append, at READ COMMITTED whatever the server's default: each
    /// statement after the append lock must see what the previous lock holder committed
    /// (a REPEATABLE READ snapshot would be taken before the lock is granted).
    pub(super) async fn begin_append(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(db_error("append_events"))
    }

    /// Takes the schema's append lock in `conn`'s transaction (see the module docs).
    pub(super) async fn lock_appends(&self, conn: &mut PgConnection) -> Result<()> {
        let (class, object) = self.tables.append_lock;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(class)
            .bind(object)
            .execute(conn)
            .await
            .map_err(db_error("append_events"))?;
        Ok(())
    }

    /// Announces the committed append of events up to `global_position` on the schema's
    /// channel (delivered by PostgreSQL at commit, not before).
    pub(super) async fn notify(&self, conn: &mut PgConnection, global_position: u64) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.tables.channel)
            .bind(global_position.to_string())
            .execute(conn)
            .await
            .map_err(db_error("append_events"))?;
        Ok(())
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        aggregate_id: Uuid,
        aggregate_type: &str,
        events: &[&NewEvent],
        encoded: &[&EncodedEvent],
        first_version: u64,
    ) -> std::result::Result<Vec<i64>, sqlx::Error> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
        let type_versions: Vec<i32> = events
            .iter()
            .map(|e| i32::try_from(e.event_version()).unwrap_or(i32::MAX))
            .collect();
        let tenants: Vec<Option<Uuid>> = events.iter().map(|e| e.tenant_id).collect();
        let actors: Vec<Option<&str>> = events.iter().map(|e| e.actor_id.as_deref()).collect();
        let versions: Vec<i64> = (0..events.len() as u64)
            .map(|i| to_i64(first_version + i))
            .collect();
        let timestamps: Vec<DateTime<Utc>> = events.iter().map(|e| e.timestamp).collect();
        let payloads: Vec<&str> = encoded.iter().map(|e| e.payload.as_str()).collect();
        let metadata: Vec<&str> = encoded.iter().map(|e| e.metadata.as_str()).collect();
        let correlations: Vec<Option<Uuid>> = events.iter().map(|e| e.correlation_id).collect();
        let causations: Vec<Option<Uuid>> = events.iter().map(|e| e.causation_id).collect();
        let sql = format!(
            "INSERT INTO {} (event_id, aggregate_id, aggregate_type, event_type, event_version, \
                 tenant_id, actor_id, version, timestamp, payload, metadata, correlation_id, causation_id) \
             SELECT e.id, $1, $2, e.type, e.type_version, e.tenant, e.actor, e.version, e.at, \
                 e.payload::jsonb, e.metadata::jsonb, e.correlation, e.causation \
             FROM UNNEST($3::uuid[], $4::text[], $5::int4[], $6::uuid[], $7::text[], $8::int8[], \
                 $9::timestamptz[], $10::text[], $11::text[], $12::uuid[], $13::uuid[]) WITH ORDINALITY \
                 AS e(id, type, type_version, tenant, actor, version, at, payload, metadata, correlation, causation, n) \
             ORDER BY e.n \
             RETURNING global_position",
            self.tables.events
        );
        let mut positions: Vec<i64> = sqlx::query_scalar(&sql)
            .bind(aggregate_id)
            .bind(aggregate_type)
            .bind(ids)
            .bind(types)
            .bind(type_versions)
            .bind(tenants)
            .bind(actors)
            .bind(versions)
            .bind(timestamps)
            .bind(payloads)
            .bind(metadata)
            .bind(correlations)
            .bind(causations)
            .fetch_all(&mut *conn)
            .await?;
        positions.sort_unstable();
        Ok(positions)
    }

    /// One append in its own explicit transaction, statement by statement: the lock, the
    /// event-id and version lookups, the `INSERT` and the notification (the path of a
    /// schema initialized before the append function existed).
    pub(super) async fn append_statements(&self, request: &AppendRequest) -> Result<AppendResult> {
        const OP: &str = "append_events";
        let mut tx = self.begin_append().await?;
        // The statements, in a block of their own so that every way out of it ends
        // the transaction below.
        let written: std::result::Result<Written, Failed> = async {
            let tx: &mut PgConnection = &mut tx;
            let (events, encoded) = (&request.events[..], &request.encoded[..]);
            self.lock_appends(&mut *tx).await?;
            let stored = self
                .stored_positions(
                    &mut *tx,
                    events,
                    request.aggregate_id,
                    &request.aggregate_type,
                )
                .await?;
            let current = self
                .stream_version_on(&mut *tx, request.aggregate_id, &request.aggregate_type, OP)
                .await?;
            let plan = plan_append(
                request.aggregate_id,
                &request.aggregate_type,
                events,
                request.expected,
                current,
                |id| stored.get(&id).map_or(StoredId::No, |(_, place)| *place),
            )?;
            let fresh = match plan {
                AppendPlan::Nothing => {
                    let global_position = match events.last() {
                        Some(last) => stored.get(&last.event_id).map_or(0, |(p, _)| *p),
                        None => {
                            let max: i64 = sqlx::query_scalar(&format!(
                                "SELECT COALESCE(MAX(global_position), 0) FROM {}",
                                self.tables.events
                            ))
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(db_error(OP))?;
                            to_u64(max)
                        }
                    };
                    return Ok(Written::Nothing(AppendResult {
                        new_version: current,
                        global_position,
                        already_stored: !events.is_empty(),
                    }));
                }
                AppendPlan::Write { fresh } => fresh,
            };
            let mut batch: Vec<&NewEvent> = Vec::with_capacity(fresh.len());
            let mut batch_encoded: Vec<&EncodedEvent> = Vec::with_capacity(fresh.len());
            for &i in &fresh {
                batch.push(&events[i]);
                batch_encoded.push(&encoded[i]);
            }
            let positions = match self
                .write(
                    &mut *tx,
                    request.aggregate_id,
                    &request.aggregate_type,
                    &batch,
                    &batch_encoded,
                    current + 1,
                )
                .await
            {
                Ok(positions) => positions,
                Err(e) if is_unique_violation(&e) => return Err(Failed::Conflict),
                Err(e) => return Err(db_error(OP)(e).into()),
            };
            let global_position = positions.last().copied().map_or(0, to_u64);
            self.notify(&mut *tx, global_position).await?;
            Ok(Written::Yes(AppendResult {
                new_version: current + batch.len() as u64,
                global_position,
                already_stored: false,
            }))
        }
        .await;
        // Every way out ends the transaction here, releasing the schema's append lock
        // at once rather than when the connection is next used.
        match end_append(tx, written).await? {
            Some(result) => Ok(result),
            None => Err(self
                .conflict(
                    request.aggregate_id,
                    &request.aggregate_type,
                    request.expected,
                )
                .await),
        }
    }

    /// One append: a call of the append function for it alone (or its statements, on a
    /// schema without the function).
    pub(super) async fn append_one(&self, request: &AppendRequest) -> Result<AppendResult> {
        if self.append_function_missing.load(Ordering::Acquire) {
            return self.append_statements(request).await;
        }
        match self
            .call_append_function(std::slice::from_ref(request))
            .await
        {
            Ok(mut results) => results.pop().unwrap_or_else(|| {
                Err(db_error("append_events")(sqlx::Error::Protocol(
                    "the append function gave no answer".into(),
                )))
            }),
            Err(Call::Missing) => self.append_statements(request).await,
            // Another writer, around the append lock, took the version first.
            Err(Call::Failed(e)) if is_unique_violation(&e) => Err(self
                .conflict(
                    request.aggregate_id,
                    &request.aggregate_type,
                    request.expected,
                )
                .await),
            Err(Call::Failed(e)) => Err(db_error("append_events")(e)),
        }
    }
}

impl GroupWriter for PostgresEventStore {
    async fn write_group(&self, group: Vec<AppendRequest>) -> Vec<Result<AppendResult>> {
        if group.len() == 1 || self.append_function_missing.load(Ordering::Acquire) {
            let mut results = Vec::with_capacity(group.len());
            for request in &group {
                results.push(self.append_one(request).await);
            }
            return results;
        }
        let error = match self.call_append_function(&group).await {
            Ok(results) => return results,
            Err(Call::Missing) => None,
            Err(Call::Failed(e)) => Some(db_error("append_events")(e)),
        };
        if let Some(error) = error.as_ref().filter(|e| must_not_retry(e)) {
            return group.iter().map(|_| Err(copy_error(error))).collect();
        }
        if let Some(error) = &error {
            tracing::debug!(%error, appends = group.len(), "a group commit failed; writing its appends one at a time");
        }
        let mut results = Vec::with_capacity(group.len());
        for request in &group {
            results.push(self.append_one(request).await);
        }
        results
    }
}
