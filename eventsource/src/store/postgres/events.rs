//! The [`EventStore`] implementation of [`PostgresEventStore`].

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::Row;
use uuid::Uuid;

use super::reads::{fetch_events, paged_read, Bind, Filter};
use super::row::SELECT;
use super::{db_error, is_unique_violation, to_i64, to_u64, PostgresEventStore};
use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::store::clamp_timestamp;
use crate::store::expand::split_aware;
use crate::store::schema_state::{after_check, Need};
use crate::store::sql::{encode_batch, end_append, EncodedEvent, Failed, Written};
use crate::store::{
    check_batch, plan_append, AppendPlan, AppendResult, EventStore, EventTypeCount,
    ExpectedVersion, GetEventsOptions, ReadOptions, StoredEventStream, StoredId, StreamId,
};
use crate::stored::{EventStream, StoredEvent};

impl PostgresEventStore {
    async fn stream_version_on(
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
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        events: Vec<NewEvent>,
        expected_version: ExpectedVersion,
    ) -> Result<AppendResult> {
        traced!("append_events", backend = "postgres", %aggregate_id, aggregate_type, count = events.len(), ?expected_version, {
            const OP: &str = "append_events";
            self.ready(Need::WriteEvents).await?;
            // Serialize (and check raw payloads of registered types) before taking the
            // append lock, so the lock is held for SQL only.
            check_batch(&self.registry, aggregate_type, &events)?;
            self.ensure_outbox().await?;
            let encoded = encode_batch(&self.registry, &events)?;
            let mut tx = self.begin_append().await?;
            // The statements, in a block of their own so that every way out of it ends
            // the transaction below.
            let written: std::result::Result<Written, Failed> = async {
                let tx: &mut PgConnection = &mut tx;
                let (events, encoded) = (&events[..], &encoded[..]);
                        self.lock_appends(&mut *tx).await?;
                let stored = self
                    .stored_positions(&mut *tx, events, aggregate_id, aggregate_type)
                    .await?;
                let current = self
                    .stream_version_on(&mut *tx, aggregate_id, aggregate_type, OP)
                    .await?;
                let plan = plan_append(
                    aggregate_id,
                    aggregate_type,
                    events,
                    expected_version,
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
                            success: true,
                            new_version: current,
                            global_position,
                            conflict: false,
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
                    .write(&mut *tx, aggregate_id, aggregate_type, &batch, &batch_encoded, current + 1)
                    .await
                {
                    Ok(positions) => positions,
                    Err(e) if is_unique_violation(&e) => return Err(Failed::Conflict),
                    Err(e) => return Err(db_error(OP)(e).into()),
                };
                let global_position = positions.last().copied().map_or(0, to_u64);
                self.notify(&mut *tx, global_position).await?;
                Ok(Written::Yes(AppendResult {
                    success: true,
                    new_version: current + batch.len() as u64,
                    global_position,
                    conflict: false,
                }))
            }
            .await;
            // Every way out ends the transaction here, releasing the schema's append lock
            // at once rather than when the connection is next used.
            match end_append(tx, written).await? {
                Some(result) => Ok(result),
                None => Err(self
                    .conflict(aggregate_id, aggregate_type, expected_version)
                    .await),
            }
        })
    }

    async fn get_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        options: GetEventsOptions,
    ) -> Result<EventStream> {
        traced!("get_events", backend = "postgres", %aggregate_id, aggregate_type, ?options, {
            self.ready(Need::ReadEvents).await?;
            let mut filter = Filter::default().stream(aggregate_id, aggregate_type);
            if let Some(v) = options.from_version {
                // With the rows at a version below 1, which fail the read (naming the
                // row) instead of being left out.
                filter.push("(version >= $? OR version < 1)", Bind::Int(to_i64(v)));
            }
            if let Some(from) = options.from_timestamp {
                filter.push("timestamp >= $?", Bind::Time(clamp_timestamp(from)));
            }
            if let Some(to) = options.to_timestamp {
                filter.push("timestamp <= $?", Bind::Time(clamp_timestamp(to)));
            }
            let sql = format!(
                "SELECT {SELECT} FROM {} WHERE {} ORDER BY version",
                self.tables.events,
                filter.where_sql()
            );
            let rows =
                fetch_events(&self.pool, &self.registry, "get_events", &sql, &filter.binds).await?;
            self.registry.expand_stream(aggregate_id, aggregate_type, rows)
        })
    }

