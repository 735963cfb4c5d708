//! One append to a [`SqliteEventStore`] in its own `BEGIN IMMEDIATE` transaction (a
//! group of concurrent appends is written by [`super::append_group`]).

use std::collections::HashMap;

use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::python::python_payload;
use super::timestamp::format_timestamp;
use super::{db_error, is_unique_violation, PayloadFormat, SqliteEventStore};
use crate::envelope::{now, NewEvent};
use crate::error::{Error, Result};
use crate::store::group_commit::AppendRequest;
use crate::store::sql::{end_append, to_i64, to_u64, EncodedEvent, Failed, Written};
use crate::store::{plan_append, AppendPlan, AppendResult, ExpectedVersion, StoredId};

/// One event's `INSERT`.
const INSERT: &str = concat!(
    "INSERT INTO events (",
    columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);

/// A stream's version (bound `aggregate_id, aggregate_type`): MAX over the stream's
/// index, as an integer; NULL when that is not an integer (see [`stream_version`]).
pub(super) const STREAM_VERSION: &str =
    "SELECT CASE WHEN v IS NULL THEN 0 WHEN typeof(v) = 'integer' THEN v END \
     FROM (SELECT MAX(version) AS v FROM events WHERE aggregate_id = ? AND aggregate_type = ?)";

/// A stream's greatest integer version (bound `aggregate_id, aggregate_type`).
pub(super) const INTEGER_STREAM_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM events \
     WHERE aggregate_id = ? AND aggregate_type = ? AND typeof(version) = 'integer'";

/// Event ids per lookup (one parameter each).
pub(super) const ID_LOOKUP: usize = 500;

/// The lookup of `ids` event ids: `event_id, global_position, aggregate_id,
/// aggregate_type` of each stored one.
pub(super) fn stored_ids_sql(ids: usize) -> String {
    let marks = vec!["?"; ids].join(", ");
    format!(
        "SELECT event_id, global_position, CAST(aggregate_id AS TEXT), CAST(aggregate_type AS TEXT) \
         FROM events WHERE event_id IN ({marks})"
    )
}

pub(super) async fn stream_version(
    conn: &mut SqliteConnection,
    aggregate_id: Uuid,
    aggregate_type: &str,
    operation: &'static str,
) -> Result<u64> {
    // MAX over the stream's index, as an integer; in the rare stream where some other
    // tool wrote a version as text or a BLOB (which sorts above every integer), the
    // greatest integer version instead: that row is not a version (reading the stream
    // reports it).
    let max: Option<i64> = sqlx::query_scalar(STREAM_VERSION)
        .bind(aggregate_id.to_string())
        .bind(aggregate_type)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error(operation))?;
    let version = match max {
        Some(version) => version,
        None => sqlx::query_scalar(INTEGER_STREAM_VERSION)
            .bind(aggregate_id.to_string())
            .bind(aggregate_type)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error(operation))?,
    };
    Ok(to_u64(version))
}

/// Global positions of the batch's events that are stored already, and where.
async fn stored_positions(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    aggregate_id: Uuid,
    aggregate_type: &str,
) -> Result<HashMap<Uuid, (u64, StoredId)>> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let aggregate_id = aggregate_id.to_string();
    Ok(stored_anywhere(conn, &ids)
        .await?
        .into_iter()
        .map(|(id, found)| {
            let place = if found.in_stream(&aggregate_id, aggregate_type) {
                StoredId::InThisStream
            } else {
                StoredId::Elsewhere(found.position)
            };
            (id, (found.position, place))
        })
        .collect())
}

/// Where an event id is stored already.
pub(super) struct Found {
    pub(super) position: u64,
    /// The stream's id and type, as stored.
    stream: (String, String),
}

impl Found {
    /// A row of [`stored_ids_sql`]'s lookup: its position, stream id and type.
    pub(super) fn new(
        position: i64,
        aggregate_id: Option<String>,
        aggregate_type: Option<String>,
    ) -> Self {
        Found {
            position: to_u64(position),
            stream: (
                aggregate_id.unwrap_or_default(),
                aggregate_type.unwrap_or_default(),
            ),
        }
    }

    /// `true` when the event is stored in this stream (`aggregate_id` as text).
    pub(super) fn in_stream(&self, aggregate_id: &str, aggregate_type: &str) -> bool {
        self.stream.0 == aggregate_id && self.stream.1 == aggregate_type
    }
}

/// The stored events among `ids`, wherever they are.
pub(super) async fn stored_anywhere(
    conn: &mut SqliteConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Found>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(ID_LOOKUP) {
        let sql = stored_ids_sql(chunk.len());
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.to_string());
        }
        for row in query
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("append_events"))?
        {
            let id: String = row.try_get(0).map_err(db_error("append_events"))?;
            let position: i64 = row.try_get(1).map_err(db_error("append_events"))?;
            let aggregate_id: Option<String> = row.try_get(2).map_err(db_error("append_events"))?;
            let aggregate_type: Option<String> =
                row.try_get(3).map_err(db_error("append_events"))?;
            if let Ok(id) = Uuid::parse_str(&id) {
                found.insert(id, Found::new(position, aggregate_id, aggregate_type));
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
                    new_version: current,
                    global_position,
                    already_stored: !events.is_empty(),
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
            new_version: version,
            global_position,
            already_stored: false,
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

impl SqliteEventStore {
    /// One append in its own `BEGIN IMMEDIATE` transaction.
    pub(super) async fn append_alone(&self, request: &AppendRequest) -> Result<AppendResult> {
        const OP: &str = "append_events";
        // BEGIN IMMEDIATE takes the database's write lock now: the version read below
        // cannot go stale before the INSERTs, in this process or any other.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(OP))?;
        let written = self
            .append_in(
                &mut tx,
                request.aggregate_id,
                &request.aggregate_type,
                &request.events,
                &request.encoded,
                request.expected,
            )
            .await;
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
}
