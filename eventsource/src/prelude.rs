//! The names most programs need: `use eventsource::prelude::*;`.

#[cfg(feature = "sqlite")]
pub use crate::SqliteEventStore;
#[cfg(feature = "macros")]
pub use crate::{aggregate, projection, DomainEvent};
pub use crate::{
    Aggregate, AggregateRepository, AggregateRoot, AppendResult, EventContext, EventStore,
    EventStream, ExpectedVersion, GetEventsOptions, InMemoryEventStore, NewEvent, Projection,
    ReadDirection, ReadOptions, StoredEvent, StreamId,
};
pub use futures::StreamExt as _;
