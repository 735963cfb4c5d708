use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, DomainEvent)]
struct Created {
    id: u32,
}

fn main() {}
