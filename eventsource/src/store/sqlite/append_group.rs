//! A group of concurrent appends to a [`SqliteEventStore`] in one `BEGIN IMMEDIATE`
//! transaction (group commit, see [`crate::store::group_commit`]).
//!
//! A group is written in a fixed number of statements whatever its size: one lookup of
//! every event id of the group, one of every stream's version, one multi-row `INSERT`
//! per 500 events, and the commit. Each append is planned on its own (its expected
//! version against its stream's version, including appends earlier in the same group;
//! its event ids against the store), so a refused append is that append's error only.
//! An append repeating an event id of an earlier append in the same group waits for the
//! next transaction, and a group whose statements fail is written again one append at a
//! time (event ids make that safe), so every append gets the outcome it would have had
//! alone.

use std::collections::{HashMap, HashSet};

use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::append::{stored_anywhere, stream_version, Found};
use super::python::python_payload;
use super::timestamp::format_timestamp;
use super::{db_error, PayloadFormat, SqliteEventStore};
use crate::envelope::{now, NewEvent};
use crate::error::Result;
use crate::store::group_commit::{copy_error, must_not_retry, AppendRequest, GroupWriter};
use crate::store::sql::{to_i64, to_u64, EncodedEvent};
use crate::store::{plan_append, AppendPlan, AppendResult, StoredId};

/// Events per multi-row `INSERT` of a group (14 parameters each, well under SQLite's
/// limit of 32,766).
pub(super) const INSERT_ROWS: usize = 500;
/// Streams per version lookup of a group (one `UNION ALL` arm each; SQLite allows 500).
pub(super) const VERSION_STREAMS: usize = 200;

impl SqliteEventStore {
    /// Writes `group` in one transaction. `Ok` holds each request's outcome, `None` for
    /// one that must be written after this transaction (it repeats an event id of an
    /// earlier request of the group); `Err` when the transaction failed as a whole (and
    /// stored nothing).
    async fn write_together(
        &self,
        group: &[AppendRequest],
    ) -> Result<Vec<Option<Result<AppendResult>>>> {
        const OP: &str = "append_events";
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(OP))?;
        let ids = group_ids(group);
        let stored = stored_anywhere(&mut tx, &ids).await?;
        let versions = stream_versions(&mut tx, group).await?;
        let plan = plan_group(group, &stored, versions, self.payload_format());
        let positions = insert_rows(&mut tx, &plan.rows, &plan.created_at).await?;
        tx.commit().await.map_err(db_error(OP))?;
        Ok(plan.finish(&positions))
    }
}

/// Every event id of `group`.
pub(super) fn group_ids(group: &[AppendRequest]) -> Vec<Uuid> {
    group
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.event_id))
        .collect()
}

/// What a group's transaction writes, planned from what is stored: each request's
/// outcome (`None` for one that must wait for the next transaction) and the rows to
/// insert.
pub(super) struct GroupPlan<'a> {
    pub(super) outcomes: Vec<Option<Result<AppendResult>>>,
    pub(super) rows: Vec<EventRow<'a>>,
    /// The `created_at` of every row.
    pub(super) created_at: String,
    /// Each written request, and the event id of its last event (whose global position
    /// is the request's).
    written: Vec<(usize, Uuid)>,
}

impl GroupPlan<'_> {
    /// The outcomes, with the global positions the `INSERT`s returned filled in.
    pub(super) fn finish(
        mut self,
        positions: &HashMap<Uuid, u64>,
    ) -> Vec<Option<Result<AppendResult>>> {
        for (index, last) in self.written {
            if let Some(Some(Ok(result))) = self.outcomes.get_mut(index) {
                result.global_position = positions.get(&last).copied().unwrap_or(0);
            }
        }
        self.outcomes
    }
}

