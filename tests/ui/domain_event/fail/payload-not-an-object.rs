use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

// Stored as `null`.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Marker;

// Stored as an array.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Pair(u32, String);

// Stored per variant: a tuple variant's payload is an array.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
enum Moves {
    To(i32, i32),
    Stop,
}

// Stored as one type: under serde's default tagging the unit variant is a bare string.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Light")]
enum Light {
    On { brightness: u8 },
    Off,
}

fn main() {}
