use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "order.created", aggregate = "Order", version = 7)]
struct OrderCreated {
    total: f64,
}

const _: () = assert!(OrderCreated::VERSION == 7);

fn main() {}
