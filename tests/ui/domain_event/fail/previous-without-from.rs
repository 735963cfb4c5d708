use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", version = 1)]
struct BookAddedV1 {
    title: String,
}

// No `From<BookAddedV1> for BookAdded`: the missing hop does not compile.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", version = 2, previous = BookAddedV1)]
struct BookAdded {
    title: String,
    isbn: String,
}

fn main() {}
