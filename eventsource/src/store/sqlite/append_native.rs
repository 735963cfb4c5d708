//! Appends on the native writer connection (see [`super::native`]): a group of appends
//! (a group of one, when nobody else is appending) in one `BEGIN IMMEDIATE`
//! transaction, with the plan of [`super::append_group`], each append keeping its own
//! outcome. The statements differ from the pool's: event ids are looked up only where
//! the answer matters ([`Lookup`]), and each event is one single-row `INSERT` (see
//! `insert_rows`).

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;
use uuid::Uuid;

use super::append::{stored_ids_sql, Found, ID_LOOKUP, INTEGER_STREAM_VERSION, STREAM_VERSION};
use super::append_group::{
    group_ids, group_streams, plan_group, versions_sql, EventRow, VERSION_STREAMS,
};
use super::native::{is_native_unique_violation, native_error, Native, INLINE_EVENTS};
use super::timestamp::format_timestamp;
use super::{PayloadFormat, SqliteEventStore};
use crate::error::{Error, Result};
use crate::store::group_commit::{copy_error, must_not_retry, AppendRequest};
use crate::store::sql::{to_i64, to_u64};
use crate::store::AppendResult;

const OP: &str = "append_events";

impl SqliteEventStore {
    /// Writes `group` on this thread if the native writer and the database's write lock
    /// are free at once and the group is small ([`INLINE_EVENTS`]); `None` otherwise
    /// (nothing was written).
    pub(super) fn write_group_now(
        &self,
        group: &[AppendRequest],
    ) -> Option<Vec<Result<AppendResult>>> {
        let native = self.native.as_ref()?;
        let events: usize = group.iter().map(|r| r.events.len()).sum();
        if events > INLINE_EVENTS {
            return None;
        }
        let format = self.payload_format();
        native
            .write_now(OP, |conn| write_begun(conn, group, format))
            .map(|written| written.unwrap_or_else(|error| copies(group.len(), &error)))
    }

    /// Writes `group` on the native writer in the blocking pool, waiting for the write
    /// lock up to the busy timeout.
    pub(super) async fn write_group_blocking(
        &self,
        native: &Arc<Native>,
        group: Vec<AppendRequest>,
    ) -> Vec<Result<AppendResult>> {
        let count = group.len();
        let format = self.payload_format();
        native
            .write_blocking(OP, move |conn| write_begun(conn, &group, format))
            .await
            .unwrap_or_else(|error| copies(count, &error))
    }
}

impl SqliteEventStore {
    /// One append on the native writer, without group commit: on this thread when it
    /// can, else in the blocking pool.
    pub(super) async fn write_one_native(
        &self,
        native: &Arc<Native>,
        request: AppendRequest,
    ) -> Result<AppendResult> {
        let results = match self.write_group_now(std::slice::from_ref(&request)) {
            Some(results) => results,
            None => self.write_group_blocking(native, vec![request]).await,
        };
        results
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(no_result()))
    }
}

/// The error for an append that came back without a result (not reachable: every write
/// answers each append of its group).
fn no_result() -> Error {
    Error::Database {
        operation: OP,
        kind: crate::error::DatabaseErrorKind::Other,
        source: "an append came back without a result".into(),
    }
}

fn copies(count: usize, error: &Error) -> Vec<Result<AppendResult>> {
    (0..count).map(|_| Err(copy_error(error))).collect()
}

/// Writes `group`, its first transaction begun already: together, and when that fails
/// as a whole, one append at a time (event ids make that safe).
fn write_begun(
    conn: &mut Connection,
    group: &[AppendRequest],
    format: PayloadFormat,
) -> Vec<Result<AppendResult>> {
    let outcomes = match in_transaction(conn, group, format, Lookup::WhereNeeded) {
        Ok(outcomes) => outcomes,
        // An event id stored already, which only the event ids' key saw: each append
        // again, alone, with its event ids looked up.
        Err(error) if is_native_unique_violation(&error) => group.iter().map(|_| None).collect(),
        Err(error) if group.len() == 1 => return vec![refused(conn, &group[0], error)],
        Err(error) if must_not_retry(&error) => return copies(group.len(), &error),
        Err(error) => {
            tracing::debug!(%error, appends = group.len(), "a group commit failed; writing its appends one at a time");
            group.iter().map(|_| None).collect()
        }
    };
    group
        .iter()
        .zip(outcomes)
        .map(|(request, outcome)| match outcome {
            Some(result) => result,
            None => alone(conn, request, format),
        })
        .collect()
}

