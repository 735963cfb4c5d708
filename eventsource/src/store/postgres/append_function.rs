//! The schema's append function, `eventsource_append_v2` (see [`super::append`]): its
//! definition, created by `initialize()`, and one call of it for a group of appends.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{db_error, to_i64, to_u64, PostgresEventStore, Tables};
use crate::error::{Error, Result};
use crate::store::group_commit::AppendRequest;
use crate::store::{AppendResult, ExpectedVersion};

/// The SQLSTATE the append function raises when its transaction is not READ COMMITTED
/// (a server or role whose default isolation is stricter): its statements must each see
/// what the previous holder of the append lock committed.
const NOT_READ_COMMITTED: &str = "ES001";

/// The append function's name. Its version moves when its answers change meaning (v2:
/// outcome 3), so that processes of an older version, calling the older function, go on
/// reading answers they understand while a newer one initializes the schema.
pub(super) const APPEND_FUNCTION: &str = "eventsource_append_v2";

/// The schema's append function (`CREATE OR REPLACE`, run by `initialize()`).
///
/// Per request `r` it takes the events `lo..hi` of the flat event arrays and answers one
/// row: outcome 0 (written: version and position), 1 (the expected version does not
/// match: the stream's version), 2 (an event id is stored in another stream: that id and
/// its position), 3 (every event stored already in this stream, a retried batch: version
/// and position).
pub(super) fn append_function(tables: &Tables) -> String {
    let (class, object) = tables.append_lock;
    format!(
        r#"CREATE OR REPLACE FUNCTION "{schema}".{function}(
    r_aggregate_ids uuid[], r_aggregate_types text[], r_expected_kinds int2[],
    r_expected_versions int8[], r_counts int4[],
    e_ids uuid[], e_types text[], e_type_versions int4[], e_tenants uuid[], e_actors text[],
    e_timestamps timestamptz[], e_payloads text[], e_metadata text[], e_correlations uuid[],
    e_causations uuid[], e_requests int4[], e_places int4[], distinct_group boolean)
RETURNS TABLE(o_outcome int2, o_version int8, o_position int8, o_event uuid)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    lo int := 1;
    hi int;
    cur int8;
    fresh int8;
    dup_id uuid;
    dup_pos int8;
    pos int8;
    cnt int8;
    last_pos int8 := 0;
    kind int2;
    n int := coalesce(array_length(r_aggregate_ids, 1), 0);
    any_stored boolean;
    curs int8[];
    oks boolean[];
    poss int8[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '{function} needs READ COMMITTED, not %',
            current_setting('transaction_isolation') USING ERRCODE = '{not_read_committed}';
    END IF;
    PERFORM pg_advisory_xact_lock({class}, {object});
    IF distinct_group THEN
        -- Every stream and event id of the group differs from the others (the caller
        -- says so): unless an event is stored already, the whole group is planned and
        -- written set-wise, in one read and one INSERT.
        SELECT EXISTS (SELECT 1 FROM {events} e WHERE e.event_id = ANY(e_ids)),
               array_agg(COALESCE((SELECT MAX(s.version) FROM {events} s
                   WHERE s.aggregate_id = q.id AND s.aggregate_type = q.type), 0) ORDER BY q.n)
            INTO any_stored, curs
            FROM unnest(r_aggregate_ids, r_aggregate_types) WITH ORDINALITY AS q(id, type, n);
        IF NOT any_stored THEN
            oks := array_fill(false, ARRAY[n]);
            FOR r IN 1 .. n LOOP
                kind := r_expected_kinds[r];
                oks[r] := kind = 0 OR (kind = 1 AND curs[r] = 0) OR (kind = 2 AND curs[r] > 0)
                    OR (kind = 3 AND curs[r] = r_expected_versions[r]);
            END LOOP;
            WITH ins AS (
                INSERT INTO {events} (event_id, aggregate_id, aggregate_type, event_type, event_version,
                    tenant_id, actor_id, version, timestamp, payload, metadata, correlation_id, causation_id)
                SELECT u.id, r_aggregate_ids[u.req], r_aggregate_types[u.req], u.type, u.type_version,
                    u.tenant, u.actor, curs[u.req] + u.place, u.at, u.payload::jsonb, u.metadata::jsonb,
                    u.correlation, u.causation
                FROM unnest(e_ids, e_types, e_type_versions, e_tenants, e_actors, e_timestamps,
                        e_payloads, e_metadata, e_correlations, e_causations, e_requests, e_places)
                    WITH ORDINALITY AS u(id, type, type_version, tenant, actor, at, payload, metadata,
                        correlation, causation, req, place, n)
                WHERE oks[u.req]
                ORDER BY u.n
                RETURNING aggregate_id, aggregate_type, global_position
            )
            SELECT array_agg(i.p ORDER BY q.n), max(i.p)
                INTO poss, last_pos
                FROM unnest(r_aggregate_ids, r_aggregate_types) WITH ORDINALITY AS q(id, type, n)
                LEFT JOIN (SELECT ins.aggregate_id, ins.aggregate_type, max(ins.global_position) AS p
                           FROM ins GROUP BY 1, 2) i
                    ON i.aggregate_id = q.id AND i.aggregate_type = q.type;
            FOR r IN 1 .. n LOOP
                o_event := NULL;
                IF oks[r] THEN
                    o_outcome := 0; o_version := curs[r] + r_counts[r]; o_position := poss[r];
                ELSE
                    o_outcome := 1; o_version := curs[r]; o_position := 0;
                END IF;
                RETURN NEXT;
            END LOOP;
            IF last_pos IS NOT NULL THEN
                PERFORM pg_notify('{channel}', last_pos::text);
            END IF;
            RETURN;
        END IF;
    END IF;
    -- One append after the other.
    FOR r IN 1 .. n LOOP
        hi := lo + r_counts[r] - 1;
        o_version := 0; o_position := 0; o_event := NULL;
        dup_id := NULL;
        SELECT b.id, e.global_position INTO dup_id, dup_pos
            FROM unnest(e_ids[lo:hi]) WITH ORDINALITY AS b(id, n)
            JOIN {events} e ON e.event_id = b.id
            WHERE NOT (e.aggregate_id = r_aggregate_ids[r] AND e.aggregate_type = r_aggregate_types[r])
            ORDER BY b.n LIMIT 1;
        IF dup_id IS NOT NULL THEN
            o_outcome := 2; o_position := dup_pos; o_event := dup_id;
            RETURN NEXT; lo := hi + 1; CONTINUE;
        END IF;
        SELECT COALESCE(MAX(s.version), 0) INTO cur FROM {events} s
            WHERE s.aggregate_id = r_aggregate_ids[r] AND s.aggregate_type = r_aggregate_types[r];
        SELECT count(DISTINCT b.id) INTO fresh FROM unnest(e_ids[lo:hi]) AS b(id)
            WHERE NOT EXISTS (SELECT 1 FROM {events} e WHERE e.event_id = b.id);
        IF fresh = 0 AND hi >= lo THEN
            -- A retried batch, every event stored in this stream: nothing to write.
            o_outcome := 3; o_version := cur;
            SELECT e.global_position INTO o_position FROM {events} e WHERE e.event_id = e_ids[hi];
            RETURN NEXT; lo := hi + 1; CONTINUE;
        END IF;
        kind := r_expected_kinds[r];
        IF NOT (kind = 0 OR (kind = 1 AND cur = 0) OR (kind = 2 AND cur > 0)
                OR (kind = 3 AND cur = r_expected_versions[r])) THEN
            o_outcome := 1; o_version := cur;
            RETURN NEXT; lo := hi + 1; CONTINUE;
        END IF;
        IF fresh = 0 THEN
            -- An empty batch.
            o_outcome := 0; o_version := cur;
            SELECT COALESCE(MAX(e.global_position), 0) INTO o_position FROM {events} e;
            RETURN NEXT; lo := hi + 1; CONTINUE;
        END IF;
        WITH ins AS (
            INSERT INTO {events} (event_id, aggregate_id, aggregate_type, event_type, event_version,
                tenant_id, actor_id, version, timestamp, payload, metadata, correlation_id, causation_id)
            SELECT b.id, r_aggregate_ids[r], r_aggregate_types[r], b.type, b.type_version, b.tenant,
                b.actor, cur + row_number() OVER (ORDER BY b.n), b.at, b.payload::jsonb,
                b.metadata::jsonb, b.correlation, b.causation
            FROM (SELECT DISTINCT ON (u.id) u.*
                  FROM unnest(e_ids[lo:hi], e_types[lo:hi], e_type_versions[lo:hi], e_tenants[lo:hi],
                      e_actors[lo:hi], e_timestamps[lo:hi], e_payloads[lo:hi], e_metadata[lo:hi],
                      e_correlations[lo:hi], e_causations[lo:hi]) WITH ORDINALITY
                      AS u(id, type, type_version, tenant, actor, at, payload, metadata, correlation, causation, n)
                  ORDER BY u.id, u.n) b
            WHERE NOT EXISTS (SELECT 1 FROM {events} e WHERE e.event_id = b.id)
            ORDER BY b.n
            RETURNING global_position
        )
        SELECT max(ins.global_position), count(*) INTO pos, cnt FROM ins;
        o_outcome := 0; o_version := cur + cnt; o_position := pos;
        last_pos := greatest(last_pos, pos);
        RETURN NEXT;
        lo := hi + 1;
    END LOOP;
    IF last_pos > 0 THEN
        PERFORM pg_notify('{channel}', last_pos::text);
    END IF;
END
$fn$"#,
        schema = tables.schema,
        events = tables.events,
        channel = tables.channel,
        not_read_committed = NOT_READ_COMMITTED,
        function = APPEND_FUNCTION,
    )
}

