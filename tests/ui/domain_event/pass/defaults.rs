use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct OrderCreated {
    total: f64,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event()]
struct OrderShipped {}

fn main() {}
