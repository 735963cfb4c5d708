//! A subscription's reading task: the batches it handles, read ahead of the handler.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::store::page::AbortOnDrop;
use crate::store::{EventStore, ReadOptions};
use crate::stored::StoredEvent;

/// A batch as read: the head position read before the read began, and the events.
pub(super) struct ReadBatch {
    pub(super) head: u64,
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
    _task: AbortOnDrop<()>,
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
            // The head, read before the stream's first page: an event at or below it
            // that the stream does not return is not of a handled type (positions
            // follow commit order in every store).
            let head = match store.get_global_position().await {
                Ok(head) => head,
                Err(error) => {
                    // The receiver may be gone already; then nobody waits for this.
                    let _ = sender.send(Err(error)).await;
                    return Ok(());
                }
            };
            let options = ReadOptions::new()
                .from_position(from)
                .event_types(handled.iter().copied());
            let mut stream = store.read_all(options);
            loop {
                let items: Vec<_> = stream.by_ref().take(batch_size).collect().await;
                let full = items.len() == batch_size;
                if sender.send(Ok(ReadBatch { head, items })).await.is_err() || !full {
                    return Ok(());
                }
            }
        });
        BatchReader {
            next: Some(from),
            batches,
            _task: task,
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
    pub(super) async fn next(&mut self) -> Result<ReadBatch> {
        let Some(batch) = self.batches.recv().await else {
            self.next = None;
            return Err(Error::Database {
                operation: "read batch",
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
