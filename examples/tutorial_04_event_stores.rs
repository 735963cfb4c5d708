//! Tutorial 4 of the seeds: event stores, on the `InMemoryEventStore`.
//!
//! Run with: `cargo run --example tutorial_04_event_stores`

use std::error::Error;
use std::io::Write;

use eventsource::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// =============================================================================
// Events
// =============================================================================

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskCreated {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskCompleted {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskReassigned {
    new_assignee: Uuid,
}

// =============================================================================
// Demo
// =============================================================================

fn heading(out: &mut dyn Write, title: &str) -> std::io::Result<()> {
    writeln!(out, "\n{title}")?;
    writeln!(out, "{}", "-".repeat(60))
}

/// Demonstrates event store operations.
async fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    writeln!(out, "{}", "=".repeat(60))?;
    writeln!(out, "Tutorial 4: Event Stores")?;
    writeln!(out, "{}", "=".repeat(60))?;

    let store = InMemoryEventStore::new();
    let task_id = Uuid::new_v4();

    // 1. Appending events
    heading(out, "1. Appending events")?;
    let created = NewEvent::new(TaskCreated {
        title: "Learn event stores".into(),
    });
    let result = store
        .append_events(task_id, "Task", vec![created], ExpectedVersion::NoStream)
        .await;
    // A conflict or a failure is the `Err`: success is the `Ok`.
    writeln!(out, "  Success: {}", result.is_ok())?;
    let result = result?;
    writeln!(out, "  New version: {}", result.new_version)?;
    writeln!(out, "  Global position: {}", result.global_position)?;

    // 2. Reading events
    heading(out, "2. Reading events")?;
    let stream = store
        .get_events(task_id, "Task", GetEventsOptions::default())
        .await?;
    writeln!(out, "  Aggregate ID: {}", stream.aggregate_id)?;
    writeln!(out, "  Aggregate type: {}", stream.aggregate_type)?;
    writeln!(out, "  Version: {}", stream.version)?;
    writeln!(out, "  Events:")?;
    for event in &stream.events {
        writeln!(
            out,
            "    - v{}: {}",
            event.aggregate_version(),
            event.event_type()
        )?;
    }

    // 3. Append another event
    heading(out, "3. Appending another event")?;
    let completed = NewEvent::new(TaskCompleted {});
    let result = store
        .append_events(task_id, "Task", vec![completed], ExpectedVersion::Exact(1)) // We know current version is 1
        .await?;
    writeln!(out, "  New version: {}", result.new_version)?;

    // 4. Optimistic locking
    heading(out, "4. Optimistic locking (conflict detection)")?;
    let reassigned = NewEvent::new(TaskReassigned {
        new_assignee: Uuid::new_v4(),
    });
    // Try to append with wrong version
    match store
        .append_events(task_id, "Task", vec![reassigned], ExpectedVersion::Exact(1)) // Wrong! Actual version is 2
        .await
    {
        Err(eventsource::Error::OptimisticLock {
            expected, actual, ..
        }) => {
            writeln!(out, "  Conflict detected!")?;
            writeln!(out, "  Expected version: {expected}")?;
            writeln!(out, "  Actual version: {actual}")?;
        }
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }

    // 5. Streaming events
    heading(out, "5. Streaming events with read_stream()")?;
    let stream_id = StreamId::new(task_id, "Task");
    writeln!(out, "  Stream ID: {stream_id}")?;
    writeln!(out, "  Events:")?;
    let mut events = store.read_stream(&stream_id, ReadOptions::new());
    while let Some(stored_event) = events.next().await {
        let stored_event = stored_event?;
        writeln!(
            out,
            "    - Position {}: {}",
            stored_event.stream_position,
            stored_event.event_type()
        )?;
    }

    // 6. Reading all events
    heading(out, "6. Reading all events with read_all()")?;
    // Create another task for demonstration
    let task2_id = Uuid::new_v4();
    store
        .append_events(
            task2_id,
            "Task",
            vec![NewEvent::new(TaskCreated {
                title: "Second task".into(),
            })],
            ExpectedVersion::NoStream,
        )
        .await?;
    writeln!(out, "  All events in global order:")?;
    let mut events = store.read_all(ReadOptions::new());
    while let Some(stored_event) = events.next().await {
        let stored_event = stored_event?;
        writeln!(
            out,
            "    - Global pos {}: {}/{}",
            stored_event.global_position,
            stored_event.aggregate_type(),
            stored_event.event_type()
        )?;
    }

    // 7. Reading with options
    heading(out, "7. Reading with ReadOptions (backward, limited)")?;
    let options = ReadOptions {
        direction: ReadDirection::Backward,
        limit: Some(2),
        ..ReadOptions::default()
    };
    writeln!(out, "  Last 2 events (newest first):")?;
    let mut events = store.read_all(options);
    while let Some(stored_event) = events.next().await {
        let stored_event = stored_event?;
        writeln!(
            out,
            "    - Global pos {}: {}",
            stored_event.global_position,
            stored_event.event_type()
        )?;
    }

    // 8. Get events by type
    heading(out, "8. Get events by aggregate type")?;
    let task_events = store.get_events_by_type("Task", None, None).await?;
    writeln!(out, "  Total Task events: {}", task_events.len())?;
    for event in &task_events {
        writeln!(
            out,
            "    - {} for task {}",
            event.event_type(),
            event.aggregate_id()
        )?;
    }

    // 9. Event store metadata
    heading(out, "9. Event store metadata")?;
    writeln!(out, "  Total events: {}", store.get_event_count())?;
    writeln!(
        out,
        "  Total aggregates: {}",
        store.get_aggregate_ids().len()
    )?;
    writeln!(
        out,
        "  Current global position: {}",
        store.get_global_position().await?
    )?;

    writeln!(out, "\n{}", "=".repeat(60))?;
    writeln!(out, "Tutorial complete!")?;
    writeln!(out, "{}", "=".repeat(60))?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    run(&mut std::io::stdout()).await
}

#[cfg(test)]
mod tests {
    use eventsource_tests::example_support::mask_uuids;

    /// The example's event types match its lock (`examples/locks/tutorial_04_event_stores.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "tutorial_04_event_stores",
            env!("CARGO_CRATE_NAME"),
        );
    }

    const EXPECTED: &str = "============================================================
