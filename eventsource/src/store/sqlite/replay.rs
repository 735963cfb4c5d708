//! `replay_stream` on SQLite: positions, type and payload only, with no envelope to
//! build in SQL or in Rust; whole, or a page at a time with the next page read ahead.

use futures::stream::{self, BoxStream};
use futures::TryStreamExt;
use uuid::Uuid;

use super::page::{self as page_text, Bind};
use super::reads::placed;
use super::replay_page::ReplayRead;
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
    /// The replay query of one stream (bound by [`replay_binds`](Self::replay_binds)),
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
        let tail = format!(
            ", version AS n \
             FROM events WHERE aggregate_id = ? AND aggregate_type = ? AND {range} \
             ORDER BY version{limit}"
        );
        SourceQuery::new(&packed, &lists.replay, &pack::REPLAY, &tail, "ASC")
    }

    pub(super) fn replay_binds(
        &self,
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

    /// The events of a replay page, in version order, expanded by split upcasters.
    pub(super) fn decode_replayed(&self, page: &ReplayRead) -> Result<Vec<ReplayedEvent>> {
        let events = page.decode(&self.registry)?;
        self.registry
            .expand_replayed(page_text::in_order(events, |e| e.version, false))
    }

    /// `replay_stream` in pages of [`REPLAY_PAGE`] rows by version: each page's read is
    /// spawned before the one before it is decoded, so the database reads while the
    /// caller decodes and applies.
    pub(super) fn replay_pages<'a>(
        &'a self,
        aggregate_id: Uuid,
        aggregate_type: &'a str,
        from_version: u64,
    ) -> BoxStream<'a, Result<Vec<ReplayedEvent>>> {
        /// Where the replay stands: the page being read, or done.
        struct State {
            reading: Option<AbortOnDrop<ReplayRead>>,
        }
        let first = std::sync::Arc::new(self.replay_query(Part::FirstPage));
        let after = std::sync::Arc::new(self.replay_query(Part::PageAfter));
        let source = Source::of(self);
        // The first page from `from_version` on, the others after the last version read.
        let fetch = move |cursor: Option<u64>| {
            let query = if cursor.is_some() { &after } else { &first };
            let (query, source) = (query.clone(), source.clone());
            let from = cursor.unwrap_or(from_version);
            let mut binds = self.replay_binds(aggregate_id, aggregate_type, from);
            binds.push(Bind::Int(to_i64(REPLAY_PAGE as u64)));
            AbortOnDrop::try_spawn(async move { source.read_replay(&query, binds, OP).await })
        };
        let start = async move {
            self.ready(OP, Need::ReadEvents, false).await?;
            fetch(None).map(|reading| {
                (
                    State {
                        reading: Some(reading),
                    },
                    fetch,
                )
            })
        };
        Box::pin(
            stream::once(start)
                .map_ok(move |(state, fetch)| {
                    stream::try_unfold((state, fetch), move |(mut state, fetch)| async move {
                        let Some(reading) = state.reading.take() else {
                            return Ok(None);
                        };
                        let page = reading.await?;
                        // A full page whose last row is at an integer version: there may
                        // be more after it.
                        if page.len() == REPLAY_PAGE {
                            if let Some(last) = page.last().and_then(|l| u64::try_from(l).ok()) {
                                state.reading = Some(fetch(Some(last))?);
                            }
                        }
                        let events = self.decode_replayed(&page)?;
                        Ok(Some((events, (state, fetch))))
                    })
                })
                .try_flatten(),
        )
    }
}
