use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "A", version = 1)]
struct AV1 {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "A", previous = AV1)]
struct NoVersion {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "A", version = 1, previous = AV1)]
struct VersionOne {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "A", version = 2, upcast = "try_from")]
struct UpcastWithoutPrevious {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "A", version = 2, previous = "AV1", upcast = "convert")]
struct BadValues {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "B", version = 2, renamed_from = "A")]
struct RenamedWithoutPrevious {}

fn main() {}
