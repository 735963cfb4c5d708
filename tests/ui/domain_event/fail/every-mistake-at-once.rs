use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "", version = 0, colour = "blue", aggregate = 1)]
struct Created {}

fn main() {}
