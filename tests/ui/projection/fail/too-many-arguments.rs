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

#[projection]
impl TaskList {
    #[handles]
    async fn created(&mut self, e: &Created, ctx: &EventContext<'_>, extra: u8) {
        let _ = (e, ctx, extra);
    }
}

fn main() {}
