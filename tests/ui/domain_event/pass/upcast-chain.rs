use eventsource::{aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", aggregate = "Book", version = 1)]
struct BookAddedV1 {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", aggregate = "Book", version = 2, previous = BookAddedV1, upcast = "try_from")]
struct BookAdded {
    title: String,
}

impl TryFrom<BookAddedV1> for BookAdded {
    type Error = &'static str;

    fn try_from(v1: BookAddedV1) -> Result<Self, Self::Error> {
        Ok(BookAdded { title: v1.title })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Shelf {
    titles: Vec<String>,
}

#[aggregate(name = "Book")]
impl Shelf {
    #[apply]
    fn added(&mut self, e: &BookAdded) {
        self.titles.push(e.title.clone());
    }
}

fn main() {}
