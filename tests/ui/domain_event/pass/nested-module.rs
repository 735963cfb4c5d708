use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

mod a {
    pub mod b {
        use super::super::*;

        #[derive(Debug, Serialize, Deserialize, DomainEvent)]
        pub struct Deep {
            pub depth: u32,
        }
    }
}

const _: &str = <a::b::Deep as eventsource::DomainEvent>::EVENT_TYPE;

fn main() {}
