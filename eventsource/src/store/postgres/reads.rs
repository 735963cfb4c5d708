//! Reads of the `events` table: filters and binds, whole-stream reads, and the paged
//! reads of `read_all` and `read_stream` (with the rows at no position).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sqlx::postgres::{PgArguments, PgPool, Postgres};
use sqlx::query::Query;
use sqlx::Row;
use tracing::Instrument;
use uuid::Uuid;

use super::row::{self, SELECT};
use super::{db_error, to_i64, to_u64, PostgresEventStore};
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::clamp_timestamp;
use crate::store::page::{
    capped_misplaced, paginate_ahead, with_misplaced, Fetched, PageRow, MISPLACED_MAX,
};
use crate::store::{ReadDirection, ReadOptions, StoredEventStream};
use crate::stored::StoredEvent;

/// A bound parameter of a dynamically built query.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Uuid(Uuid),
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
    Texts(Vec<String>),
}

/// A WHERE clause under construction, with its parameters (`$n` numbered in order).
#[derive(Debug, Clone, Default)]
pub(super) struct Filter {
    clauses: Vec<String>,
    pub(super) binds: Vec<Bind>,
}

impl Filter {
    /// Adds `clause`, in which `$?` stands for the next parameter.
    pub(super) fn push(&mut self, clause: &str, bind: Bind) {
        self.binds.push(bind);
        let clause = clause.replace("$?", &format!("${}", self.binds.len() + FIXED_PARAMS));
        self.clauses.push(clause);
    }

    pub(super) fn stream(mut self, aggregate_id: Uuid, aggregate_type: &str) -> Self {
        self.push("aggregate_id = $?", Bind::Uuid(aggregate_id));
        self.push("aggregate_type = $?", Bind::Text(aggregate_type.to_owned()));
        self
    }

    /// The tenant, time and event type filters of `options`.
    pub(super) fn read_options(mut self, options: &ReadOptions) -> Self {
        if let Some(tenant) = options.tenant_id {
            self.push("tenant_id = $?", Bind::Uuid(tenant));
        }
        if let Some(from) = options.from_timestamp {
            self.push("timestamp >= $?", Bind::Time(clamp_timestamp(from)));
        }
        if let Some(to) = options.to_timestamp {
            self.push("timestamp <= $?", Bind::Time(clamp_timestamp(to)));
        }
        match options.event_types.as_deref() {
            // One type as an equality: the (event_type, global_position) index then
            // yields the rows in position order, and a page reads only its own rows.
            // (`= ANY` of one element does not tell the planner that: it may sort every
            // row of the type above the cursor for each page.)
            Some([one]) => self.push("event_type = $?", Bind::Text(one.clone())),
            Some(types) => self.push("event_type = ANY($?)", Bind::Texts(types.to_vec())),
            None => {}
        }
        self
    }

    pub(super) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            "TRUE".to_owned()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

/// Parameters that paged reads bind before the filter's: the cursor and the limit.
const FIXED_PARAMS: usize = 2;

pub(super) fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    binds: &[Bind],
) -> Query<'q, Postgres, PgArguments> {
    for bind in binds {
        query = match bind {
            Bind::Uuid(u) => query.bind(*u),
            Bind::Text(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
            Bind::Time(t) => query.bind(*t),
            Bind::Texts(list) => query.bind(list.clone()),
        };
    }
    query
}

/// Runs a SELECT of the event columns whose filter starts at `$3` (`$1`, `$2` unused
/// but bound) and decodes every row (not expanded by split upcasters yet); the first
/// corrupt row fails it.
pub(super) async fn fetch_events(
    pool: &PgPool,
    registry: &EventRegistry,
    operation: &'static str,
    sql: &str,
    binds: &[Bind],
) -> Result<Vec<StoredEvent>> {
    let query = sqlx::query(sql).bind(0_i64).bind(0_i64);
    let rows = bind_all(query, binds)
        .fetch_all(pool)
        .await
        .map_err(db_error(operation))?;
    rows.iter()
        .map(|r| row::decode(r, registry).and_then(|(_, event)| event))
        .collect()
}

/// A paginated read over `position_column` (global_position or version); rows another
/// tool wrote at a position or version below 1 are reported as [`with_misplaced`] says.
pub(super) fn paged_read<'a>(
    store: &PostgresEventStore,
    operation: &'static str,
    position_column: &'static str,
    filter: Filter,
    options: &ReadOptions,
) -> StoredEventStream<'a> {
    let (cmp, order) = match options.direction {
        ReadDirection::Forward => (">", "ASC"),
        ReadDirection::Backward => ("<", "DESC"),
    };
    let sql: Arc<str> = format!(
        "SELECT {SELECT} FROM {} WHERE {position_column} {cmp} $1 AND {position_column} >= 1 \
         AND {} ORDER BY {position_column} {order} LIMIT $2",
        store.tables.events,
        filter.where_sql()
    )
    .into();
    let misplaced_sql = format!(
        "SELECT {SELECT} FROM {} WHERE {position_column} < 1 AND {} \
         ORDER BY global_position LIMIT {}",
        store.tables.events,
        filter.where_sql(),
        MISPLACED_MAX + 1
    );
    let binds: Arc<[Bind]> = filter.binds.into();
    let pool = store.pool.clone();
    let registry = store.registry.clone();
    let misplaced = {
        let (pool, registry, binds) = (pool.clone(), registry.clone(), binds.clone());
        async move {
            let query = sqlx::query(&misplaced_sql).bind(0_i64).bind(0_i64);
            let rows = bind_all(query, &binds)
                .fetch_all(&pool)
                .await
                .map_err(db_error(operation))?;
            let rows: Vec<Result<StoredEvent>> = rows
                .iter()
                .map(|r| row::decode(r, &registry).and_then(|(_, event)| event))
                .collect();
            Ok(capped_misplaced(rows, operation))
        }
        .boxed()
    };
    let decode_registry = registry;
    let main = paginate_ahead(
        options,
        move |cursor, limit| {
            let (pool, sql, binds) = (pool.clone(), sql.clone(), binds.clone());
            async move {
                if pool.is_closed() {
                    return Err(Error::StoreClosed);
                }
                let query = sqlx::query(&sql).bind(to_i64(cursor)).bind(limit as i64);
                let rows = bind_all(query, &binds)
                    .fetch_all(&pool)
                    .await
                    .map_err(db_error(operation))?;
                // The cursor only: the rows are decoded on the caller's side, while this
                // task already fetches the next page.
                let last = match rows.last() {
                    None => None,
                    Some(r) if position_column == "version" => {
                        Some(to_u64(r.try_get::<i64, _>(8).map_err(db_error(operation))?))
                    }
                    Some(r) => Some(to_u64(r.try_get::<i64, _>(0).map_err(db_error(operation))?)),
                };
                Ok(Fetched {
                    len: rows.len(),
                    last,
                    rows,
                })
            }
            .instrument(tracing::debug_span!(
                "read_page",
                backend = "postgres",
                operation,
                cursor,
                limit
            ))
            .boxed()
        },
        move |rows: Vec<sqlx::postgres::PgRow>| {
            rows.iter()
                .map(|r| {
                    let (position, event) = row::decode(r, &decode_registry)?;
                    if position_column != "version" {
                        return Ok((position, event));
                    }
                    // read_stream pages by version: a typed column, always readable.
                    let version: i64 = r.try_get(8).map_err(db_error(operation))?;
                    Ok((to_u64(version), event))
                })
                .collect::<Result<Vec<PageRow>>>()
        },
    );
    with_misplaced(options, main, misplaced)
}
