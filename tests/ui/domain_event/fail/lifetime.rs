use eventsource::DomainEvent;
use serde::Serialize;

#[derive(Debug, Serialize, DomainEvent)]
struct Borrowed<'a> {
    name: &'a str,
}

fn main() {}
