use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

// Per variant needs a tag to tell the variants apart.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[serde(untagged)]
enum Untagged {
    A { x: u8 },
    B { y: u8 },
}

// Two variants stored under one name.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
enum Twice {
    #[event(name = "Same")]
    A { x: u8 },
    #[event(name = "Same")]
    B { y: u8 },
}

// A variant name on an enum stored as one type.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Door")]
#[serde(tag = "kind")]
enum Door {
    #[event(name = "DoorOpened")]
    Opened { by: String },
}

// No upcasting chain for enums stored per variant (yet).
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(version = 2, previous = Old)]
enum New {
    A { x: u8 },
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Old {}

fn main() {}
