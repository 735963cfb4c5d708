//! The [`EventStore`] implementation of [`SqliteEventStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::Row;
use uuid::Uuid;

use super::append::stream_version;
use super::page::Bind;
use super::reads::{fetch_events, paged_read, placed, Filter};

use super::source::Source;
use super::timestamp::format_timestamp;

use super::{db_error, PayloadFormat, SqliteEventStore};
use crate::envelope::NewEvent;
use crate::error::Result;
use crate::store::clamp_timestamp;
use crate::store::expand::split_aware;
use crate::store::group_commit::AppendRequest;
use crate::store::schema_state::{after_check, Need};
use crate::store::sql::{encode_batch, to_i64, to_u64};
use crate::store::{
    check_batch, AppendResult, EventStore, EventTypeCount, ExpectedVersion, GetEventsOptions,
    ReadOptions, ReplayedEvent, StoredEventStream, StreamId,
};
use crate::stored::{EventStream, StoredEvent};

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        events: Vec<NewEvent>,
        expected_version: ExpectedVersion,
    ) -> Result<AppendResult> {
        traced!("append_events", backend = "sqlite", %aggregate_id, aggregate_type, count = events.len(), ?expected_version, {
            const OP: &str = "append_events";
            self.ready(OP, Need::WriteEvents, true).await?;
            // Serialize (and check raw payloads of registered types) before taking the
            // write lock, so the lock is held for SQL only.
            check_batch(&self.registry, aggregate_type, &events)?;
            if self.payload_format() == PayloadFormat::EventsourcePy {
                super::python::check_batch(&self.registry, &events)?;
            }
            self.ensure_outbox().await?;
            let encoded = encode_batch(&self.registry, &events)?;
            let request = AppendRequest {
                aggregate_id,
                aggregate_type: aggregate_type.to_owned(),
                events,
                encoded,
                expected: expected_version,
            };
            match (&self.group, &self.native) {
                // An empty append writes nothing and has nothing to share.
                _ if request.events.is_empty() => self.append_alone(&request).await,
                (Some(group), _) => group.append(self, request).await,
                (None, Some(native)) => self.write_one_native(native, request).await,
                (None, None) => self.append_alone(&request).await,
            }
        })
    }

    async fn get_events(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        options: GetEventsOptions,
    ) -> Result<EventStream> {
        traced!("get_events", backend = "sqlite", %aggregate_id, aggregate_type, ?options, {
            self.ready("get_events", Need::ReadEvents, false).await?;
            let mut filter = Filter::default();
            filter.push(
                "aggregate_id = ? AND aggregate_type = ?",
                [
                    Bind::Text(aggregate_id.to_string()),
                    Bind::Text(aggregate_type.to_owned()),
                ],
            );
            if let Some(v) = options.from_version {
                // With the rows at no version, which fail the read (naming the row)
                // instead of being left out.
                filter.push(
                    format!("(version >= ? OR NOT ({}))", placed("version")),
                    [Bind::Int(to_i64(v))],
                );
            }
            if let Some(from) = options.from_timestamp {
                filter.push("timestamp >= ?", [Bind::Text(format_timestamp(clamp_timestamp(from)))]);
            }
            if let Some(to) = options.to_timestamp {
                filter.push("timestamp <= ?", [Bind::Text(format_timestamp(clamp_timestamp(to)))]);
            }
            let rows = fetch_events(self, "get_events", "version", &filter).await?;
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
            let mut filter = Filter::default();
            filter.push(
                "aggregate_id = ? AND aggregate_type = ?",
                [
                    Bind::Text(stream_id.aggregate_id.to_string()),
                    Bind::Text(stream_id.aggregate_type),
                ],
            );
            let filter = filter.read_options(&options);
            after_check(
                self.ready("read_stream", Need::ReadEvents, false),
                move || {
                    paged_read(
                        &self.select_columns(),
                        Source::of(self),
                        self.registry.clone(),
                        "read_stream",
                        "version",
                        filter,
                        &options,
                    )
                },
            )
        })
    }

    fn read_all(&self, options: ReadOptions) -> StoredEventStream<'_> {
        split_aware(&self.registry, options, move |options| {
            let filter = Filter::default().read_options(&options);
            after_check(self.ready("read_all", Need::ReadEvents, false), move || {
                paged_read(
                    &self.select_columns(),
                    Source::of(self),
                    self.registry.clone(),
                    "read_all",
                    "global_position",
                    filter,
                    &options,
                )
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
            backend = "sqlite",
            aggregate_type,
            ?tenant_id,
            {
                self.ready("get_events_by_type", Need::ReadEvents, false)
                    .await?;
                let mut filter = Filter::default();
                filter.push(
                    "aggregate_type = ?",
                    [Bind::Text(aggregate_type.to_owned())],
                );
                if let Some(tenant) = tenant_id {
                    filter.push("tenant_id = ?", [Bind::Text(tenant.to_string())]);
                }
                if let Some(from) = from_timestamp {
                    filter.push(
                        "timestamp >= ?",
                        [Bind::Text(format_timestamp(clamp_timestamp(from)))],
                    );
                }
                let rows =
                    fetch_events(self, "get_events_by_type", "global_position", &filter).await?;
                self.registry.expand_all(rows)
            }
        )
    }

    async fn event_exists(&self, event_id: Uuid) -> Result<bool> {
        traced!("event_exists", backend = "sqlite", %event_id, {
            self.ready("event_exists", Need::ReadEvents, false).await?;
            let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM events WHERE event_id = ?")
                .bind(event_id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error("event_exists"))?;
            Ok(found.is_some())
        })
    }

    async fn get_stream_version(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<u64> {
        traced!("get_stream_version", backend = "sqlite", %aggregate_id, aggregate_type, {
            self.ready("get_stream_version", Need::ReadEvents, false).await?;
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(db_error("get_stream_version"))?;
            stream_version(&mut conn, aggregate_id, aggregate_type, "get_stream_version").await
        })
    }

    async fn get_global_position(&self) -> Result<u64> {
        traced!("get_global_position", backend = "sqlite", {
            self.ready("get_global_position", Need::ReadEvents, false)
                .await?;
            let max: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error("get_global_position"))?;
            Ok(to_u64(max))
        })
    }

    async fn replay_stream(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        from_version: u64,
    ) -> Result<Vec<ReplayedEvent>> {
        traced!("replay_stream", backend = "sqlite", %aggregate_id, aggregate_type, from_version, {
            const OP: &str = "replay_stream";
            self.ready(OP, Need::ReadEvents, false).await?;
            let page = Source::of(self)
                .read_replay(&self.replay_query(super::replay::Part::Whole), super::replay::replay_binds(aggregate_id, aggregate_type, from_version), OP)
                .await?;
            self.decode_replayed(&page)
        })
    }

    fn replay_stream_pages<'a>(
        &'a self,
        aggregate_id: Uuid,
        aggregate_type: &'a str,
        from_version: u64,
    ) -> BoxStream<'a, Result<Vec<ReplayedEvent>>> {
        self.replay_pages(aggregate_id, aggregate_type, from_version)
    }

    async fn event_type_counts(&self) -> Result<Vec<EventTypeCount>> {
        traced!("event_type_counts", backend = "sqlite", {
            self.ready("event_type_counts", Need::ReadEvents, false)
                .await?;
            // Rows written by eventsource-py keep the schema version in the payload.
            // (An uninitialized eventsource-py table has no event_version column.)
            let column = if !self.select_columns().event_version {
                "NULL"
            } else {
                "event_version"
            };
            let sql = format!(
                "SELECT event_type, CAST(COALESCE({column}, \
                 CASE WHEN json_valid(payload) THEN json_extract(payload, '$.event_version') END, 1) AS INTEGER) AS v, \
                 COUNT(*) FROM events GROUP BY event_type, v ORDER BY event_type, v"
            );
            let rows = sqlx::query(&sql)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("event_type_counts"))?;
            rows.iter()
                .map(|r| {
                    // As bytes: a name that is not UTF-8 is shown with U+FFFD, and counted.
                    let event_type: Vec<u8> =
                        r.try_get(0).map_err(db_error("event_type_counts"))?;
                    let event_type = String::from_utf8(event_type)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    let version: i64 = r.try_get(1).map_err(db_error("event_type_counts"))?;
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
