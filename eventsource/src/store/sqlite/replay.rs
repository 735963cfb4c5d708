//! `replay_stream` on SQLite: positions, type and payload only, with no envelope to
//! build in SQL or in Rust; whole, or a page at a time with the next page read ahead.

use futures::stream::{self, BoxStream};
use futures::TryStreamExt;
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::page::{self as page_text, Bind};
use super::reads::placed;
use super::replay_page::{self, Pages, ReplayRead};
use super::source::{Source, SourceQuery};
use super::{pack, row, SqliteEventStore};
use crate::error::Result;
use crate::store::page::AbortOnDrop;
use crate::store::schema_state::Need;
use crate::store::sql::to_i64;
use crate::store::ReplayedEvent;

const OP: &str = "replay_stream";

/// Rows per page of [`SqliteEventStore::replay_pages`].
const REPLAY_PAGE: usize = 1000;

/// What a replay query reads (see [`SqliteEventStore::replay_query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// The stream from a version on.
    Whole,
    /// The first page of it.
    FirstPage,
    /// A page after a version.
    PageAfter,
}

impl SqliteEventStore {
    /// The replay query of one stream (bound by [`replay_binds`]),
    /// whole or a page of it. Rows at no version (another tool's: below 1, a fraction,
    /// text, a BLOB) are read where they sort, and fail the replay there: the whole
    /// read and the first page take them wherever they are; a later page, after the
    /// last version of the page before it, takes the rest (text and BLOBs sort after
    /// every number, a fraction between its neighbours) and seeks its start in the
    /// stream's index rather than scanning the stream from its first row again.
    pub(super) fn replay_query(&self, part: Part) -> SourceQuery {
        let lists = self.select_columns();
        // Rows of eventsource-py keep their schema version in the payload.
        let event_version = if lists.event_version {
            "event_version"
        } else {
            "NULL"
        };
        let sep = super::fields::SEPARATOR;
        let packed = format!(
            "printf('%d{sep}%s{sep}%s{sep}%s{sep}%s', global_position, {version}, \
                 {event_version}, {event_type}, payload)",
            version = row::VERSION_TEXT,
            event_type = row::EVENT_TYPE_TEXT
        );
        let range = match part {
            Part::Whole | Part::FirstPage => {
                format!("(version >= ? OR NOT ({}))", placed("version"))
            }
            Part::PageAfter => "version > ?".to_owned(),
        };
        let limit = if part == Part::Whole { "" } else { " LIMIT ?" };
        let rest = format!(
            "FROM events WHERE aggregate_id = ? AND aggregate_type = ? AND {range} \
             ORDER BY version{limit}"
        );
        // The native reader takes the cursor from the version column it reads anyway.
        let native = format!("SELECT {} {rest}", lists.replay);
        SourceQuery::new(
            &packed,
            &lists.replay,
            &pack::REPLAY,
            &format!(", version AS n {rest}"),
            "ASC",
        )
        .with_native(&native)
    }

    /// The events of a replay page, in version order, expanded by split upcasters.
    pub(super) fn decode_replayed(&self, page: &ReplayRead) -> Result<Vec<ReplayedEvent>> {
        let events = page.decode(&self.registry)?;
        self.registry
            .expand_replayed(page_text::in_order(events, |e| e.version, false))
    }

