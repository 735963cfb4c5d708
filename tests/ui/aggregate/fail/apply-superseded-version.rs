use eventsource::{aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", aggregate = "Book", version = 1)]
struct BookAddedV1 {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", aggregate = "Book", version = 2, previous = BookAddedV1)]
struct BookAdded {
    title: String,
}

impl From<BookAddedV1> for BookAdded {
    fn from(v1: BookAddedV1) -> Self {
        BookAdded { title: v1.title }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Shelf {
    titles: Vec<String>,
}

#[aggregate(name = "Book")]
impl Shelf {
    // Stored v1 rows read back as BookAdded: this would never run.
    #[apply]
    fn added_v1(&mut self, e: &BookAddedV1) {
        self.titles.push(e.title.clone());
    }
}

fn main() {}