/// Plans each request of `group` on its own: its expected version against its stream's
/// version in `versions` (appends earlier in the group included), its event ids against
/// `stored`.
pub(super) fn plan_group<'a>(
    group: &'a [AppendRequest],
    stored: &HashMap<Uuid, Found>,
    mut versions: HashMap<(Uuid, &'a str), u64>,
    format: PayloadFormat,
) -> GroupPlan<'a> {
    let python = format == PayloadFormat::EventsourcePy;
    let mut outcomes: Vec<Option<Result<AppendResult>>> = Vec::with_capacity(group.len());
    let mut rows: Vec<EventRow<'a>> = Vec::new();
    let mut written: Vec<(usize, Uuid)> = Vec::new();
    let mut planned: HashSet<Uuid> = HashSet::new();
    for (index, request) in group.iter().enumerate() {
        if request.events.iter().any(|e| planned.contains(&e.event_id)) {
            outcomes.push(None);
            continue;
        }
        let key = (request.aggregate_id, request.aggregate_type.as_str());
        let current = versions.get(&key).copied().unwrap_or(0);
        let aggregate_id = request.aggregate_id.to_string();
        let plan = plan_append(
            request.aggregate_id,
            &request.aggregate_type,
            &request.events,
            request.expected,
            current,
            |id| match stored.get(&id) {
                None => StoredId::No,
                Some(found) if found.in_stream(&aggregate_id, &request.aggregate_type) => {
                    StoredId::InThisStream
                }
                Some(found) => StoredId::Elsewhere(found.position),
            },
        );
        let fresh = match plan {
            Err(error) => {
                outcomes.push(Some(Err(error)));
                continue;
            }
            Ok(AppendPlan::Nothing) => {
                let global_position = request
                    .events
                    .last()
                    .and_then(|last| stored.get(&last.event_id))
                    .map_or(0, |found| found.position);
                outcomes.push(Some(Ok(AppendResult {
                    new_version: current,
                    global_position,
                    already_stored: !request.events.is_empty(),
                })));
                continue;
            }
            Ok(AppendPlan::Write { fresh }) => fresh,
        };
        let payloads: Result<Vec<Option<String>>> = fresh
            .iter()
            .zip(current + 1..)
            .map(|(&i, version)| {
                if python {
                    python_payload(
                        &request.events[i],
                        &request.encoded[i].payload,
                        request.aggregate_id,
                        &request.aggregate_type,
                        version,
                    )
                    .map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect();
        let payloads = match payloads {
            Ok(payloads) => payloads,
            Err(error) => {
                outcomes.push(Some(Err(error)));
                continue;
            }
        };
        let mut version = current;
        for (i, python_payload) in fresh.into_iter().zip(payloads) {
            version += 1;
            let event = &request.events[i];
            planned.insert(event.event_id);
            rows.push(EventRow {
                event,
                encoded: &request.encoded[i],
                aggregate_id: request.aggregate_id,
                aggregate_type: &request.aggregate_type,
                version,
                python_payload,
            });
        }
        versions.insert(key, version);
        if let Some(last) = rows.last() {
            written.push((index, last.event.event_id));
        }
        outcomes.push(Some(Ok(AppendResult {
            new_version: version,
            global_position: 0,
            already_stored: false,
        })));
    }
    GroupPlan {
        outcomes,
        rows,
        created_at: format_timestamp(now()),
        written,
    }
}

impl GroupWriter for SqliteEventStore {
    fn write_now(&self, group: &[AppendRequest]) -> Option<Vec<Result<AppendResult>>> {
        self.write_group_now(group)
    }

    async fn write_group(&self, group: Vec<AppendRequest>) -> Vec<Result<AppendResult>> {
        if let Some(native) = &self.native {
            return self.write_group_blocking(native, group).await;
        }
        if group.len() == 1 {
            return vec![self.append_alone(&group[0]).await];
        }
        let outcomes = match self.write_together(&group).await {
            Ok(outcomes) => outcomes,
            Err(error) if must_not_retry(&error) => {
                return group.iter().map(|_| Err(copy_error(&error))).collect();
            }
            Err(error) => {
                tracing::debug!(%error, appends = group.len(), "a group commit failed; writing its appends one at a time");
                group.iter().map(|_| None).collect()
            }
        };
        let mut results = Vec::with_capacity(group.len());
        for (request, outcome) in group.iter().zip(outcomes) {
            results.push(match outcome {
                Some(result) => result,
                None => self.append_alone(request).await,
            });
        }
        results
    }
}

/// An event row of a group's `INSERT`.
pub(super) struct EventRow<'a> {
    pub(super) event: &'a NewEvent,
    pub(super) encoded: &'a EncodedEvent,
    pub(super) aggregate_id: Uuid,
    pub(super) aggregate_type: &'a str,
    pub(super) version: u64,
    /// The payload in eventsource-py's form, where the database has it.
    python_payload: Option<String>,
}

impl EventRow<'_> {
    /// The payload as stored.
    pub(super) fn payload(&self) -> &str {
        self.python_payload
            .as_deref()
            .unwrap_or(&self.encoded.payload)
    }
}

