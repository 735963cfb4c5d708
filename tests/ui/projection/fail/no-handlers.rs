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
    fn count(&self) -> usize {
        self.titles.len()
    }
}

fn main() {}
