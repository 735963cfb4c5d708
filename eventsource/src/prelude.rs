//! The names most programs need: `use eventsource::prelude::*;`.
//!
//! Stores, aggregates and commands, projections and their subscriptions, snapshots, the
//! bus and the outbox relay; the error types stay under their paths
//! (`eventsource::Error`, `eventsource::Result`) so as not to shadow `std`'s.

#[cfg(feature = "macros")]
pub use crate::{aggregate, projection, DomainEvent};
pub use crate::{
    Aggregate, AggregateRepository, AggregateRoot, AppendResult, BusOutboxPublisher,
    CheckpointStore, CommandError, DeadLetterStore, Decision, EventBus, EventContext,
    EventEnvelope, EventRegistry, EventStore, EventStream, ExpectedVersion, GetEventsOptions,
    InMemoryCheckpointStore, InMemoryDeadLetterStore, InMemoryEventBus, InMemoryEventStore,
    InMemorySnapshotStore, NewEvent, OutboxRelay, Projection, RawEvent, ReadDirection, ReadOptions,
    RetryPolicy, SnapshotStrategy, StartFrom, StoredEvent, StreamId, SubscriptionConfig,
    SubscriptionManager,
};
#[cfg(feature = "postgres")]
pub use crate::{PostgresEventStore, PostgresStoreOptions};
#[cfg(feature = "sqlite")]
pub use crate::{SqliteEventStore, SqliteStoreOptions};
pub use futures::StreamExt as _;