Tutorial 4: Event Stores
============================================================

1. Appending events
------------------------------------------------------------
  Success: true
  New version: 1
  Global position: 1

2. Reading events
------------------------------------------------------------
  Aggregate ID: [UUID]
  Aggregate type: Task
  Version: 1
  Events:
    - v1: TaskCreated

3. Appending another event
------------------------------------------------------------
  New version: 2

4. Optimistic locking (conflict detection)
------------------------------------------------------------
  Conflict detected!
  Expected version: 1
  Actual version: 2

5. Streaming events with read_stream()
------------------------------------------------------------
  Stream ID: [UUID]:Task
  Events:
    - Position 1: TaskCreated
    - Position 2: TaskCompleted

6. Reading all events with read_all()
------------------------------------------------------------
  All events in global order:
    - Global pos 1: Task/TaskCreated
    - Global pos 2: Task/TaskCompleted
    - Global pos 3: Task/TaskCreated

7. Reading with ReadOptions (backward, limited)
------------------------------------------------------------
  Last 2 events (newest first):
    - Global pos 3: TaskCreated
    - Global pos 2: TaskCompleted

8. Get events by aggregate type
------------------------------------------------------------
  Total Task events: 3
    - TaskCreated for task [UUID]
    - TaskCompleted for task [UUID]
    - TaskCreated for task [UUID]

9. Event store metadata
------------------------------------------------------------
  Total events: 3
  Total aggregates: 2
  Current global position: 3

============================================================
Tutorial complete!
============================================================
";

    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let mut out = Vec::new();
        super::run(&mut out).await.unwrap();
        assert_eq!(mask_uuids(&String::from_utf8(out).unwrap()), EXPECTED);
    }
}