/// One append in a transaction of its own.
fn alone(
    conn: &mut Connection,
    request: &AppendRequest,
    format: PayloadFormat,
) -> Result<AppendResult> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(native_error(OP))?;
    match in_transaction(conn, std::slice::from_ref(request), format, Lookup::Every) {
        Ok(mut outcomes) => outcomes.pop().flatten().unwrap_or_else(|| Err(no_result())),
        Err(error) => refused(conn, request, error),
    }
}

/// The error of an append whose transaction failed: a unique-key violation is a
/// conflict (another writer took the version first), described with the stream's
/// version.
fn refused(conn: &Connection, request: &AppendRequest, error: Error) -> Result<AppendResult> {
    if !is_native_unique_violation(&error) {
        return Err(error);
    }
    let actual = stream_version(conn, request.aggregate_id, &request.aggregate_type).unwrap_or(0);
    Err(Error::OptimisticLock {
        aggregate_id: request.aggregate_id,
        aggregate_type: request.aggregate_type.clone(),
        expected: request.expected,
        actual,
    })
}

/// Which event ids a group's transaction looks up before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Those of the appends whose expected version the stream is not at (a conflict, or
    /// a retry of an append stored already: the ids tell which). The others' are new
    /// unless the event ids' unique key refuses one, and then the group is written
    /// again append by append with [`Lookup::Every`]: in the common case an append is
    /// one statement fewer.
    WhereNeeded,
    /// Every event id of the group.
    Every,
}

/// The statements of a group inside its begun transaction, then the commit; on an
/// error, the rollback.
fn in_transaction(
    conn: &Connection,
    group: &[AppendRequest],
    format: PayloadFormat,
    lookup: Lookup,
) -> Result<Vec<Option<Result<AppendResult>>>> {
    let written = (|| {
        let versions = stream_versions(conn, group)?;
        let ids: Vec<Uuid> = match lookup {
            Lookup::Every => group_ids(group),
            Lookup::WhereNeeded => group
                .iter()
                .filter(|r| {
                    let key = (r.aggregate_id, r.aggregate_type.as_str());
                    !r.expected.matches(versions.get(&key).copied().unwrap_or(0))
                })
                .flat_map(|r| r.events.iter().map(|e| e.event_id))
                .collect(),
        };
        let stored = stored_anywhere(conn, &ids)?;
        let plan = plan_group(group, &stored, versions, format);
        let positions = insert_rows(conn, &plan.rows, &plan.created_at)?;
        conn.execute_batch("COMMIT").map_err(native_error(OP))?;
        Ok(plan.finish(&positions))
    })();
    if written.is_err() && !conn.is_autocommit() {
        // SQLite may have rolled back by itself already (a full disk): then there is
        // nothing to roll back.
        let _ = conn.execute_batch("ROLLBACK");
    }
    written
}

/// The stored events among `ids`, wherever they are.
fn stored_anywhere(conn: &Connection, ids: &[Uuid]) -> Result<HashMap<Uuid, Found>> {
    let error = native_error(OP);
    let mut found = HashMap::new();
    for chunk in ids.chunks(ID_LOOKUP) {
        let mut statement = conn
            .prepare_cached(&stored_ids_sql(chunk.len()))
            .map_err(&error)?;
        for (i, id) in chunk.iter().enumerate() {
            statement
                .raw_bind_parameter(i + 1, id.to_string())
                .map_err(&error)?;
        }
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next().map_err(&error)? {
            let id: String = row.get(0).map_err(&error)?;
            let position: i64 = row.get(1).map_err(&error)?;
            let aggregate_id: Option<String> = row.get(2).map_err(&error)?;
            let aggregate_type: Option<String> = row.get(3).map_err(&error)?;
            if let Ok(id) = Uuid::parse_str(&id) {
                found.insert(id, Found::new(position, aggregate_id, aggregate_type));
            }
        }
    }
    Ok(found)
}