/// Why the append function gave no answers.
pub(super) enum Call {
    /// The schema has no append function (initialized by an older version).
    Missing,
    /// The statement failed (nothing of it was stored).
    Failed(sqlx::Error),
}

/// The function's code of an expected version, and its version.
fn expected_code(expected: ExpectedVersion) -> (i16, i64) {
    match expected {
        ExpectedVersion::Any => (0, 0),
        ExpectedVersion::NoStream => (1, 0),
        ExpectedVersion::StreamExists => (2, 0),
        ExpectedVersion::Exact(n) => (3, to_i64(n)),
    }
}

impl PostgresEventStore {
    /// One call of the append function for `group`: each request's outcome, in order.
    pub(super) async fn call_append_function(
        &self,
        group: &[AppendRequest],
    ) -> std::result::Result<Vec<Result<AppendResult>>, Call> {
        let events = group.iter().map(|r| r.events.len()).sum();
        let mut r_ids = Vec::with_capacity(group.len());
        let mut r_types = Vec::with_capacity(group.len());
        let mut r_kinds = Vec::with_capacity(group.len());
        let mut r_versions = Vec::with_capacity(group.len());
        let mut r_counts = Vec::with_capacity(group.len());
        let mut ids: Vec<Uuid> = Vec::with_capacity(events);
        let mut types: Vec<&str> = Vec::with_capacity(events);
        let mut type_versions: Vec<i32> = Vec::with_capacity(events);
        let mut tenants: Vec<Option<Uuid>> = Vec::with_capacity(events);
        let mut actors: Vec<Option<&str>> = Vec::with_capacity(events);
        let mut timestamps: Vec<DateTime<Utc>> = Vec::with_capacity(events);
        let mut payloads: Vec<&str> = Vec::with_capacity(events);
        let mut metadata: Vec<&str> = Vec::with_capacity(events);
        let mut correlations: Vec<Option<Uuid>> = Vec::with_capacity(events);
        let mut causations: Vec<Option<Uuid>> = Vec::with_capacity(events);
        let mut requests: Vec<i32> = Vec::with_capacity(events);
        let mut places: Vec<i32> = Vec::with_capacity(events);
        // Every stream and every event id once, no empty batch: the set-wise path.
        let mut streams = std::collections::HashSet::with_capacity(group.len());
        let mut event_ids = std::collections::HashSet::with_capacity(events);
        let mut distinct = true;
        for (index, request) in group.iter().enumerate() {
            distinct &= !request.events.is_empty()
                && streams.insert((request.aggregate_id, request.aggregate_type.as_str()));
            let (kind, version) = expected_code(request.expected);
            r_ids.push(request.aggregate_id);
            r_types.push(request.aggregate_type.as_str());
            r_kinds.push(kind);
            r_versions.push(version);
            r_counts.push(i32::try_from(request.events.len()).unwrap_or(i32::MAX));
            for (place, (event, encoded)) in request.events.iter().zip(&request.encoded).enumerate()
            {
                distinct &= event_ids.insert(event.event_id);
                requests.push(i32::try_from(index + 1).unwrap_or(i32::MAX));
                places.push(i32::try_from(place + 1).unwrap_or(i32::MAX));
                ids.push(event.event_id);
                types.push(event.event_type());
                type_versions.push(i32::try_from(event.event_version()).unwrap_or(i32::MAX));
                tenants.push(event.tenant_id);
                actors.push(event.actor_id.as_deref());
                timestamps.push(event.timestamp);
                payloads.push(&encoded.payload);
                metadata.push(&encoded.metadata);
                correlations.push(event.correlation_id);
                causations.push(event.causation_id);
            }
        }
        let sql = format!(
            "SELECT o_outcome, o_version, o_position, o_event FROM \"{}\".{APPEND_FUNCTION}(\
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            self.tables.schema
        );
        let query = sqlx::query(&sql)
            .bind(r_ids)
            .bind(r_types)
            .bind(r_kinds)
            .bind(r_versions)
            .bind(r_counts)
            .bind(ids)
            .bind(types)
            .bind(type_versions)
            .bind(tenants)
            .bind(actors)
            .bind(timestamps)
            .bind(payloads)
            .bind(metadata)
            .bind(correlations)
            .bind(causations)
            .bind(requests)
            .bind(places)
            .bind(distinct);
        let rows = if self.append_in_transaction.load(Ordering::Acquire) {
            self.call_in_transaction(query).await
        } else {
            match query.fetch_all(&self.pool).await {
                Err(e) if sqlstate(&e).as_deref() == Some(NOT_READ_COMMITTED) => {
                    // The server's default isolation is stricter: from now on, each call
                    // runs in a READ COMMITTED transaction of its own.
                    self.append_in_transaction.store(true, Ordering::Release);
                    return Box::pin(self.call_append_function(group)).await;
                }
                other => other,
            }
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if sqlstate(&e).as_deref() == Some("42883") => {
                self.append_function_missing.store(true, Ordering::Release);
                return Err(Call::Missing);
            }
            Err(e) => return Err(Call::Failed(e)),
        };
        if rows.len() != group.len() {
            return Err(Call::Failed(sqlx::Error::Protocol(format!(
                "the append function answered {} of {} appends",
                rows.len(),
                group.len()
            ))));
        }
        Ok(group
            .iter()
            .zip(rows)
            .map(|(request, row)| answer(request, &row))
            .collect())
    }

