//! The [`EventStore`] implementation of [`PostgresEventStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::reads::{fetch_events, paged_read, Bind, Filter};
use super::row::SELECT;
use super::{db_error, to_i64, to_u64, PostgresEventStore};
use crate::envelope::NewEvent;
use crate::error::Result;
use crate::store::clamp_timestamp;
use crate::store::expand::split_aware;
use crate::store::group_commit::AppendRequest;
use crate::store::schema_state::{after_check, Need};
use crate::store::sql::encode_batch;
use crate::store::{
    check_batch, AppendResult, EventStore, EventTypeCount, ExpectedVersion, GetEventsOptions,
    ReadOptions, StoredEventStream, StreamId,
};
use crate::stored::{EventStream, StoredEvent};

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
            self.ready(Need::WriteEvents).await?;
            // Serialize (and check raw payloads of registered types) before taking the
            // append lock, so the lock is held for SQL only.
            check_batch(&self.registry, aggregate_type, &events)?;
            self.ensure_outbox().await?;
            let encoded = encode_batch(&self.registry, &events)?;
            let request = AppendRequest {
                aggregate_id,
                aggregate_type: aggregate_type.to_owned(),
                events,
                encoded,
                expected: expected_version,
            };
            self.group.append(self, request).await
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
