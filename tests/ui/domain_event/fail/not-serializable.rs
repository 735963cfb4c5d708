use eventsource::DomainEvent;
use serde::Deserialize;

#[derive(Debug, Deserialize, DomainEvent)]
struct Created {
    id: u32,
}

fn main() {}
