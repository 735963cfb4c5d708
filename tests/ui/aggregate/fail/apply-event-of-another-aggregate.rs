use eventsource::{aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Book")]
struct BookAdded {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Member")]
struct MemberJoined {
    name: String,
}

#[derive(Debug, Default)]
struct Book {
    title: String,
}

#[aggregate(name = "Book")]
impl Book {
    #[apply]
    fn added(&mut self, e: &BookAdded) {
        self.title = e.title.clone();
    }

    #[apply]
    fn joined(&mut self, _e: &MemberJoined) {}
}

fn main() {}