    fn read_stream<'a>(
        &'a self,
        stream_id: &StreamId,
        options: ReadOptions,
    ) -> StoredEventStream<'a> {
        let stream_id = stream_id.clone();
        split_aware(&self.registry, options, move |options| {
            let filter = Filter::default()
                .stream(stream_id.aggregate_id, &stream_id.aggregate_type)
                .read_options(&options);
            after_check(self.ready(Need::ReadEvents), move || {
                paged_read(self, "read_stream", "version", filter, &options)
            })
        })
    }

    fn read_all(&self, options: ReadOptions) -> StoredEventStream<'_> {
        split_aware(&self.registry, options, move |options| {
            let filter = Filter::default().read_options(&options);
            after_check(self.ready(Need::ReadEvents), move || {
                paged_read(self, "read_all", "global_position", filter, &options)
            })
        })
    }

    async fn get_events_by_type(
        &self,
        aggregate_type: &str,
        tenant_id: Option<Uuid>,
        from_timestamp: Option<DateTime<Utc>>,
    ) -> Result<Vec<StoredEvent>> {
        traced!(
            "get_events_by_type",
            backend = "postgres",
            aggregate_type,
            ?tenant_id,
            {
                self.ready(Need::ReadEvents).await?;
                let mut filter = Filter::default();
                filter.push("aggregate_type = $?", Bind::Text(aggregate_type.to_owned()));
                if let Some(tenant) = tenant_id {
                    filter.push("tenant_id = $?", Bind::Uuid(tenant));
                }
                if let Some(from) = from_timestamp {
                    filter.push("timestamp >= $?", Bind::Time(clamp_timestamp(from)));
                }
                let sql = format!(
                    "SELECT {SELECT} FROM {} WHERE {} ORDER BY global_position",
                    self.tables.events,
                    filter.where_sql()
                );
                let rows = fetch_events(
                    &self.pool,
                    &self.registry,
                    "get_events_by_type",
                    &sql,
                    &filter.binds,
                )
                .await?;
                self.registry.expand_all(rows)
            }
        )
    }

    async fn event_exists(&self, event_id: Uuid) -> Result<bool> {
        traced!("event_exists", backend = "postgres", %event_id, {
            self.ready(Need::ReadEvents).await?;
            let found: Option<i32> = sqlx::query_scalar(&format!(
                "SELECT 1 FROM {} WHERE event_id = $1",
                self.tables.events
            ))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("event_exists"))?;
            Ok(found.is_some())
        })
    }

    async fn get_stream_version(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<u64> {
        traced!("get_stream_version", backend = "postgres", %aggregate_id, aggregate_type, {
            self.ready(Need::ReadEvents).await?;
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(db_error("get_stream_version"))?;
            self.stream_version_on(&mut conn, aggregate_id, aggregate_type, "get_stream_version").await
        })
    }

    async fn get_global_position(&self) -> Result<u64> {
        traced!("get_global_position", backend = "postgres", {
            self.ready(Need::ReadEvents).await?;
            let max: i64 = sqlx::query_scalar(&format!(
                "SELECT COALESCE(MAX(global_position), 0) FROM {}",
                self.tables.events
            ))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error("get_global_position"))?;
            Ok(to_u64(max))
        })
    }

    async fn event_type_counts(&self) -> Result<Vec<EventTypeCount>> {
        traced!("event_type_counts", backend = "postgres", {
            self.ready(Need::ReadEvents).await?;
            let rows = sqlx::query(&format!(
                "SELECT event_type, event_version, COUNT(*) FROM {} \
                 GROUP BY event_type, event_version ORDER BY event_type, event_version",
                self.tables.events
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("event_type_counts"))?;
            rows.iter()
                .map(|r| {
                    let event_type: String = r.try_get(0).map_err(db_error("event_type_counts"))?;
                    let version: i32 = r.try_get(1).map_err(db_error("event_type_counts"))?;
                    let count: i64 = r.try_get(2).map_err(db_error("event_type_counts"))?;
                    Ok(EventTypeCount {
                        event_type,
                        event_version: u32::try_from(version).unwrap_or(0),
                        count: to_u64(count),
                    })
                })
                .collect()
        })
    }
}