/// The version lookup of `streams` streams: one row `(index, version)` per stream, each
/// bound `aggregate_id, aggregate_type`. MAX over each stream's index; NULL where it is
/// not an integer (see `stream_version`, which then answers for that stream).
pub(super) fn versions_sql(streams: usize) -> String {
    (0..streams)
        .map(|i| {
            format!(
                "SELECT {i}, CASE WHEN v IS NULL THEN 0 WHEN typeof(v) = 'integer' THEN v END \
                 FROM (SELECT MAX(version) AS v FROM events WHERE aggregate_id = ? AND aggregate_type = ?)"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The `INSERT` of `rows` rows, returning each row's event id and global position.
pub(super) fn insert_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    format!(
        concat!(
            "INSERT INTO events (",
            columns!(),
            ") VALUES {} RETURNING event_id, global_position"
        ),
        values
    )
}

/// The streams of `group`, each once, in order of first appearance.
pub(super) fn group_streams(group: &[AppendRequest]) -> Vec<(Uuid, &str)> {
    let mut streams = Vec::new();
    let mut seen = HashSet::new();
    for request in group {
        let key = (request.aggregate_id, request.aggregate_type.as_str());
        if seen.insert(key) {
            streams.push(key);
        }
    }
    streams
}

/// The current version of every stream of `group`.
async fn stream_versions<'a>(
    conn: &mut SqliteConnection,
    group: &'a [AppendRequest],
) -> Result<HashMap<(Uuid, &'a str), u64>> {
    let streams = group_streams(group);
    let mut versions = HashMap::with_capacity(streams.len());
    for chunk in streams.chunks(VERSION_STREAMS) {
        let sql = versions_sql(chunk.len());
        let mut query = sqlx::query(&sql);
        for (aggregate_id, aggregate_type) in chunk {
            query = query.bind(aggregate_id.to_string()).bind(*aggregate_type);
        }
        for row in query
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("append_events"))?
        {
            let i: i64 = row.try_get(0).map_err(db_error("append_events"))?;
            let version: Option<i64> = row.try_get(1).map_err(db_error("append_events"))?;
            let Some(&(aggregate_id, aggregate_type)) =
                usize::try_from(i).ok().and_then(|i| chunk.get(i))
            else {
                continue;
            };
            let version = match version {
                Some(version) => to_u64(version),
                None => {
                    stream_version(&mut *conn, aggregate_id, aggregate_type, "append_events")
                        .await?
                }
            };
            versions.insert((aggregate_id, aggregate_type), version);
        }
    }
    Ok(versions)
}

/// Inserts `rows` in multi-row statements; the global position of each by event id.
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[EventRow<'_>],
    created_at: &str,
) -> Result<HashMap<Uuid, u64>> {
    let mut positions = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_ROWS) {
        let sql = insert_sql(chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            let event = row.event;
            query = query
                .bind(event.event_id.to_string())
                .bind(row.aggregate_id.to_string())
                .bind(row.aggregate_type)
                .bind(event.event_type())
                .bind(event.tenant_id.map(|t| t.to_string()))
                .bind(event.actor_id.as_deref())
                .bind(to_i64(row.version))
                .bind(format_timestamp(event.timestamp))
                .bind(row.payload())
                .bind(created_at)
                .bind(i64::from(event.event_version()))
                .bind(event.correlation_id.map(|t| t.to_string()))
                .bind(event.causation_id.map(|t| t.to_string()))
                .bind(row.encoded.metadata.as_str());
        }
        for returned in query
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("append_events"))?
        {
            let id: String = returned.try_get(0).map_err(db_error("append_events"))?;
            let position: i64 = returned.try_get(1).map_err(db_error("append_events"))?;
            if let Ok(id) = Uuid::parse_str(&id) {
                positions.insert(id, to_u64(position));
            }
        }
    }
    Ok(positions)
}
