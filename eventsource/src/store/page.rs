//! Keyset pagination shared by the stores' `read_all` and `read_stream`: rows are fetched
//! a page at a time by position, so a read never holds the whole table in memory, nor a
//! connection while the caller processes events.
//!
//! The in-memory store pages inline ([`paginate`]). The SQL stores page ahead
//! ([`paginate_ahead`]): a task of its own fetches page after page, each as soon as the
//! one before it has arrived, and hands them over through a channel with room for one.
//! So the database builds page N+1 (and N+2) while the caller decodes and handles page N,
//! without waiting for the caller to ask, and at most three pages are in memory at once.
//! The task holds a connection only while a page's query runs, so a caller that writes
//! between events through a one-connection pool never waits for the reader.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use futures::future::BoxFuture;
use futures::stream;

use super::{ReadDirection, ReadOptions, StoredEventStream};
use crate::error::{Error, Result};
use crate::stored::StoredEvent;

/// Rows per page.
pub(crate) const PAGE_SIZE: usize = 500;

/// A row of a page: its position (global position, or version for `read_stream`) and
/// the event, or the error that row decodes to (the stream reports it and goes on).
pub(crate) type PageRow = (u64, Result<StoredEvent>);

/// Where a read stands: the position its next page starts after, how many events it may
/// still return, and whether it is over.
struct Cursor {
    position: u64,
    remaining: Option<u64>,
    over: bool,
}

impl Cursor {
    fn new(options: &ReadOptions) -> Self {
        let position = match options.direction {
            ReadDirection::Forward => options.from_position,
            ReadDirection::Backward if options.from_position == 0 => u64::MAX,
            ReadDirection::Backward => options.from_position,
        };
        Cursor {
            position,
            remaining: options.limit,
            over: false,
        }
    }

    /// The next page to fetch: after which position, and at most how many rows; `None`
    /// when the read is over.
    fn next(&self) -> Option<(u64, usize)> {
        if self.over || self.remaining == Some(0) {
            return None;
        }
        let want = self.remaining.map_or(PAGE_SIZE, |remaining| {
            usize::try_from(remaining)
                .unwrap_or(PAGE_SIZE)
                .min(PAGE_SIZE)
        });
        Some((self.position, want))
    }

    /// Moves past a page of `len` rows ending at position `last`, for which `want` rows
    /// were asked: a shorter page is the last one.
    fn advance(&mut self, want: usize, len: usize, last: Option<u64>) {
        self.over = len < want;
        if let Some(last) = last {
            self.position = last;
        }
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining = remaining.saturating_sub(len as u64);
        }
    }
}

/// A stream over pages that `fetch` returns at once: up to `limit` rows strictly after
/// (forward) or before (backward) `cursor`, in order.
pub(crate) fn paginate<'a>(
    options: &ReadOptions,
    fetch: impl FnMut(u64, usize) -> Vec<PageRow> + Send + 'a,
) -> StoredEventStream<'a> {
    let state = (Cursor::new(options), fetch, VecDeque::new());
    Box::pin(stream::unfold(
        state,
        |(mut cursor, mut fetch, mut buffer)| async move {
            loop {
                if let Some(item) = buffer.pop_front() {
                    return Some((item, (cursor, fetch, buffer)));
                }
                let (from, want) = cursor.next()?;
                let rows = fetch(from, want);
                cursor.advance(want, rows.len(), rows.last().map(|(position, _)| *position));
                buffer.extend(rows.into_iter().map(|(_, row)| row));
            }
        },
    ))
}

/// A fetched page, before its rows are decoded: how many rows it holds, the position of
/// the last one (the next page's cursor), and the rows.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct Fetched<T> {
    pub(crate) len: usize,
    pub(crate) last: Option<u64>,
    pub(crate) rows: T,
}

/// A stream over pages that `fetch` reads in a task of its own, ahead of the caller (see
/// the module documentation); the caller's side turns each page's rows into events with
/// `decode`. The task starts when the stream is first polled and stops when the stream
/// is dropped.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn paginate_ahead<'a, T, F, D>(
    options: &ReadOptions,
    fetch: F,
    decode: D,
) -> StoredEventStream<'a>
where
    T: Send + 'static,
    F: Fn(u64, usize) -> BoxFuture<'static, Result<Fetched<T>>> + Send + 'static,
    D: Fn(T) -> Result<Vec<PageRow>> + Send + 'a,
{
    let state = Ahead {
        start: Some((Cursor::new(options), fetch)),
        pages: None,
        decode,
        buffer: VecDeque::new(),
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.buffer.pop_front() {
                return Some((item, st));
            }
            if let Some((cursor, fetch)) = st.start.take() {
                let (sender, receiver) = tokio::sync::mpsc::channel(1);
                match AbortOnDrop::try_spawn(produce(cursor, fetch, sender)) {
                    Ok(producer) => st.pages = Some((receiver, producer)),
                    Err(error) => return Some((Err(error), st)),
                }
            }
            let (receiver, _) = st.pages.as_mut()?;
            match receiver.recv().await {
                Some(Ok(page)) => match (st.decode)(page.rows) {
                    Ok(rows) => st.buffer.extend(rows.into_iter().map(|(_, row)| row)),
                    Err(error) => {
                        st.pages = None;
                        return Some((Err(error), st));
                    }
                },
                Some(Err(error)) => {
                    st.pages = None;
                    return Some((Err(error), st));
                }
                None => {
                    // The task is done: it ended the read, or it panicked or was
                    // cancelled, which its handle tells.
                    let (_, producer) = st.pages.take()?;
                    return match producer.await {
                        Ok(()) => None,
                        Err(error) => Some((Err(error), st)),
                    };
                }
            }
        }
    }))
}

