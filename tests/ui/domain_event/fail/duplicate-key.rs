use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Created")]
#[event(name = "Made")]
struct Created {}

fn main() {}
