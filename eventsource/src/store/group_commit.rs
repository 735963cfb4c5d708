//! Group commit: appends that arrive while another append is being written wait in a
//! queue, and the next writer takes all of them into one transaction, so that the
//! commit (and the write lock) is paid once per group instead of once per append.
//!
//! There is no background task. Every append queues its request, then either receives
//! its result from the writer that took it, or becomes the writer itself (the leader) by
//! taking the writer lock: the leader drains the queue, hands the group to the backend
//! (synchronously with [`GroupWriter::write_now`] where the backend can write without
//! waiting, else [`GroupWriter::write_group`] in a spawned task), and answers every
//! request of the group. Each request keeps its own outcome: the backend checks each append's expected
//! version and event ids on its own, and one refused append does not fail its
//! neighbours. A synchronous write cannot be interrupted, and the spawned task owns the
//! writer lock and the group, so an append whose caller gives up (a dropped future)
//! never leaves a group half-answered.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{oneshot, Mutex as AsyncMutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::envelope::NewEvent;
use crate::error::{DatabaseErrorKind, Error, Result};
use crate::store::sql::EncodedEvent;
use crate::store::{AppendResult, ExpectedVersion};

/// At most this many appends go into one group.
pub(crate) const MAX_GROUP_APPENDS: usize = 256;
/// A group stops growing once it holds this many events (a single larger append still
/// goes, alone).
pub(crate) const MAX_GROUP_EVENTS: usize = 4096;

/// One append waiting to be written: its events already checked and serialized.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub(crate) aggregate_id: Uuid,
    pub(crate) aggregate_type: String,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) encoded: Vec<EncodedEvent>,
    pub(crate) expected: ExpectedVersion,
}

/// What writes a group: a backend's store.
pub(crate) trait GroupWriter: Clone + Send + Sync + 'static {
    /// Writes `group` (in arrival order) and returns one result per request, in the same
    /// order. Requests must be answered on their own merits: a conflict or a duplicate
    /// event id of one is that request's error only.
    fn write_group(
        &self,
        group: Vec<AppendRequest>,
    ) -> impl Future<Output = Vec<Result<AppendResult>>> + Send;

    /// Writes `group` as [`write_group`](Self::write_group) does, but synchronously, on
    /// this thread, when that can be done without waiting for a lock; `None` (nothing
    /// written) when it cannot. Nothing can interrupt a synchronous write, so the leader
    /// answers the group without a task of its own.
    fn write_now(&self, _group: &[AppendRequest]) -> Option<Vec<Result<AppendResult>>> {
        None
    }
}

struct Pending {
    request: AppendRequest,
    reply: oneshot::Sender<Result<AppendResult>>,
}

/// The queue of appends waiting for a writer, and the writer lock.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<VecDeque<Pending>>,
    writer: Arc<AsyncMutex<()>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("GroupCommit")
            .field("queued", &queued)
            .finish()
    }
}

impl GroupCommit {
    /// Appends `request` through `writer`, in a group with whatever other appends are
    /// waiting, and returns its own result.
    pub(crate) async fn append<W: GroupWriter>(
        &self,
        writer: &W,
        request: AppendRequest,
    ) -> Result<AppendResult> {
        let (reply, mut answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Pending { request, reply });
        loop {
            let lock = self.writer.clone().lock_owned();
            tokio::select! {
                biased;
                result = &mut answer => return result.unwrap_or_else(|_| Err(lost())),
                guard = lock => {
                    // A leader that took this request answered it before letting go of
                    // the lock.
                    match answer.try_recv() {
                        Ok(result) => return result,
                        Err(oneshot::error::TryRecvError::Closed) => return Err(lost()),
                        Err(oneshot::error::TryRecvError::Empty) => {}
                    }
                    let group = self.take_group();
                    if group.is_empty() {
                        // Not reachable (a leader answers before it lets go of the
                        // lock); wait for the answer rather than take the lock again.
                        drop(guard);
                        return answer.await.unwrap_or_else(|_| Err(lost()));
                    }
                    lead(writer.clone(), group, guard).await;
                }
            }
        }
    }

    /// The requests of the next group, oldest first.
    fn take_group(&self) -> Vec<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut group = Vec::new();
        let mut events = 0;
        while let Some(next) = queue.front() {
            let size = next.request.events.len();
            if !group.is_empty()
                && (group.len() >= MAX_GROUP_APPENDS || events + size > MAX_GROUP_EVENTS)
            {
                break;
            }
            events += size;
            group.extend(queue.pop_front());
        }
        group
    }
}

/// Writes `group` and answers each of its requests, holding the writer lock until then;
/// in a task of its own where there is a runtime to spawn on, so that the group is
/// written and answered even if the leader's caller stops waiting.
async fn lead<W: GroupWriter>(writer: W, group: Vec<Pending>, guard: OwnedMutexGuard<()>) {
    let (requests, replies): (Vec<_>, Vec<_>) =
        group.into_iter().map(|p| (p.request, p.reply)).unzip();
    if let Some(results) = writer.write_now(&requests) {
        answer(replies, results, requests.len());
        drop(guard);
        return;
    }
    let work = async move {
        let count = requests.len();
        let results = writer.write_group(requests).await;
        answer(replies, results, count);
        drop(guard);
    };
    match tokio::runtime::Handle::try_current() {
        // A panic in the backend reaches the requests as closed channels (`lost`).
        Ok(runtime) => {
            let _ = runtime.spawn(work).await;
        }
        Err(_) => work.await,
    }
}

/// Sends each request of a group of `count` its result.
fn answer(
    replies: Vec<oneshot::Sender<Result<AppendResult>>>,
    results: Vec<Result<AppendResult>>,
    count: usize,
) {
    let mut results = results.into_iter();
    for reply in replies {
        let result = results.next().unwrap_or_else(|| {
            Err(Error::Database {
                operation: "append_events",
                kind: DatabaseErrorKind::Other,
                source: format!("a group of {count} appends came back with fewer results").into(),
            })
        });
        // A requester that stopped waiting does not want its answer.
        let _ = reply.send(result);
    }
}

/// The error of a request whose group ended without an answer (its writer panicked).
fn lost() -> Error {
    Error::Database {
        operation: "append_events",
        kind: DatabaseErrorKind::Other,
        source: "the group commit writing this append ended without an answer (it panicked); \
                 whether the append was stored is unknown: read the stream to find out"
            .into(),
    }
}

/// `true` for a failed group whose appends would fail the same way one at a time (after
/// waiting as long again): a closed store, no connection free in the pool, a database
/// locked by another process.
pub(crate) fn must_not_retry(error: &Error) -> bool {
    matches!(
        error,
        Error::StoreClosed
            | Error::Database {
                kind: DatabaseErrorKind::Busy | DatabaseErrorKind::PoolTimeout,
                ..
            }
    )
}

/// `error` again, for another append of the same failed group.
pub(crate) fn copy_error(error: &Error) -> Error {
    match error {
        Error::StoreClosed => Error::StoreClosed,
        Error::Database {
            operation,
            kind,
            source,
        } => Error::Database {
            operation,
            kind: *kind,
            source: source.to_string().into(),
        },
        other => Error::Database {
            operation: "append_events",
            kind: DatabaseErrorKind::Other,
            source: other.to_string().into(),
        },
    }
}
