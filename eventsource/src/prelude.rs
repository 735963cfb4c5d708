//! The names most programs need: `use eventsource::prelude::*;`.

#[cfg(feature = "sqlite")]
pub use crate::SqliteEventStore;
#[cfg(feature = "macros")]
pub use crate::{aggregate, DomainEvent};
pub use crate::{
    Aggregate, AggregateRepository, AggregateRoot, AppendResult, EventStore, EventStream,
    ExpectedVersion, GetEventsOptions, InMemoryEventStore, NewEvent, ReadDirection, ReadOptions,
    StoredEvent, StreamId,
};
pub use futures::StreamExt as _;
