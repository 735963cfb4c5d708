//! The names most programs need: `use eventsource::prelude::*;`.

#[cfg(feature = "macros")]
pub use crate::DomainEvent;
#[cfg(feature = "sqlite")]
pub use crate::SqliteEventStore;
pub use crate::{
    AppendResult, EventStore, EventStream, ExpectedVersion, GetEventsOptions, InMemoryEventStore,
    NewEvent, ReadDirection, ReadOptions, StoredEvent, StreamId,
};
pub use futures::StreamExt as _;
