use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookCreated", version = 1)]
struct BookCreated {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", version = 2, previous = BookCreated)]
struct BookAdded {
    title: String,
}

impl From<BookCreated> for BookAdded {
    fn from(v: BookCreated) -> Self {
        BookAdded { title: v.title }
    }
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Later", version = 3)]
struct LaterV3 {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Later", version = 2, previous = LaterV3)]
struct Later {}

impl From<LaterV3> for Later {
    fn from(_: LaterV3) -> Self {
        Later {}
    }
}

fn main() {}
