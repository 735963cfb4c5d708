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

struct NotAnEvent;

#[projection]
impl TaskList {
    #[handles]
    async fn created(&mut self, e: &Created) {
        self.titles.push(e.title.clone());
    }

    #[handles]
    async fn other(&mut self, _e: &NotAnEvent) {}
}

fn main() {}
