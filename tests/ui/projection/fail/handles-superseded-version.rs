use eventsource::{projection, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", version = 1)]
struct BookAddedV1 {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", version = 2, previous = BookAddedV1)]
struct BookAdded {
    title: String,
}

impl From<BookAddedV1> for BookAdded {
    fn from(v1: BookAddedV1) -> Self {
        BookAdded { title: v1.title }
    }
}

#[derive(Debug, Default)]
struct Titles(Vec<String>);

#[projection]
impl Titles {
    #[handles]
    async fn added_v1(&mut self, e: &BookAddedV1) {
        self.0.push(e.title.clone());
    }
}

fn main() {}