    /// `replay_stream` in pages of [`REPLAY_PAGE`] rows by version, each read while the
    /// caller decodes and applies the pages before it.
    ///
    /// On a native connection one read goes on from page to page, handing each over as
    /// soon as it is read, for as long as the caller has taken the page before (no thread
    /// hand-over between pages on the reading side). A read that waited for its caller
    /// would hold its connection as long as the caller likes (a stream held and not
    /// polled): when the caller is behind, the read ends and hands back the page it
    /// holds, and the next read starts after that page when the caller takes it. On the
    /// pool each read is one page.
    pub(super) fn replay_pages<'a>(
        &'a self,
        aggregate_id: Uuid,
        aggregate_type: &'a str,
        from_version: u64,
    ) -> BoxStream<'a, Result<Vec<ReplayedEvent>>> {
        /// A read under way: the pages it has sent, then the one it hands back, if any.
        struct Reading {
            sent: mpsc::Receiver<ReplayRead>,
            task: AbortOnDrop<Option<ReplayRead>>,
        }
        let first = Arc::new(self.replay_query(Part::FirstPage));
        let after = Arc::new(self.replay_query(Part::PageAfter));
        let query = move |cursor: Option<u64>| {
            if cursor.is_some() {
                after.clone()
            } else {
                first.clone()
            }
        };
        let owned_type: Arc<str> = Arc::from(aggregate_type);
        // The first page from `from_version` on, the others after the last version read.
        let binds = move |cursor: Option<u64>| {
            let from = cursor.unwrap_or(from_version);
            let mut binds = replay_binds(aggregate_id, &owned_type, from);
            binds.push(Bind::Int(to_i64(REPLAY_PAGE as u64)));
            binds
        };
        let source = Source::of(self);
        let fetch = move |cursor: Option<u64>| -> Result<Reading> {
            let (tx, sent) = mpsc::channel(1);
            let (query, binds) = (query.clone(), binds.clone());
            let task = match &source {
                Source::Native(native) => {
                    let native = native.clone();
                    AbortOnDrop::try_spawn(async move {
                        native
                            .read(OP, move |conn| {
                                let sql = |cursor| query(cursor).native_sql().clone();
                                let pages = Pages {
                                    sql,
                                    binds,
                                    next: next_cursor,
                                };
                                replay_page::read_ahead(conn, cursor, &pages, &tx, OP)
                            })
                            .await
                    })?
                }
                Source::Pool(_) => {
                    drop(tx);
                    let source = source.clone();
                    AbortOnDrop::try_spawn(async move {
                        let query = query(cursor);
                        source
                            .read_replay(&query, binds(cursor), OP)
                            .await
                            .map(Some)
                    })?
                }
            };
            Ok(Reading { sent, task })
        };
        let start = async move {
            self.ready(OP, Need::ReadEvents, false).await?;
            fetch(None).map(|reading| (Some(reading), fetch))
        };
        Box::pin(
            stream::once(start)
                .map_ok(move |(state, fetch)| {
                    stream::try_unfold((state, fetch), move |(mut state, fetch)| async move {
                        let Some(reading) = state.as_mut() else {
                            return Ok(None);
                        };
                        let page = match reading.sent.recv().await {
                            Some(page) => page,
                            // The read has ended: the page it hands back, and the next
                            // read from there.
                            None => {
                                let Some(reading) = state.take() else {
                                    return Ok(None);
                                };
                                let Some(page) = reading.task.await? else {
                                    return Ok(None);
                                };
                                if let Some(cursor) = next_cursor(&page) {
                                    state = Some(fetch(Some(cursor))?);
                                }
                                page
                            }
                        };
                        let events = self.decode_replayed(&page)?;
                        Ok(Some((events, (state, fetch))))
                    })
                })
                .try_flatten(),
        )
    }
}

/// Where the page after `page` starts: after its last version, when it is full and that
/// version is an integer (there may be more after it).
fn next_cursor(page: &ReplayRead) -> Option<u64> {
    if page.len() == REPLAY_PAGE {
        page.last().and_then(|l| u64::try_from(l).ok())
    } else {
        None
    }
}

/// The binds of a replay query of one stream from `from_version` on.
pub(super) fn replay_binds(
    aggregate_id: Uuid,
    aggregate_type: &str,
    from_version: u64,
) -> Vec<Bind> {
    vec![
        Bind::Text(aggregate_id.to_string()),
        Bind::Text(aggregate_type.to_owned()),
        Bind::Int(to_i64(from_version)),
    ]
}
