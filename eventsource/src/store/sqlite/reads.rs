//! Reads of the `events` table: filters, whole-stream reads as one page value, and the
//! paged reads of `read_all` and `read_stream` (with the rows at no position).

use std::sync::Arc;

use futures::FutureExt;
use tracing::Instrument;

use super::page::{self as page_text, Bind, PageText, Record};
use super::source::Source;
use super::timestamp::format_timestamp;
use super::unreadable::{self, unreadable};
use super::SqliteEventStore;
use super::{row, SelectLists};
use crate::error::{Error, Result};
use crate::registry::EventRegistry;
use crate::store::clamp_timestamp;
use crate::store::page::{
    capped_misplaced, paginate_ahead, with_misplaced, Fetched, PageRow, MISPLACED_MAX,
};
use crate::store::sql::{to_i64, to_u64};
use crate::store::{ReadDirection, ReadOptions, StoredEventStream};
use crate::stored::StoredEvent;

/// Event types bound one parameter each; longer lists are bound as one JSON array
/// (SQLite allows 32,766 parameters per statement).
const MAX_BOUND_TYPES: usize = 200;

/// A WHERE clause under construction, with its parameters.
#[derive(Debug, Clone, Default)]
pub(super) struct Filter {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Filter {
    pub(super) fn push(
        &mut self,
        clause: impl Into<String>,
        binds: impl IntoIterator<Item = Bind>,
    ) {
        self.clauses.push(clause.into());
        self.binds.extend(binds);
    }

    /// The tenant, time and event type filters of `options`.
    pub(super) fn read_options(mut self, options: &ReadOptions) -> Self {
        if let Some(tenant) = options.tenant_id {
            self.push("tenant_id = ?", [Bind::Text(tenant.to_string())]);
        }
        // Timestamps compare as text: a bound beyond the years 1..9999 (which no stored
        // event can have) is moved to the range's edge, where its text still sorts.
        if let Some(from) = options.from_timestamp {
            self.push(
                "timestamp >= ?",
                [Bind::Text(format_timestamp(clamp_timestamp(from)))],
            );
        }
        if let Some(to) = options.to_timestamp {
            self.push(
                "timestamp <= ?",
                [Bind::Text(format_timestamp(clamp_timestamp(to)))],
            );
        }
        if let Some(types) = &options.event_types {
            if types.is_empty() {
                self.push("0", []);
            } else if types.len() > MAX_BOUND_TYPES {
                // Beyond what SQLite binds in one statement: one JSON array instead.
                let list = serde_json::Value::from(types.clone()).to_string();
                self.push(
                    "event_type IN (SELECT value FROM json_each(?))",
                    [Bind::Text(list)],
                );
            } else {
                let marks = vec!["?"; types.len()].join(", ");
                self.push(
                    format!("event_type IN ({marks})"),
                    types.iter().map(|t| Bind::Text(t.clone())),
                );
            }
        }
        self
    }

