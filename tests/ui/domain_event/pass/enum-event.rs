use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "type")]
#[event(aggregate = "Light")]
enum LightEvent {
    On { brightness: u8 },
    Off,
}

fn main() {}
