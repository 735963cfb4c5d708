//! The seeds' Getting Started guide, steps 1 to 8: events, state, an aggregate with
//! commands, an event store and a repository, on the in-memory store; then a projection
//! (`get_pending_tasks`) fed by a `SubscriptionManager` through an event bus.
//!
//! Run with: `cargo run --example getting_started`

use std::error::Error;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

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

// Step 7: a projection builds a read model optimized for queries.

/// One row of the task list.
#[derive(Debug, Clone)]
struct TaskRow {
    id: Uuid,
    title: String,
    status: &'static str,
    assigned_to: Option<Uuid>,
}

impl std::fmt::Display for TaskRow {
    /// As the seed prints its rows (Python dicts).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let assigned = self
            .assigned_to
            .map_or_else(|| "None".to_owned(), |id| format!("UUID('{id}')"));
        write!(
            f,
            "{{'id': UUID('{}'), 'title': '{}', 'status': '{}', 'assigned_to': {assigned}}}",
            self.id, self.title, self.status
        )
    }
}

/// Maintains a list of tasks for quick querying.
#[derive(Debug, Default)]
struct TaskListProjection {
    tasks: Vec<TaskRow>,
}

#[projection(name = "TaskList")]
impl TaskListProjection {
    #[handles]
    async fn created(&mut self, event: &TaskCreated, ctx: &EventContext<'_>) {
        self.tasks.push(TaskRow {
            id: ctx.aggregate_id(),
            title: event.title.clone(),
            status: "pending",
            assigned_to: event.assigned_to,
        });
    }

    #[handles]
    async fn completed(&mut self, _event: &TaskCompleted, ctx: &EventContext<'_>) {
        if let Some(task) = self.tasks.iter_mut().find(|t| t.id == ctx.aggregate_id()) {
            task.status = "completed";
        }
    }

    #[handles]
    async fn reassigned(&mut self, event: &TaskReassigned, ctx: &EventContext<'_>) {
        if let Some(task) = self.tasks.iter_mut().find(|t| t.id == ctx.aggregate_id()) {
            task.assigned_to = Some(event.new_assignee);
        }
    }

    #[reset]
    async fn truncate_read_models(&mut self) {
        self.tasks.clear();
    }
}

impl TaskListProjection {
    fn get_pending_tasks(&self) -> Vec<&TaskRow> {
        self.tasks
            .iter()
            .filter(|t| t.status == "pending")
            .collect()
    }

    fn get_tasks_for_user(&self, user_id: Uuid) -> Vec<&TaskRow> {
        self.tasks
            .iter()
            .filter(|t| t.assigned_to == Some(user_id))
            .collect()
    }
}

/// Prints rows as the seed's `print(list)` does.
fn rows(tasks: &[&TaskRow]) -> String {
    let rows: Vec<String> = tasks.iter().map(ToString::to_string).collect();
    format!("[{}]", rows.join(", "))
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

    // Step 8: an event bus and a SubscriptionManager feed the projection: it catches up
    // on the history, then goes live.
    let event_bus = Arc::new(InMemoryEventBus::new());
    let checkpoint_repo = Arc::new(InMemoryCheckpointStore::new());
    let repo = AggregateRepository::<TaskState>::new(event_store.clone())
        .with_publisher(event_bus.clone());
    let manager = SubscriptionManager::new(event_store.clone(), event_bus, checkpoint_repo);
    let config = SubscriptionConfig::new().start_from(StartFrom::Beginning);
    let projection = manager
        .subscribe(TaskListProjection::default(), config, "TaskList")
        .await?;
    manager.start().await?;

    // Now when you save an aggregate, events flow to the projection.
    let mut task = repo.create_new(Uuid::new_v4());
    task.create("New task", "Description", None)?;
    let saved = repo.save(&mut task).await?;
    // Wait until the projection has handled it (the seed prints at once and may miss it).
    projection
        .wait_for(saved.global_position, Duration::from_secs(5))
        .await?;
    // The projection has both historical and new events.
    let list = projection.projection().lock().await;
    writeln!(out, "{}", rows(&list.get_pending_tasks()))?;
    writeln!(
        out,
        "Tasks for the new assignee: {}",
        rows(&list.get_tasks_for_user(new_assignee))
    )?;
    drop(list);
    // When done, stop gracefully.
    manager.stop().await;
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
[{'id': UUID('[UUID]'), 'title': 'New task', 'status': 'pending', 'assigned_to': None}]
Tasks for the new assignee: [{'id': UUID('[UUID]'), 'title': 'Implement event sourcing', 'status': 'completed', 'assigned_to': UUID('[UUID]')}]
"
        );
    }
}