    pub(super) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".to_owned()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

/// Reads the events matching `filter` in `order_column` order as one page value, and
/// decodes every row (not expanded by split upcasters yet); the first corrupt row fails
/// it.
pub(super) async fn fetch_events(
    store: &SqliteEventStore,
    operation: &'static str,
    order_column: &str,
    filter: &Filter,
) -> Result<Vec<StoredEvent>> {
    let query = store.select_columns().page_query(
        &format!(
            ", {order_column} AS n FROM events WHERE {} ORDER BY {order_column}",
            filter.where_sql()
        ),
        "ASC",
    );
    let page = Source::of(store)
        .read(&query, filter.binds.clone(), operation)
        .await?;
    let events = page
        .records()
        .map(|r| match r? {
            Record::Text(r) => row::decode(r, &store.registry).and_then(|(_, event)| event),
            Record::NotUtf8(r) => Err(unreadable(r, &unreadable::PAGE_COLUMNS)?.error),
        })
        .collect::<Result<Vec<_>>>()?;
    let by_version = order_column == "version";
    Ok(page_text::in_order(
        events,
        |e| {
            if by_version {
                e.stream_position
            } else {
                e.global_position
            }
        },
        false,
    ))
}

/// The rows at a place in `position_column`'s order: a global position of 1 or more,
/// or a version that is an integer of 1 or more (another tool may have stored text, a
/// fraction or a BLOB, which SQLite sorts above every integer).
pub(super) fn placed(position_column: &str) -> &'static str {
    if position_column == "version" {
        "typeof(version) = 'integer' AND version >= 1"
    } else {
        "global_position >= 1"
    }
}

/// A paginated read over `position_column` (global_position or version), keeping the
/// position of corrupt rows so the stream can report them and go on; rows with no place
/// in that order are reported as [`with_misplaced`] says.
pub(super) fn paged_read<'a>(
    lists: &SelectLists,
    source: Source,
    registry: Arc<EventRegistry>,
    operation: &'static str,
    position_column: &'static str,
    filter: Filter,
    options: &ReadOptions,
) -> StoredEventStream<'a> {
    let (cmp, order) = match options.direction {
        ReadDirection::Forward => (">", "ASC"),
        ReadDirection::Backward => ("<", "DESC"),
    };
    let descending = options.direction == ReadDirection::Backward;
    let placed = placed(position_column);
    let inner = format!(
        ", {position_column} AS n FROM events \
         WHERE {position_column} {cmp} ? AND {placed} AND {} \
         ORDER BY {position_column} {order} LIMIT ?",
        filter.where_sql()
    );
    // `global_position < 1` (not `NOT (global_position >= 1)`) so that SQLite reads a
    // range of the rowid instead of scanning the table.
    let misplaced_rows = if position_column == "version" {
        format!("NOT ({placed})")
    } else {
        "global_position < 1".to_owned()
    };
    let misplaced_query = lists.page_query(
        &format!(
            ", global_position AS n FROM events \
             WHERE {misplaced_rows} AND {} ORDER BY global_position LIMIT {}",
            filter.where_sql(),
            MISPLACED_MAX + 1
        ),
        "ASC",
    );
    let query = Arc::new(lists.page_query(&inner, order));
    let binds: Arc<[Bind]> = filter.binds.into();
    let by_version = position_column == "version";
    let misplaced = {
        let (source, registry, binds) = (source.clone(), registry.clone(), binds.clone());
        async move {
            let page = source
                .read(&misplaced_query, binds.to_vec(), operation)
                .await?;
            let rows: Vec<Result<StoredEvent>> = page
                .records()
                .map(|r| match r? {
                    Record::Text(r) => row::decode(r, &registry).and_then(|(_, event)| event),
                    Record::NotUtf8(r) => Err(unreadable(r, &unreadable::PAGE_COLUMNS)?.error),
                })
                .map(|row| match row {
                    Ok(event) => Err(misplaced_row(&event)),
                    error => error,
                })
                .collect();
            Ok(capped_misplaced(rows, operation))
        }
        .boxed()
    };
    let main = paginate_ahead(
        options,
        move |cursor, limit| {
            let (source, query, binds) = (source.clone(), query.clone(), binds.clone());
            async move {
                if source.is_closed() {
                    return Err(Error::StoreClosed);
                }
                let mut all = Vec::with_capacity(binds.len() + 2);
                all.push(Bind::Int(to_i64(cursor)));
                all.extend(binds.iter().cloned());
                all.push(Bind::Int(limit as i64));
                let page = source.read(&query, all, operation).await?;
                if page.len > 0 && page.last.is_none() {
                    return Err(Error::Database {
                        operation,
                        kind: crate::error::DatabaseErrorKind::Corrupt,
                        source: "a page of rows ends at a position that is not an integer".into(),
                    });
                }
                Ok(Fetched {
                    len: page.len,
                    last: page.last.map(to_u64),
                    rows: page,
                })
            }
            .instrument(tracing::debug_span!(
                "read_page",
                backend = "sqlite",
                operation,
                cursor,
                limit
            ))
            .boxed()
        },
        move |page| decode_page(&page, &registry, by_version, descending),
    );
    with_misplaced(options, main, misplaced)
}

/// The error for a row that decodes although it has no place in the read's order. (A
/// row at a version below 1 or not an integer does not decode; this is for the rows an
/// unforeseen column type lets through.)
fn misplaced_row(event: &StoredEvent) -> Error {
    Error::CorruptEvent {
        global_position: event.global_position,
        event_id: Some(event.event_id()),
        event_type: event.event_type().to_owned(),
        reason: format!(
            "version {} is not stored as an integer (written by another tool)",
            event.stream_position
        ),
    }
}

/// Decodes the rows of a page, each with its position (see [`decode_record`]), in
/// position order, descending when `descending`.
fn decode_page(
    page: &PageText,
    registry: &EventRegistry,
    by_version: bool,
    descending: bool,
) -> Result<Vec<PageRow>> {
    let rows = page
        .records()
        .map(|r| decode_record(r?, registry, by_version))
        .collect::<Result<Vec<PageRow>>>()?;
    Ok(page_text::in_order(
        rows,
        |(position, _)| *position,
        descending,
    ))
}

/// Decodes a row of a page with its position: the global position, or the version when
/// `by_version` (read_stream pages by version).
///
/// # Errors
/// The row's error when the read cannot go on past it (no readable position).
fn decode_record(
    record: Record<'_>,
    registry: &EventRegistry,
    by_version: bool,
) -> Result<PageRow> {
    let r = match record {
        Record::Text(r) => r,
        Record::NotUtf8(r) => {
            let unreadable = unreadable(r, &unreadable::PAGE_COLUMNS)?;
            let position = if by_version {
                unreadable.version
            } else {
                Some(unreadable.position)
            };
            // Without a readable version the page cannot go on past this row: end the
            // stream with the row's error.
            return match position {
                Some(position) => Ok((position, Err(unreadable.error))),
                None => Err(unreadable.error),
            };
        }
    };
    let (position, event) = row::decode(r, registry)?;
    if !by_version {
        return Ok((position, event));
    }
    let version = match &event {
        Ok(e) => Some(e.stream_position),
        Err(_) => row::stream_version(r),
    };
    match (version, event) {
        (Some(version), event) => Ok((version, event)),
        // Without a readable version the page cannot go on past this row: end the
        // stream with the row's error.
        (None, Err(error)) => Err(error),
        (None, Ok(e)) => Ok((e.stream_position, Ok(e))),
    }
}
