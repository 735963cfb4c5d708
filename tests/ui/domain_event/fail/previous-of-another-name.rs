use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookCreated", version = 1)]
struct BookCreated {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", version = 2, previous = BookCreated)]
struct BookAdded {
    title: String,
}

impl From<BookCreated> for BookAdded {
    fn from(v: BookCreated) -> Self {
        BookAdded { title: v.title }
    }
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Later", version = 3)]
struct LaterV3 {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Later", version = 2, previous = LaterV3)]
struct Later {}

impl From<LaterV3> for Later {
    fn from(_: LaterV3) -> Self {
        Later {}
    }
}


#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "MemberRegistered", version = 1)]
struct MemberRegistered {}

// The old name is misspelt: the previous type is not stored under it.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "MemberJoined", version = 2, previous = MemberRegistered, renamed_from = "MemberRegistred")]
struct MemberJoined {}

impl From<MemberRegistered> for MemberJoined {
    fn from(_: MemberRegistered) -> Self {
        MemberJoined {}
    }
}
fn main() {}
