//! The seeds' "Outbox Repository Usage": events go into the outbox in the same
//! transaction as the append, and a worker publishes pending entries and marks them.
//!
//! Run with: `cargo run --example outbox_usage`

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use eventsource::prelude::*;
use eventsource::{BoxError, OutboxEntry, OutboxPublisher, OutboxRelay, OutboxStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
struct OrderPlaced {
    customer_email: String,
    total: f64,
}

/// Adds events to the outbox within the append's transaction.
async fn add_to_outbox(
    store: &SqliteEventStore,
    out: &mut dyn Write,
) -> Result<(), Box<dyn Error>> {
    let event = NewEvent::new(OrderPlaced {
        customer_email: "customer@example.com".into(),
        total: 149.99,
    });
    let event_id = event.event_id();
    store
        .append_events(
            Uuid::new_v4(),
            "Order",
            vec![event],
            ExpectedVersion::NoStream,
        )
        .await?;
    for entry in store.get_entries(None, 100).await? {
        if entry.event_id == event_id {
            writeln!(out, "Added to outbox: {}", entry.id)?;
        }
    }
    Ok(())
}

/// Worker that publishes pending outbox events (by hand, as the seed does).
async fn publish_outbox_events(
    store: &SqliteEventStore,
    out: &mut dyn Write,
) -> Result<(), Box<dyn Error>> {
    let pending = store.get_pending_events(10).await?;
    if pending.is_empty() {
        writeln!(out, "No pending events")?;
        return Ok(());
    }
    for entry in pending {
        // Simulate publishing to message bus
        writeln!(out, "Publishing event {}", entry.event_type)?;
        let published: Result<(), Box<dyn Error>> = Ok(());
        match published {
            Ok(()) => {
                store.mark_published(entry.id).await?;
                writeln!(out, "Marked as published: {}", entry.id)?;
            }
            Err(e) => {
                // Increment retry count on failure
                store.increment_retry(entry.id, &e.to_string()).await?;
                writeln!(out, "Failed to publish: {e}")?;
            }
        }
    }
    Ok(())
}

/// A broker stand-in that records what it is sent.
#[derive(Debug, Default)]
struct PrintingBroker {
    sent: Mutex<Vec<String>>,
}

#[eventsource::async_trait]
impl OutboxPublisher for PrintingBroker {
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), BoxError> {
        self.sent
            .lock()
            .map_err(|e| e.to_string())?
            .push(format!("{} {}", entry.event_type, entry.event_data));
        Ok(())
    }
}

async fn run(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::options(db).outbox(true).open().await?;
    store.initialize().await?;
    add_to_outbox(&store, out).await?;
    publish_outbox_events(&store, out).await?;
    publish_outbox_events(&store, out).await?;

    // The same with the relay worker, which keeps order and retries with backoff.
    let broker = Arc::new(PrintingBroker::default());
    let relay = OutboxRelay::new(Arc::new(store.clone()), broker.clone())
        .poll_interval(std::time::Duration::from_millis(10))
        .spawn();
    add_to_outbox(&store, out).await?;
    while !store.get_pending_events(1).await?.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    relay.stop().await;
    writeln!(out, "Relay worker published:")?;
    for message in broker.sent.lock().map_err(|e| e.to_string())?.iter() {
        writeln!(out, "  {message}")?;
    }
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("eventsource-outbox-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir.join("app.db"), &mut std::io::stdout()).await;
    std::fs::remove_dir_all(&dir)?;
    result
}

#[cfg(test)]
mod tests {

    /// The example's event types match its lock (`examples/locks/outbox_usage.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "outbox_usage",
            env!("CARGO_CRATE_NAME"),
        );
    }
    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir = eventsource_tests::example_support::TempDir::new();
        let mut out = Vec::new();
        super::run(&dir.file("app.db"), &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Added to outbox: 1
Publishing event OrderPlaced
Marked as published: 1
No pending events
Added to outbox: 2
Relay worker published:
  OrderPlaced {\"customer_email\":\"customer@example.com\",\"total\":149.99}
"
        );
    }
}
