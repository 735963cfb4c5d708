//! The [`EventStore`] implementation of [`SqliteEventStore`].

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::page::{self as page_text, Bind, PageQuery, Record};
use super::python::python_payload;
use super::reads::{fetch_events, paged_read, placed, Filter};
use super::row;
use super::timestamp::format_timestamp;
use super::unreadable::{self, unreadable};
use super::{db_error, is_unique_violation, PayloadFormat, SqliteEventStore};
use crate::envelope::{now, NewEvent};
use crate::error::{Error, Result};
use crate::store::clamp_timestamp;
use crate::store::expand::split_aware;
use crate::store::schema_state::{after_check, Need};
use crate::store::sql::{encode_batch, end_append, to_i64, to_u64, EncodedEvent, Failed, Written};
use crate::store::{
    check_batch, plan_append, AppendPlan, AppendResult, EventStore, EventTypeCount,
    ExpectedVersion, GetEventsOptions, ReadOptions, ReplayedEvent, StoredEventStream, StoredId,
    StreamId,
};
use crate::stored::{EventStream, StoredEvent};

const INSERT: &str = "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, tenant_id, \
     actor_id, version, timestamp, payload, created_at, event_version, correlation_id, causation_id, metadata) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

async fn stream_version(
    conn: &mut SqliteConnection,
    aggregate_id: Uuid,
    aggregate_type: &str,
    operation: &'static str,
) -> Result<u64> {
    // MAX over the stream's index, as an integer; in the rare stream where some other
    // tool wrote a version as text or a BLOB (which sorts above every integer), the
    // greatest integer version instead: that row is not a version (reading the stream
    // reports it).
    let max: Option<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN v IS NULL THEN 0 WHEN typeof(v) = 'integer' THEN v END \
         FROM (SELECT MAX(version) AS v FROM events WHERE aggregate_id = ? AND aggregate_type = ?)",
    )
    .bind(aggregate_id.to_string())
    .bind(aggregate_type)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error(operation))?;
    let version = match max {
        Some(version) => version,
        None => sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM events \
             WHERE aggregate_id = ? AND aggregate_type = ? AND typeof(version) = 'integer'",
        )
        .bind(aggregate_id.to_string())
        .bind(aggregate_type)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error(operation))?,
    };
    Ok(to_u64(version))
}

/// Global positions of the batch's events that are stored already.
async fn stored_positions(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    aggregate_id: Uuid,
    aggregate_type: &str,
) -> Result<HashMap<Uuid, (u64, StoredId)>> {
    let mut found = HashMap::new();
    let aggregate_id = aggregate_id.to_string();
    for chunk in events.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT event_id, global_position, aggregate_id = ? AND aggregate_type = ? \
             FROM events WHERE event_id IN ({marks})"
        );
        let mut query = sqlx::query(&sql).bind(&aggregate_id).bind(aggregate_type);
        for event in chunk {
            query = query.bind(event.event_id.to_string());
        }
        for row in query
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("append_events"))?
        {
            let id: String = row.try_get(0).map_err(db_error("append_events"))?;
            let position: i64 = row.try_get(1).map_err(db_error("append_events"))?;
            let same_stream: bool = row.try_get(2).map_err(db_error("append_events"))?;
            if let Ok(id) = Uuid::parse_str(&id) {
                let position = to_u64(position);
                let place = if same_stream {
                    StoredId::InThisStream
                } else {
                    StoredId::Elsewhere(position)
                };
                found.insert(id, (position, place));
            }
        }
    }
    Ok(found)
}