/// At most this many misplaced rows are reported by one read (see [`with_misplaced`]);
/// the stores read one more, to tell that there are more.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const MISPLACED_MAX: usize = 10_000;

/// `main` with the rows that have no place in its order added: rows another tool wrote
/// at a global position or version below 1 (or, on SQLite, at a version that is not an
/// integer), which no page of `main` reaches. `misplaced` reads them, each as the error
/// it decodes to.
///
/// They are reported where the read covers the start of the order: first by a forward
/// read from the start, last by a backward read that runs to it (one its limit did not
/// stop first). So a full read in either direction reports every one of them once, and
/// a read resuming from a position (a subscription's catch-up) does not report them
/// again. They come on top of the read's limit, which counts placed rows: a reader that
/// pages by limit and position always moves on. The query runs only when the stream
/// gets that far.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn with_misplaced<'a>(
    options: &ReadOptions,
    main: StoredEventStream<'a>,
    misplaced: BoxFuture<'a, Result<Vec<Result<StoredEvent>>>>,
) -> StoredEventStream<'a> {
    use futures::StreamExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let limit = options.limit;
    let delivered = Arc::new(AtomicU64::new(0));
    let counted = delivered.clone();
    let main = main.inspect(move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    let misplaced = async move {
        runtime()?;
        misplaced.await
    };
    let misplaced = stream::once(misplaced).flat_map(|rows| {
        stream::iter(match rows {
            Ok(rows) => rows,
            Err(error) => vec![Err(error)],
        })
    });
    match options.direction {
        ReadDirection::Forward if options.from_position == 0 => Box::pin(misplaced.chain(main)),
        ReadDirection::Forward => Box::pin(main),
        ReadDirection::Backward => {
            // Only when the read reached the start: its limit did not end it.
            let after = stream::once(async move {
                let reached_start =
                    limit.is_none_or(|limit| delivered.load(Ordering::Relaxed) < limit);
                if reached_start {
                    misplaced.boxed()
                } else {
                    stream::empty().boxed()
                }
            })
            .flatten();
            Box::pin(main.chain(after))
        }
    }
}

/// The misplaced rows of a read (see [`with_misplaced`]), at most [`MISPLACED_MAX`]:
/// the stores read one more, and when it is there the rows end with an error saying
/// that more were left out.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn capped_misplaced(
    mut rows: Vec<Result<StoredEvent>>,
    operation: &'static str,
) -> Vec<Result<StoredEvent>> {
    if rows.len() > MISPLACED_MAX {
        rows.truncate(MISPLACED_MAX);
        rows.push(Err(Error::Database {
            operation,
            kind: crate::error::DatabaseErrorKind::Corrupt,
            source: format!(
                "more than {MISPLACED_MAX} rows have a global position or version below 1 or not \
                 an integer (written by another tool); the first {MISPLACED_MAX} were reported"
            )
            .into(),
        }));
    }
    rows
}

/// The receiving end of the pages the reading task sends.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
type PageReceiver<T> = tokio::sync::mpsc::Receiver<Result<Fetched<T>>>;

/// The state of a [`paginate_ahead`] stream.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
struct Ahead<T, F, D> {
    /// Where the read starts, until the task that fetches it is spawned.
    start: Option<(Cursor, F)>,
    /// The pages the task sends, and the task; `None` once the read is over.
    pages: Option<(PageReceiver<T>, AbortOnDrop<()>)>,
    decode: D,
    buffer: VecDeque<Result<StoredEvent>>,
}

/// Fetches page after page and sends them, until the read is over, a fetch fails, or the
/// stream is dropped (the channel closes).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn produce<T, F>(
    mut cursor: Cursor,
    fetch: F,
    pages: tokio::sync::mpsc::Sender<Result<Fetched<T>>>,
) -> Result<()>
where
    F: Fn(u64, usize) -> BoxFuture<'static, Result<Fetched<T>>>,
{
    while let Some((from, want)) = cursor.next() {
        let page = fetch(from, want).await;
        match &page {
            Ok(page) => cursor.advance(want, page.len, page.last),
            Err(_) => cursor.over = true,
        }
        if pages.send(page).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// A spawned task that is aborted when its handle is dropped. Awaiting it gives the
/// task's result; a panic in the task resumes in the awaiting one.
pub(crate) struct AbortOnDrop<T>(tokio::task::JoinHandle<Result<T>>);

impl<T: Send + 'static> AbortOnDrop<T> {
    /// Spawns `task` on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub(crate) fn spawn(task: impl Future<Output = Result<T>> + Send + 'static) -> Self {
        AbortOnDrop(tokio::spawn(task))
    }

    /// Spawns `task` on the current tokio runtime, or says that there is none.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn try_spawn(
        task: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<Self> {
        Ok(AbortOnDrop(runtime()?.spawn(task)))
    }
}

/// The current tokio runtime, or the error that a SQL store's read needs one.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|e| Error::Database {
        operation: "read",
        kind: crate::error::DatabaseErrorKind::Other,
        source: format!("reading a SQL store needs a tokio runtime: {e}").into(),
    })
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
                kind: crate::error::DatabaseErrorKind::Other,
                source: format!("the page reader was cancelled: {error}").into(),
            }),
        })
    }
}
