//! The seeds' Getting Started "Complete Example": a repository publishing to an event bus,
//! and a SubscriptionManager feeding a projection historical and live events.
//!
//! Run with: `cargo run --example getting_started_complete`

use std::error::Error;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    InMemoryCheckpointStore, InMemoryEventBus, StartFrom, SubscriptionConfig, SubscriptionManager,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// Events
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskCreated {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskCompleted {}

// State and aggregate
#[derive(Debug, Default)]
struct TaskState {
    title: String,
    status: &'static str,
}

#[aggregate(name = "Task")]
impl TaskState {
    #[apply]
    fn created(&mut self, event: &TaskCreated) {
        self.title.clone_from(&event.title);
        self.status = "pending";
    }

    #[apply]
    fn completed(&mut self, _event: &TaskCompleted) {
        self.status = "completed";
    }
}

fn create(task: &mut AggregateRoot<TaskState>, title: &str) -> Result<(), String> {
    if task.version() > 0 {
        return Err("Already exists".into());
    }
    task.apply_event(TaskCreated {
        title: title.into(),
    });
    Ok(())
}

fn complete(task: &mut AggregateRoot<TaskState>) -> Result<(), String> {
    if task.version() == 0 || task.state().status == "completed" {
        return Err("Invalid state".into());
    }
    task.apply_event(TaskCompleted {});
    Ok(())
}

// Projection: the task list read model, in insertion order.
#[derive(Debug, Default)]
struct TaskProjection {
    tasks: Vec<(Uuid, String, &'static str)>,
}

#[projection]
impl TaskProjection {
    #[handles]
    async fn created(&mut self, event: &TaskCreated, ctx: &EventContext<'_>) {
        self.tasks
            .push((ctx.aggregate_id(), event.title.clone(), "pending"));
    }

    #[handles]
    async fn completed(&mut self, _event: &TaskCompleted, ctx: &EventContext<'_>) {
        if let Some(task) = self
            .tasks
            .iter_mut()
            .find(|(id, ..)| *id == ctx.aggregate_id())
        {
            task.2 = "completed";
        }
    }
}

async fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    // Setup infrastructure
    let store = Arc::new(InMemoryEventStore::new());
    let bus = Arc::new(InMemoryEventBus::new());
    let checkpoints = Arc::new(InMemoryCheckpointStore::new());
    let repo = AggregateRepository::<TaskState>::new(store.clone()).with_publisher(bus.clone());

    // Set up SubscriptionManager with projection
    let manager = SubscriptionManager::new(store.clone(), bus.clone(), checkpoints);
    let config = SubscriptionConfig::new().start_from(StartFrom::Beginning);
    let projection = manager
        .subscribe(TaskProjection::default(), config, "TaskList")
        .await?;
    manager.start().await?;

    // Create tasks
    let mut last = 0;
    for i in 0..3 {
        let mut task = repo.create_new(Uuid::new_v4());
        create(&mut task, &format!("Task {}", i + 1))?;
        last = repo.save(&mut task).await?.global_position;
    }
    // Wait for events to be processed (no sleep: wait for the position)
    projection.wait_for(last, Duration::from_secs(5)).await?;

    // Complete first task
    let first_task_id = projection.projection().lock().await.tasks[0].0;
    let mut task = repo.load(first_task_id).await?;
    complete(&mut task)?;
    let saved = repo.save(&mut task).await?;
    projection
        .wait_for(saved.global_position, Duration::from_secs(5))
        .await?;

    // Show results
    writeln!(out, "All tasks:")?;
    for (_, title, status) in &projection.projection().lock().await.tasks {
        writeln!(out, " - {title}: {status}")?;
    }

    // Graceful shutdown
    manager.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    run(&mut std::io::stdout()).await
}

#[cfg(test)]
mod tests {

    /// The example's event types match its lock (`examples/locks/getting_started_complete.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "getting_started_complete",
            env!("CARGO_CRATE_NAME"),
        );
    }
    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let mut out = Vec::new();
        super::run(&mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "All tasks:
 - Task 1: completed
 - Task 2: pending
 - Task 3: pending
"
        );
    }
}
