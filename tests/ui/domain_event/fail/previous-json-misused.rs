use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

fn wrong_signature(old: String) -> String {
    old
}

// The upcaster takes and returns JSON.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Loaned", version = 2, previous_json = wrong_signature)]
struct Loaned {
    member: String,
}

fn upcast(old: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(old)
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Old", version = 1)]
struct Old {}

// Either a type or a function for the previous version, and not on version 1.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Old", version = 2, previous = Old, previous_json = upcast)]
struct Both {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "First", previous_json = upcast)]
struct First {}

fn main() {}
