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

// The previous version of an enum stored per variant is an enum stored per variant.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(version = 2, previous = Old)]
enum New {
    A { x: u8 },
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Old {}

impl From<Old> for New {
    fn from(_: Old) -> Self {
        New::A { x: 0 }
    }
}

// A variant of the previous version that this one drops.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
enum LightV1 {
    On {},
    Off {},
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(version = 2, previous = LightV1)]
enum Light {
    On { level: u8 },
}

impl From<LightV1> for Light {
    fn from(_: LightV1) -> Self {
        Light::On { level: 1 }
    }
}

// Variants keep their names across versions.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(version = 2, previous = LightV1, renamed_from = "Lamp")]
enum Lamp {
    On {},
    Off {},
}

fn main() {}
