use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

mod reexport {
    pub use eventsource as es;
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(crate = "crate::reexport::es")]
struct Renamed {
    id: u32,
}

fn main() {}