    /// The append function's call inside an explicit READ COMMITTED transaction.
    async fn call_in_transaction(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> std::result::Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        let rows = query.fetch_all(&mut *tx).await;
        match rows {
            Ok(rows) => {
                tx.commit().await?;
                Ok(rows)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// A request's outcome from its row of the append function.
fn answer(request: &AppendRequest, row: &sqlx::postgres::PgRow) -> Result<AppendResult> {
    let field = |e| db_error("append_events")(e);
    let outcome: i16 = row.try_get(0).map_err(field)?;
    let version: i64 = row.try_get(1).map_err(field)?;
    let position: i64 = row.try_get(2).map_err(field)?;
    match outcome {
        0 | 3 => Ok(AppendResult {
            new_version: to_u64(version),
            global_position: to_u64(position),
            already_stored: outcome == 3,
        }),
        1 => Err(Error::OptimisticLock {
            aggregate_id: request.aggregate_id,
            aggregate_type: request.aggregate_type.clone(),
            expected: request.expected,
            actual: to_u64(version),
        }),
        _ => {
            let event_id: Option<Uuid> = row.try_get(3).map_err(field)?;
            Err(Error::DuplicateEventId {
                event_id: event_id.unwrap_or_default(),
                global_position: to_u64(position),
            })
        }
    }
}

/// The SQLSTATE of a database error.
fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|code| code.into_owned())
}