/// One stream's version (see [`super::append::stream_version`]).
fn stream_version(conn: &Connection, aggregate_id: Uuid, aggregate_type: &str) -> Result<u64> {
    let error = native_error(OP);
    let id = aggregate_id.to_string();
    let max: Option<i64> = conn
        .prepare_cached(STREAM_VERSION)
        .and_then(|mut s| s.query_row((&id, aggregate_type), |row| row.get(0)))
        .map_err(&error)?;
    let version = match max {
        Some(version) => version,
        None => conn
            .prepare_cached(INTEGER_STREAM_VERSION)
            .and_then(|mut s| s.query_row((&id, aggregate_type), |row| row.get(0)))
            .map_err(&error)?,
    };
    Ok(to_u64(version))
}

/// The current version of every stream of `group`.
fn stream_versions<'a>(
    conn: &Connection,
    group: &'a [AppendRequest],
) -> Result<HashMap<(Uuid, &'a str), u64>> {
    let error = native_error(OP);
    let streams = group_streams(group);
    let mut versions = HashMap::with_capacity(streams.len());
    for chunk in streams.chunks(VERSION_STREAMS) {
        let mut statement = conn
            .prepare_cached(&versions_sql(chunk.len()))
            .map_err(&error)?;
        for (i, (aggregate_id, aggregate_type)) in chunk.iter().enumerate() {
            statement
                .raw_bind_parameter(2 * i + 1, aggregate_id.to_string())
                .map_err(&error)?;
            statement
                .raw_bind_parameter(2 * i + 2, *aggregate_type)
                .map_err(&error)?;
        }
        let mut found: Vec<(usize, Option<i64>)> = Vec::with_capacity(chunk.len());
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next().map_err(&error)? {
            let i: i64 = row.get(0).map_err(&error)?;
            let version: Option<i64> = row.get(1).map_err(&error)?;
            if let Ok(i) = usize::try_from(i) {
                found.push((i, version));
            }
        }
        drop(rows);
        for (i, version) in found {
            let Some(&(aggregate_id, aggregate_type)) = chunk.get(i) else {
                continue;
            };
            let version = match version {
                Some(version) => to_u64(version),
                None => stream_version(conn, aggregate_id, aggregate_type)?,
            };
            versions.insert((aggregate_id, aggregate_type), version);
        }
    }
    Ok(versions)
}

/// The single-row `INSERT` of the native writer.
const INSERT_ONE: &str = concat!(
    "INSERT INTO events (",
    columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);

/// Inserts `rows` one statement each (one prepared statement, kept); the global position
/// of each by event id. A statement that writes one row needs no statement journal: a
/// multi-row `INSERT` inside the transaction copied every page it changed into one
/// first, so that it could be undone alone (18% of W2's time). A failure rolls the
/// whole transaction back anyway (see `in_transaction`).
fn insert_rows(
    conn: &Connection,
    rows: &[EventRow<'_>],
    created_at: &str,
) -> Result<HashMap<Uuid, u64>> {
    let error = native_error(OP);
    let mut positions = HashMap::with_capacity(rows.len());
    let mut statement = conn.prepare_cached(INSERT_ONE).map_err(&error)?;
    for row in rows {
        let event = row.event;
        statement
            .execute(rusqlite::params![
                event.event_id.to_string(),
                row.aggregate_id.to_string(),
                row.aggregate_type,
                event.event_type(),
                event.tenant_id.map(|t| t.to_string()),
                event.actor_id.as_deref(),
                to_i64(row.version),
                format_timestamp(event.timestamp),
                row.payload(),
                created_at,
                i64::from(event.event_version()),
                event.correlation_id.map(|t| t.to_string()),
                event.causation_id.map(|t| t.to_string()),
                row.encoded.metadata.as_str(),
            ])
            .map_err(&error)?;
        // The row's rowid is its global position (an outbox trigger's insert does not
        // change what this returns once the statement is done).
        positions.insert(event.event_id, to_u64(conn.last_insert_rowid()));
    }
    Ok(positions)
}
