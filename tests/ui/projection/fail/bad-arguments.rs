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

#[projection(name = "", colour = "blue")]
impl TaskList {
    #[handles]
    async fn created(&mut self, e: &Created) {
        self.titles.push(e.title.clone());
    }
}

fn main() {}
