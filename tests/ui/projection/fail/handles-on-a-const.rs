use eventsource::{projection, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct TaskCreated {
    title: String,
}

#[derive(Debug, Default)]
struct TaskList;

#[projection]
impl TaskList {
    #[handles]
    const LIMIT: usize = 10;
}

fn main() {}
