//! A subscription's reading task: the batches it handles, read ahead of the handler.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::store::page::AbortOnDrop;
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;

/// How old the head reported during a catch-up may get: reading it for every batch
/// costs the catch-up a query per batch.
const HEAD_REFRESH: Duration = Duration::from_millis(250);

/// A batch as read: the events, and the store's head twice.
pub(super) struct ReadBatch {
    /// Read before the stream's first page: an event at or below it that the stream
    /// does not return is not of a handled type (positions follow commit order in every
    /// store), so a batch that ends the stream has handled up to it.
    pub(super) head: u64,
    /// The head to report: read at most [`HEAD_REFRESH`] before this batch was cut from
    /// the stream.
    pub(super) latest_head: u64,
    pub(super) items: Vec<Result<StoredEvent>>,
}

/// The batches after a position, read by a task of its own from one `read_all` stream
/// of the handled types: the store pages ahead through the whole catch-up, and the task
/// cuts the next batch while the handler works on this one. Its channel has room for one
/// batch; the stream stops at the first batch that is not full (caught up), and the task
/// is aborted when the reader is dropped.
pub(super) struct BatchReader {
    /// The position the next batch reads after; `None` when no batch can follow.
    next: Option<u64>,
    batches: mpsc::Receiver<Result<ReadBatch>>,
    /// The reading task; taken when it has ended, to learn how.
    task: Option<AbortOnDrop<()>>,
}

impl BatchReader {
    /// Starts reading after `from`.
    pub(super) fn start(
        store: Arc<dyn EventStore>,
        from: u64,
        batch_size: usize,
        handled: &'static [&'static str],
    ) -> Self {
        let (sender, batches) = mpsc::channel(1);
        let task = AbortOnDrop::spawn(async move {
            // The receiver may be gone when a send fails; then nobody waits for this.
            let head = match store.get_global_position().await {
                Ok(head) => head,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return Ok(());
                }
            };
            // With the names the handled types were renamed from: their rows read back as
            // the handled types.
            let registry = crate::EventRegistry::global();
            let options = ReadOptions::new()
                .from_position(from)
                .event_types(handled.iter().flat_map(|name| registry.stored_names(name)));
            let mut stream = store.read_all(options).peekable();
            let (mut latest_head, mut head_read) = (head, Instant::now());
            loop {
                let mut items: Vec<_> = stream.by_ref().take(batch_size).collect().await;
                let full = items.len() == batch_size;
                // The events a split upcaster made of one row share its position: a
                // batch takes all of them, so that its checkpoint never falls inside.
                while let Some(last) = items.last().and_then(placed_position) {
                    match std::pin::Pin::new(&mut stream).peek().await {
                        Some(next) if placed_position(next) == Some(last) => {}
                        _ => break,
                    }
                    items.extend(stream.next().await);
                }
                let batch = ReadBatch {
                    head,
                    latest_head,
                    items,
                };
                if sender.send(Ok(batch)).await.is_err() || !full {
                    return Ok(());
                }
                if head_read.elapsed() >= HEAD_REFRESH {
                    latest_head = match store.get_global_position().await {
                        Ok(head) => head,
                        Err(error) => {
                            let _ = sender.send(Err(error)).await;
                            return Ok(());
                        }
                    };
                    head_read = Instant::now();
                }
            }
        });
        BatchReader {
            next: Some(from),
            batches,
            task: Some(task),
        }
    }

    /// `true` when this reader's next batch is the one after `position`.
    pub(super) fn reads_after(&self, position: u64) -> bool {
        self.next == Some(position)
    }

    /// The next batch.
    ///
    /// # Errors
    /// The store's error reading the head, or [`Error::Database`] when the reading task
    /// ended without a batch (it was cancelled, or no batch can follow the last one).
    ///
    /// # Panics
    /// When the reading task panicked: its panic goes on here.
    pub(super) async fn next(&mut self) -> Result<ReadBatch> {
        let Some(batch) = self.batches.recv().await else {
            self.next = None;
            if let Some(task) = self.task.take() {
                task.await?;
            }
            return Err(Error::Database {
                operation: "read batch",
                kind: crate::error::DatabaseErrorKind::Other,
                source: "the subscription's reading task ended without a batch".into(),
            });
        };
        let batch = batch.inspect_err(|_| self.next = None)?;
        self.next = match batch.items.last() {
            Some(Ok(event)) => Some(event.global_position),
            Some(Err(Error::CorruptEvent {
                global_position, ..
            })) => Some(*global_position),
            Some(Err(_)) => None,
            None => self.next,
        };
        Ok(batch)
    }
}

/// The position of a read item that has one: an event, or a corrupt row at a position.
fn placed_position(item: &Result<StoredEvent>) -> Option<u64> {
    match item {
        Ok(event) => Some(event.global_position),
        Err(Error::CorruptEvent {
            global_position, ..
        }) if *global_position >= 1 => Some(*global_position),
        Err(_) => None,
    }
}
