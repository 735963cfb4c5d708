//! Keyset pagination shared by the stores' `read_all` and `read_stream`: rows are fetched
//! a page at a time by position, so a read never holds the whole table in memory, nor a
//! connection while the caller processes events.
//!
//! A page arrives in two steps: the fetch, which tells how many rows it holds and the
//! position of its last row, and the decoding of those rows into events. The stream asks
//! for the next page as soon as a page has arrived, before decoding it: a backend whose
//! fetch runs on its own (see [`read_ahead`]) reads page N+1 while the caller decodes and
//! handles page N. At most one page is read ahead.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream;

use super::{ReadDirection, ReadOptions, StoredEventStream};
use crate::error::{Error, Result};
use crate::stored::StoredEvent;

/// Rows fetched per page.
pub(crate) const PAGE_SIZE: usize = 500;

/// One row of a page: its position (global or stream) and the decoded event or the
/// reason it could not be decoded.
pub(crate) type PageRow = (u64, Result<StoredEvent>);

/// A fetched page whose rows are decoded on demand.
pub(crate) struct Page<'a> {
    /// The number of rows.
    len: usize,
    /// The position of the last row: the cursor of the next page.
    last: Option<u64>,
    decode: Box<dyn FnOnce() -> Result<Vec<PageRow>> + Send + 'a>,
}

impl<'a> Page<'a> {
    /// A page of rows decoded already.
    pub(crate) fn decoded(rows: Vec<PageRow>) -> Self {
        Page {
            len: rows.len(),
            last: rows.last().map(|(position, _)| *position),
            decode: Box::new(move || Ok(rows)),
        }
    }

    /// A page of `len` rows, the last at `last`, that `decode` turns into rows; a failed
    /// decode fails the page.
    #[cfg(feature = "sqlite")]
    pub(crate) fn lazy(
        len: usize,
        last: Option<u64>,
        decode: impl FnOnce() -> Result<Vec<PageRow>> + Send + 'a,
    ) -> Self {
        Page {
            len,
            last,
            decode: Box::new(decode),
        }
    }
}

/// Fetches up to `limit` rows strictly after (forward) or before (backward) `cursor`.
pub(crate) type FetchPage<'a> =
    Box<dyn FnMut(u64, usize) -> BoxFuture<'a, Result<Page<'a>>> + Send + 'a>;

/// A page asked for and the number of rows asked.
type PendingPage<'a> = (usize, BoxFuture<'a, Result<Page<'a>>>);

struct State<'a> {
    fetch: FetchPage<'a>,
    cursor: u64,
    remaining: Option<u64>,
    buffer: VecDeque<Result<StoredEvent>>,
    exhausted: bool,
    ahead: Option<PendingPage<'a>>,
}

impl<'a> State<'a> {
    /// Asks for the page after the cursor, unless the read is over.
    fn ask(&mut self) -> Option<PendingPage<'a>> {
        if self.exhausted || self.remaining == Some(0) {
            return None;
        }
        let want = match self.remaining {
            Some(remaining) => usize::try_from(remaining)
                .unwrap_or(PAGE_SIZE)
                .min(PAGE_SIZE),
            None => PAGE_SIZE,
        };
        Some((want, (self.fetch)(self.cursor, want)))
    }
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
/// is reached, one page ahead of the events it yields. A failed page fetch or decode is
/// yielded as an error and ends the stream.
pub(crate) fn paginate<'a>(options: &ReadOptions, fetch: FetchPage<'a>) -> StoredEventStream<'a> {
    let state = State {
        fetch,
        cursor: start_cursor(options),
        remaining: options.limit,
        buffer: VecDeque::new(),
        exhausted: false,
        ahead: None,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.buffer.pop_front() {
                return Some((item, st));
            }
            let (want, pending) = match st.ahead.take() {
                Some(pending) => pending,
                None => st.ask()?,
            };
            let page = match pending.await {
                Ok(page) => page,
                Err(e) => {
                    st.exhausted = true;
                    return Some((Err(e), st));
                }
            };
            st.exhausted = page.len < want;
            if let Some(last) = page.last {
                st.cursor = last;
            }
            if let Some(remaining) = st.remaining.as_mut() {
                *remaining = remaining.saturating_sub(page.len as u64);
            }
            // The next page is on its way while this one is decoded and handled.
            st.ahead = st.ask();
            match (page.decode)() {
                Ok(rows) => st.buffer.extend(rows.into_iter().map(|(_, row)| row)),
                Err(e) => {
                    st.exhausted = true;
                    st.ahead = None;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

/// Runs `fetch` as a task of its own, so that it makes progress while the stream's
/// caller works on the page before; dropping the returned future cancels the task.
/// Outside a Tokio runtime `fetch` runs when awaited, as any future.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn read_ahead<T: Send + 'static>(
    fetch: impl Future<Output = Result<T>> + Send + 'static,
) -> BoxFuture<'static, Result<T>> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Box::pin(AbortOnDrop(runtime.spawn(fetch))),
        Err(_) => Box::pin(fetch),
    }
}

/// A spawned task, aborted when its handle is dropped before it finished; a panic in
/// the task resumes in the one awaiting it.
pub(crate) struct AbortOnDrop<T>(tokio::task::JoinHandle<Result<T>>);

impl<T: Send + 'static> AbortOnDrop<T> {
    /// Spawns `task` on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub(crate) fn spawn(task: impl Future<Output = Result<T>> + Send + 'static) -> Self {
        AbortOnDrop(tokio::spawn(task))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(Error::Database {
                operation: "read page",
                source: format!("the page reader was cancelled: {error}").into(),
            }),
        })
    }
}
