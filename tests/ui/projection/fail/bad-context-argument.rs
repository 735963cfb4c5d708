use eventsource::{projection, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Created {
    title: String,
}

#[derive(Debug, Default)]
struct TaskList {
    titles: Vec<String>,
}

#[projection]
impl TaskList {
    #[handles]
    async fn created(&mut self, e: &Created, position: u64) {
        self.titles.push(format!("{} {position}", e.title));
    }
}

fn main() {}
