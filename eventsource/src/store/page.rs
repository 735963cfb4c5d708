//! Keyset pagination shared by the stores' `read_all` and `read_stream`: rows are fetched
//! a page at a time by position, so a read never holds the whole table in memory, nor a
//! connection while the caller processes events.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use futures::stream;

use super::{ReadDirection, ReadOptions, StoredEventStream};
use crate::error::Result;
use crate::stored::StoredEvent;

/// Rows fetched per page.
pub(crate) const PAGE_SIZE: usize = 500;

/// One row of a page: its position (global or stream) and the decoded event or the
/// reason it could not be decoded.
pub(crate) type PageRow = (u64, Result<StoredEvent>);

/// Fetches up to `limit` rows strictly after (forward) or before (backward) `cursor`.
pub(crate) type FetchPage<'a> =
    Box<dyn FnMut(u64, usize) -> BoxFuture<'a, Result<Vec<PageRow>>> + Send + 'a>;

struct State<'a> {
    fetch: FetchPage<'a>,
    cursor: u64,
    remaining: Option<u64>,
    buffer: VecDeque<Result<StoredEvent>>,
    exhausted: bool,
}

/// The exclusive start cursor for `options`.
pub(crate) fn start_cursor(options: &ReadOptions) -> u64 {
    match options.direction {
        ReadDirection::Forward => options.from_position,
        ReadDirection::Backward if options.from_position == 0 => u64::MAX,
        ReadDirection::Backward => options.from_position,
    }
}

/// A stream that calls `fetch` page by page until it returns a short page or the limit
/// is reached. A failed page fetch is yielded as an error and ends the stream.
pub(crate) fn paginate<'a>(options: &ReadOptions, fetch: FetchPage<'a>) -> StoredEventStream<'a> {
    let state = State {
        fetch,
        cursor: start_cursor(options),
        remaining: options.limit,
        buffer: VecDeque::new(),
        exhausted: false,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.buffer.pop_front() {
                return Some((item, st));
            }
            if st.exhausted || st.remaining == Some(0) {
                return None;
            }
            let want = match st.remaining {
                Some(remaining) => usize::try_from(remaining)
                    .unwrap_or(PAGE_SIZE)
                    .min(PAGE_SIZE),
                None => PAGE_SIZE,
            };
            match (st.fetch)(st.cursor, want).await {
                Err(e) => {
                    st.exhausted = true;
                    return Some((Err(e), st));
                }
                Ok(rows) => {
                    st.exhausted = rows.len() < want;
                    for (position, row) in rows {
                        st.cursor = position;
                        if let Some(remaining) = st.remaining.as_mut() {
                            *remaining = remaining.saturating_sub(1);
                        }
                        st.buffer.push_back(row);
                    }
                }
            }
        }
    }))
}
