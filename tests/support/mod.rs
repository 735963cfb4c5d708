//! Shared fixtures of the integration tests: temp dirs, sample events and store fixtures
//! (the store conformance suite is the test kit's, `eventsource::conformance_suite!`).
#![allow(dead_code, unreachable_pub)]

pub mod bank;
pub mod exactly_once;
pub mod hostile;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::SqliteEventStore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A directory under the system temp dir, removed on drop.
pub use eventsource_tests::example_support::TempDir;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
pub struct TaskCreated {
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
pub struct TaskCompleted {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Task")]
pub struct TaskReassigned {
    pub new_assignee: Uuid,
}

/// An event whose `Serialize` always fails: for atomicity tests.
/// An event declared for no aggregate type: it may be appended to any stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
pub struct Noted {
    pub text: String,
}

/// A `Noted` event.
pub fn noted(text: &str) -> NewEvent {
    NewEvent::new(Noted { text: text.into() })
}

#[derive(Debug, Clone, PartialEq, Deserialize, DomainEvent)]
#[event(name = "Unserializable")]
pub struct Unserializable {}

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this event refuses to serialize"))
    }
}

pub fn created(title: &str) -> NewEvent {
    NewEvent::new(TaskCreated {
        title: title.into(),
    })
}

/// A store under test, with whatever must live as long as it.
pub struct Fixture {
    pub store: Arc<dyn EventStore>,
    pub dir: Option<TempDir>,
}

pub async fn memory_fixture() -> Fixture {
    Fixture {
        store: Arc::new(InMemoryEventStore::new()),
        dir: None,
    }
}

pub async fn sqlite_memory_fixture() -> Fixture {
    let store = SqliteEventStore::open(":memory:")
        .await
        .expect("open :memory:");
    store.initialize().await.expect("initialize");
    Fixture {
        store: Arc::new(store),
        dir: None,
    }
}

pub async fn sqlite_file_fixture() -> Fixture {
    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("events.db"))
        .await
        .expect("open file");
    store.initialize().await.expect("initialize");
    Fixture {
        store: Arc::new(store),
        dir: Some(dir),
    }
}

/// A store in a fresh schema of the test PostgreSQL server, or `None` (said loudly) where
/// there is none.
#[cfg(feature = "postgres")]
pub async fn postgres_fixture() -> Option<Fixture> {
    let server = postgres::server()?;
    Some(Fixture {
        store: Arc::new(server.store().await),
        dir: None,
    })
}

impl eventsource::testing::conformance::ConformanceFixture for Fixture {
    fn store(&self) -> Option<Arc<dyn EventStore>> {
        Some(self.store.clone())
    }
}

/// A store of every backend, for tests that run the same body on each.
pub async fn every_store() -> Vec<(&'static str, Fixture)> {
    #[allow(unused_mut)]
    let mut stores = vec![
        ("memory", memory_fixture().await),
        ("sqlite :memory:", sqlite_memory_fixture().await),
        ("sqlite file", sqlite_file_fixture().await),
    ];
    #[cfg(feature = "postgres")]
    if let Some(fixture) = postgres_fixture().await {
        stores.push(("postgres", fixture));
    }
    stores
}

/// Drains a stream of stored events, panicking on an error item.
pub async fn collect(stream: eventsource::StoredEventStream<'_>) -> Vec<StoredEvent> {
    use futures::TryStreamExt;
    stream.try_collect().await.expect("read stream")
}

/// A started [`eventsource::SubscriptionManager`] over `store` (in-memory bus and
/// checkpoints) running `projection` as its one subscription `name`.
pub async fn started_subscription<P: eventsource::Projection>(
    store: Arc<dyn EventStore>,
    projection: P,
    config: eventsource::SubscriptionConfig,
    name: &str,
) -> (
    eventsource::SubscriptionManager,
    eventsource::Subscription<P>,
) {
    let manager = eventsource::SubscriptionManager::new(
        store,
        Arc::new(eventsource::InMemoryEventBus::new()),
        Arc::new(eventsource::InMemoryCheckpointStore::new()),
    );
    let subscription = manager
        .subscribe(projection, config, name)
        .await
        .expect("subscribe");
    manager.start().await.expect("start the manager");
    (manager, subscription)
}

/// An event store with an outbox, as one trait object.
pub trait Both: EventStore + eventsource::OutboxStore {}
impl<T: EventStore + eventsource::OutboxStore> Both for T {}

/// A store with the outbox on, of every backend.
pub async fn stores_with_outbox() -> Vec<(&'static str, Arc<dyn Both>)> {
    let sqlite = SqliteEventStore::options(":memory:")
        .outbox(true)
        .open()
        .await
        .unwrap();
    sqlite.initialize().await.unwrap();
    #[allow(unused_mut)]
    let mut stores: Vec<(&'static str, Arc<dyn Both>)> = vec![
        ("memory", Arc::new(InMemoryEventStore::new().with_outbox())),
        ("sqlite", Arc::new(sqlite)),
    ];
    #[cfg(feature = "postgres")]
    if let Some(server) = postgres::server() {
        let postgres = server.options().outbox(true).connect().await.unwrap();
        postgres.initialize().await.unwrap();
        stores.push(("postgres", Arc::new(postgres)));
    }
    stores
}
