use eventsource::{projection, DomainEvent, EventContext};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Created {
    title: String,
}

#[derive(Debug, Default)]
struct TaskList {
    titles: Vec<String>,
}

use eventsource::BoxError;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Completed {}

#[projection(name = "tasks")]
impl TaskList {
    #[handles]
    async fn created(&mut self, e: &Created, ctx: &EventContext<'_>) -> Result<(), BoxError> {
        self.titles.push(format!("{} at {}", e.title, ctx.global_position()));
        Ok(())
    }

    #[handles]
    async fn completed(&mut self, _e: &Completed) -> Result<(), std::io::Error> {
        Ok(())
    }

    #[reset]
    async fn clear(&mut self) {
        self.titles.clear();
    }

    /// Queries stay ordinary methods.
    pub fn count(&self) -> usize {
        self.titles.len()
    }
}

fn _is_projection<P: eventsource::Projection>(_: &P) {}
fn _check(list: &TaskList) -> usize {
    _is_projection(list);
    list.count()
}

fn main() {}
