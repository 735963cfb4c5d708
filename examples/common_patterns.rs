//! The seeds' event store "Common Patterns" (Tutorial 4): checking whether an aggregate
//! exists, processing an incoming event only once, and appending several events
//! atomically.
//!
//! Run with: `cargo run --example common_patterns`

use std::error::Error;
use std::io::Write;

use eventsource::prelude::*;
use eventsource::Error as StoreError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskCreated {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskAssigned {
    assignee: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskStarted {}

/// Checking if an aggregate exists: by its stream version, or by loading its events.
async fn aggregate_exists(
    store: &dyn EventStore,
    out: &mut dyn Write,
) -> Result<(), Box<dyn Error>> {
    writeln!(out, "=== Checking if an aggregate exists ===")?;
    let task_id = Uuid::new_v4();
    store
        .append_events(
            task_id,
            "Task",
            vec![NewEvent::new(TaskCreated {
                title: "Write docs".into(),
            })],
            ExpectedVersion::NoStream,
        )
        .await?;
    // Using get_stream_version
    let version = store.get_stream_version(task_id, "Task").await?;
    writeln!(
        out,
        "Using get_stream_version: exists = {} (version {version})",
        version > 0
    )?;
    // Or load and check
    let stream = store
        .get_events(task_id, "Task", GetEventsOptions::default())
        .await?;
    writeln!(out, "Or load and check: exists = {}", !stream.is_empty())?;
    let unknown = store.get_stream_version(Uuid::new_v4(), "Task").await?;
    writeln!(out, "An id never appended to: exists = {}", unknown > 0)?;
    Ok(())
}

/// Idempotent event processing: an event that arrives twice (a redelivered message) is
/// processed and stored once.
async fn idempotent_processing(
    store: &dyn EventStore,
    out: &mut dyn Write,
) -> Result<(), Box<dyn Error>> {
    writeln!(out, "\n=== Idempotent event processing ===")?;
    let task_id = Uuid::new_v4();
    // The producer's id for the event, kept across redeliveries.
    let incoming = NewEvent::new(TaskCreated {
        title: "From the queue".into(),
    });
    for delivery in 1..=2 {
        // Check before processing
        if store.event_exists(incoming.event_id()).await? {
            writeln!(out, "Delivery {delivery}: Already processed")?;
            continue;
        }
        // Process event, then store it
        store
            .append_events(
                task_id,
                "Task",
                vec![incoming.clone()],
                ExpectedVersion::Any,
            )
            .await?;
        writeln!(
            out,
            "Delivery {delivery}: processed and stored {}",
            incoming.event_id()
        )?;
    }
    // Even without the check, a stored event id is skipped, not stored twice.
    let again = store
        .append_events(
            task_id,
            "Task",
            vec![incoming.clone()],
            ExpectedVersion::Any,
        )
        .await?;
    writeln!(
        out,
        "Appending it once more leaves the stream at version {}",
        again.new_version
    )?;
    Ok(())
}

/// Batching: several events of one aggregate appended atomically, or none of them.
async fn batching(store: &dyn EventStore, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    writeln!(out, "\n=== Batching multiple events ===")?;
    let task_id = Uuid::new_v4();
    let events = vec![
        NewEvent::new(TaskCreated {
            title: "Ship it".into(),
        }),
        NewEvent::new(TaskAssigned {
            assignee: "ada".into(),
        }),
        NewEvent::new(TaskStarted {}),
    ];
    let result = store
        .append_events(task_id, "Task", events, ExpectedVersion::Exact(0))
        .await?;
    writeln!(
        out,
        "Appended 3 events atomically: new version {}",
        result.new_version
    )?;
    let stream = store
        .get_events(task_id, "Task", GetEventsOptions::default())
        .await?;
    for event in &stream.events {
        writeln!(
            out,
            "  v{}: {}",
            event.aggregate_version(),
            event.event_type()
        )?;
    }
    // A batch expecting a stale version stores none of its events.
    let stale = store
        .append_events(
            task_id,
            "Task",
            vec![NewEvent::new(TaskStarted {}), NewEvent::new(TaskStarted {})],
            ExpectedVersion::Exact(1),
        )
        .await;
    if let Err(StoreError::OptimisticLock { actual, .. }) = stale {
        writeln!(
            out,
            "A stale batch is refused whole: version still {actual}"
        )?;
    }
    Ok(())
}

async fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(":memory:").await?;
    store.initialize().await?;
    aggregate_exists(&store, out).await?;
    idempotent_processing(&store, out).await?;
    batching(&store, out).await?;
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    run(&mut std::io::stdout()).await
}

#[cfg(test)]
mod tests {
    use eventsource_tests::example_support::mask_uuids;

    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "common_patterns",
            env!("CARGO_CRATE_NAME"),
        );
    }

    /// The seed prints only "Already processed"; the rest says what each pattern showed.
    #[tokio::test]
    async fn prints_what_each_pattern_shows() {
        let mut out = Vec::new();
        super::run(&mut out).await.unwrap();
        assert_eq!(
            mask_uuids(&String::from_utf8(out).unwrap()),
            "=== Checking if an aggregate exists ===
Using get_stream_version: exists = true (version 1)
Or load and check: exists = true
An id never appended to: exists = false

=== Idempotent event processing ===
Delivery 1: processed and stored [UUID]
Delivery 2: Already processed
Appending it once more leaves the stream at version 1

=== Batching multiple events ===
Appended 3 events atomically: new version 3
  v1: TaskCreated
  v2: TaskAssigned
  v3: TaskStarted
A stale batch is refused whole: version still 3
"
        );
    }
}
