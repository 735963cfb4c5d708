//! The seeds' Getting Started guide, steps 1 to 6: events, state, an aggregate with
//! commands, an event store and a repository, on the in-memory store.
//!
//! Run with: `cargo run --example getting_started`

use std::error::Error;
use std::io::Write;
use std::sync::Arc;

use eventsource::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// Step 1: events capture what happened, named in the past tense.

/// Emitted when a task is created.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskCreated {
    title: String,
    description: String,
    assigned_to: Option<Uuid>,
}

/// Emitted when a task is completed.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskCompleted {
    completed_by: Uuid,
}

/// Emitted when a task is reassigned.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
struct TaskReassigned {
    previous_assignee: Option<Uuid>,
    new_assignee: Uuid,
}

// Step 2: the state is the current data of the aggregate.

/// Current state of a Task aggregate.
#[derive(Debug)]
struct TaskState {
    task_id: Uuid,
    title: String,
    description: String,
    assigned_to: Option<Uuid>,
    status: &'static str,
    completed_by: Option<Uuid>,
}

// Step 3: the aggregate: how each event changes the state...
#[aggregate(name = "Task")]
impl TaskState {
    #[init]
    fn new(task_id: Uuid) -> Self {
        TaskState {
            task_id,
            title: String::new(),
            description: String::new(),
            assigned_to: None,
            status: "pending",
            completed_by: None,
        }
    }

    #[apply]
    fn created(&mut self, event: &TaskCreated) {
        self.title.clone_from(&event.title);
        self.description.clone_from(&event.description);
        self.assigned_to = event.assigned_to;
        self.status = "pending";
    }

    #[apply]
    fn completed(&mut self, event: &TaskCompleted) {
        self.status = "completed";
        self.completed_by = Some(event.completed_by);
    }

    #[apply]
    fn reassigned(&mut self, event: &TaskReassigned) {
        self.assigned_to = Some(event.new_assignee);
    }
}

/// ...and the commands (business logic) that validate and then apply.
trait TaskCommands {
    fn create(
        &mut self,
        title: &str,
        description: &str,
        assigned_to: Option<Uuid>,
    ) -> Result<(), TaskError>;
    fn complete(&mut self, completed_by: Uuid) -> Result<(), TaskError>;
    fn reassign(&mut self, new_assignee: Uuid) -> Result<(), TaskError>;
}

#[derive(Debug)]
enum TaskError {
    AlreadyExists,
    DoesNotExist,
    AlreadyCompleted,
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskError::AlreadyExists => "Task already exists",
            TaskError::DoesNotExist => "Task does not exist",
            TaskError::AlreadyCompleted => "Task already completed",
        })
    }
}

impl Error for TaskError {}

impl TaskCommands for AggregateRoot<TaskState> {
    fn create(
        &mut self,
        title: &str,
        description: &str,
        assigned_to: Option<Uuid>,
    ) -> Result<(), TaskError> {
        if self.version() > 0 {
            return Err(TaskError::AlreadyExists);
        }
        self.apply_event(TaskCreated {
            title: title.into(),
            description: description.into(),
            assigned_to,
        });
        Ok(())
    }

    fn complete(&mut self, completed_by: Uuid) -> Result<(), TaskError> {
        if self.version() == 0 {
            return Err(TaskError::DoesNotExist);
        }
        if self.state().status == "completed" {
            return Err(TaskError::AlreadyCompleted);
        }
        self.apply_event(TaskCompleted { completed_by });
        Ok(())
    }

    fn reassign(&mut self, new_assignee: Uuid) -> Result<(), TaskError> {
        if self.version() == 0 {
            return Err(TaskError::DoesNotExist);
        }
        if self.state().status == "completed" {
            return Err(TaskError::AlreadyCompleted);
        }
        self.apply_event(TaskReassigned {
            previous_assignee: self.state().assigned_to,
            new_assignee,
        });
        Ok(())
    }
}

async fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    // Step 4: the event store (in memory here; SqliteEventStore for a file).
    let event_store = Arc::new(InMemoryEventStore::new());
    // Step 5: the repository loads and saves aggregates.
    let repo = AggregateRepository::<TaskState>::new(event_store.clone());

    // Step 6: use it. Create a new task.
    let task_id = Uuid::new_v4();
    let user_id = Uuid::new_v4();
    let mut task = repo.create_new(task_id);
    task.create(
        "Implement event sourcing",
        "Add eventsource library to the project",
        Some(user_id),
    )?;
    repo.save(&mut task).await?;
    writeln!(out, "Created task {}", task.state().task_id)?;

    // Load and modify the task
    let mut loaded_task = repo.load(task_id).await?;
    writeln!(out, "Task status: {}", loaded_task.state().status)?;

    // Reassign to someone else
    let new_assignee = Uuid::new_v4();
    loaded_task.reassign(new_assignee)?;
    repo.save(&mut loaded_task).await?;
    let assigned = loaded_task
        .state()
        .assigned_to
        .map(|id| id.to_string())
        .unwrap_or_default();
    writeln!(out, "Reassigned to: {assigned}")?;

    // Complete the task
    let mut final_task = repo.load(task_id).await?;
    final_task.complete(new_assignee)?;
    repo.save(&mut final_task).await?;
    writeln!(out, "Final status: {}", final_task.state().status)?;

    // Check version (3: created, reassigned, completed)
    writeln!(out, "Version: {}", final_task.version())?;
    let state = final_task.state();
    writeln!(
        out,
        "Title: {} ({}), completed by the new assignee: {}",
        state.title,
        state.description,
        state.completed_by == Some(new_assignee)
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    run(&mut std::io::stdout()).await
}

#[cfg(test)]
mod tests {
    use eventsource_tests::example_support::mask_uuids;

    /// The example's event types match its lock (`examples/locks/getting_started.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "getting_started",
            env!("CARGO_CRATE_NAME"),
        );
    }

    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let mut out = Vec::new();
        super::run(&mut out).await.unwrap();
        assert_eq!(
            mask_uuids(&String::from_utf8(out).unwrap()),
            "Created task [UUID]
Task status: pending
Reassigned to: [UUID]
Final status: completed
Version: 3
Title: Implement event sourcing (Add eventsource library to the project), completed by the new assignee: true
"
        );
    }
}
