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
    store
        .append_events(
            Uuid::new_v4(),
            "Order",
            vec![event],
            ExpectedVersion::NoStream,
        )
        .await?;
    for entry in store.get_pending_events(10).await? {
        writeln!(out, "Added to outbox: {}", entry.id)?;
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

    // The same with the relay, which keeps order and retries with backoff.
    let broker = Arc::new(PrintingBroker::default());
    add_to_outbox(&store, out).await?;
    let round = OutboxRelay::new(Arc::new(store.clone()), broker.clone())
        .run_once()
        .await?;
    writeln!(out, "Relay published {} entries:", round.published)?;
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
    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir =
            std::env::temp_dir().join(format!("eventsource-example-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = Vec::new();
        super::run(&dir.join("app.db"), &mut out).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Added to outbox: 1
Publishing event OrderPlaced
Marked as published: 1
No pending events
Added to outbox: 2
Relay published 1 entries:
  OrderPlaced {\"customer_email\":\"customer@example.com\",\"total\":149.99}
"
        );
    }
}
