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

trait Handler {
    fn created(&mut self, e: &Created);
}

#[projection]
impl Handler for TaskList {
    #[handles]
    fn created(&mut self, e: &Created) {
        self.titles.push(e.title.clone());
    }
}

fn main() {}