impl SqliteEventStore {
    /// The statements of an append, inside its `BEGIN IMMEDIATE` transaction.
    async fn append_in(
        &self,
        tx: &mut SqliteConnection,
        aggregate_id: Uuid,
        aggregate_type: &str,
        events: &[NewEvent],
        encoded: &[EncodedEvent],
        expected_version: ExpectedVersion,
    ) -> std::result::Result<Written, Failed> {
        const OP: &str = "append_events";
        let stored = stored_positions(&mut *tx, events, aggregate_id, aggregate_type).await?;
        let current = stream_version(&mut *tx, aggregate_id, aggregate_type, OP).await?;
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
                        let max: i64 = sqlx::query_scalar(
                            "SELECT COALESCE(MAX(global_position), 0) FROM events",
                        )
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

        let aggregate_id_text = aggregate_id.to_string();
        let created_at = format_timestamp(now());
        let python = self.payload_format() == PayloadFormat::EventsourcePy;
        let mut version = current;
        let mut global_position = 0;
        for i in fresh {
            version += 1;
            let event = &events[i];
            let python_payload = if python {
                Some(
                    python_payload(
                        event,
                        &encoded[i].payload,
                        aggregate_id,
                        aggregate_type,
                        version,
                    )
                    .map_err(Failed::from)?,
                )
            } else {
                None
            };
            let payload = python_payload.as_deref().unwrap_or(&encoded[i].payload);
            let result = sqlx::query(INSERT)
                .bind(event.event_id.to_string())
                .bind(&aggregate_id_text)
                .bind(aggregate_type)
                .bind(event.event_type())
                .bind(event.tenant_id.map(|t| t.to_string()))
                .bind(event.actor_id.as_deref())
                .bind(to_i64(version))
                .bind(format_timestamp(event.timestamp))
                .bind(payload)
                .bind(&created_at)
                .bind(i64::from(event.event_version()))
                .bind(event.correlation_id.map(|t| t.to_string()))
                .bind(event.causation_id.map(|t| t.to_string()))
                .bind(&encoded[i].metadata)
                .execute(&mut *tx)
                .await;
            match result {
                Ok(done) => global_position = to_u64(done.last_insert_rowid()),
                Err(e) if is_unique_violation(&e) => return Err(Failed::Conflict),
                Err(e) => return Err(db_error(OP)(e).into()),
            }
        }
        Ok(Written::Yes(AppendResult {
            success: true,
            new_version: version,
            global_position,
            conflict: false,
        }))
    }

    async fn conflict(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        expected: ExpectedVersion,
    ) -> Error {
        let actual = match self.pool.acquire().await {
            Ok(mut conn) => {
                stream_version(&mut conn, aggregate_id, aggregate_type, "append_events")
                    .await
                    .unwrap_or(0)
            }
            Err(_) => 0,
        };
        Error::OptimisticLock {
            aggregate_id,
            aggregate_type: aggregate_type.to_owned(),
            expected,
            actual,
        }
    }
}

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
            // BEGIN IMMEDIATE takes the database's write lock now: the version read below
            // cannot go stale before the INSERTs, in this process or any other.
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error(OP))?;
            let written = self
                .append_in(&mut tx, aggregate_id, aggregate_type, &events, &encoded, expected_version)
                .await;
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
                        self.pool.clone(),
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
                    self.pool.clone(),
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
            // Positions, type and payload only: no envelope to build in SQL or in Rust.
            // (Rows of eventsource-py keep their schema version in the payload.)
            let event_version = if self.select_columns().contains("event_version") {
                "event_version"
            } else {
                "NULL"
            };
            let sep = super::fields::SEPARATOR;
            let inner = format!(
                "SELECT printf('%d{sep}%s{sep}%s{sep}%s{sep}%s', global_position, {version}, \
                     {event_version}, {event_type}, payload) AS r, version AS n \
                 FROM events WHERE aggregate_id = ? AND aggregate_type = ? \
                     AND (version >= ? OR NOT ({placed})) \
                 ORDER BY version",
                placed = placed("version"),
                version = row::VERSION_TEXT,
                event_type = row::EVENT_TYPE_TEXT
            );
            let query = PageQuery::new(&inner, "ASC");
            let binds = [
                Bind::Text(aggregate_id.to_string()),
                Bind::Text(aggregate_type.to_owned()),
                Bind::Int(to_i64(from_version)),
            ];
            let page = page_text::read(&self.pool, &query, &binds, OP).await?;
            let events = page
                .records()
                .map(|record| match record? {
                    Record::Text(r) => row::decode_replayed(r, &self.registry),
                    Record::NotUtf8(r) => Err(unreadable(r, &unreadable::REPLAY_COLUMNS)?.error),
                })
                .collect::<Result<Vec<_>>>()?;
            self.registry
                .expand_replayed(page_text::in_order(events, |e| e.version, false))
        })
    }

    async fn event_type_counts(&self) -> Result<Vec<EventTypeCount>> {
        traced!("event_type_counts", backend = "sqlite", {
            self.ready("event_type_counts", Need::ReadEvents, false)
                .await?;
            // Rows written by eventsource-py keep the schema version in the payload.
            // (An uninitialized eventsource-py table has no event_version column.)
            let column = if !self.select_columns().contains("event_version") {
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
