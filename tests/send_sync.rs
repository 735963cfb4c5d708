//! Compile-time checks that stores, and the futures and streams they return, can cross
//! threads and tasks as promised (`Arc<dyn EventStore>` in spawned tasks).

use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::{Error, EventRegistry, SqliteEventStore};

fn send_sync<T: Send + Sync>(_: &T) {}
fn send<T: Send>(_: &T) {}

#[tokio::test]
async fn stores_and_their_futures_are_send_and_sync() {
    let memory = InMemoryEventStore::new();
    let sqlite = SqliteEventStore::open(":memory:").await.unwrap();
    send_sync(&memory);
    send_sync(&sqlite);
    send_sync(&EventRegistry::global());
    let dynamic: Arc<dyn EventStore> = Arc::new(sqlite);
    let future = dynamic.get_stream_version(uuid::Uuid::new_v4(), "Task");
    send(&future);
    // Not initialized: no schema yet, a typed error rather than a panic.
    assert!(matches!(
        future.await,
        Err(Error::SchemaNotInitialized { .. })
    ));
    let stream = dynamic.read_all(ReadOptions::new());
    send(&stream);
    let items: Vec<_> = stream.collect().await;
    assert!(matches!(
        items.as_slice(),
        [Err(Error::SchemaNotInitialized { .. })]
    ));
    let spawned = tokio::spawn(async move { dynamic.get_global_position().await.is_err() });
    assert!(spawned.await.unwrap());
}
