//! The seeds' "SQLite Usage Examples: Basic Event Store Usage", on a SQLite file.
//!
//! Run with: `cargo run --example basic_usage [DATABASE_FILE]`
//! (default: a fresh `orders.db` in the system temp directory).

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

use eventsource::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// Define your events
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "OrderCreated", aggregate = "Order")]
struct OrderCreated {
    customer_id: String,
    total_amount: f64,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "OrderShipped", aggregate = "Order")]
#[allow(dead_code)] // declared, as in the seed, but this walk-through never ships
struct OrderShipped {
    tracking_number: String,
}

/// Creating and using the store.
async fn create_and_use(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    // Create and initialize the store
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;
    let order_id = Uuid::new_v4();

    // Append events
    let result = store
        .append_events(
            order_id,
            "Order",
            vec![NewEvent::new(OrderCreated {
                customer_id: "cust-123".into(),
                total_amount: 99.99,
            })],
            ExpectedVersion::NoStream, // New aggregate
        )
        .await;
    // A conflict or a failure is the `Err`: success is the `Ok`.
    writeln!(out, "Success: {}", result.is_ok())?;
    let result = result?;
    writeln!(out, "New version: {}", result.new_version)?;
    writeln!(out, "Global position: {}", result.global_position)?;

    // Retrieve events
    let stream = store
        .get_events(order_id, "Order", GetEventsOptions::default())
        .await?;
    writeln!(out, "Events in stream: {}", stream.events.len())?;
    writeln!(out, "Current version: {}", stream.version)?;
    for event in &stream.events {
        writeln!(out, " - {}: {}", event.event_type(), event.event_id())?;
    }

    store.close().await;
    Ok(())
}

/// Reading all events (for projections), after reopening the file.
async fn rebuild_projection(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;
    // Read all events in global order
    let mut events = store.read_all(ReadOptions::new());
    while let Some(stored_event) = events.next().await {
        let stored_event = stored_event?;
        writeln!(
            out,
            "Position {}: {}",
            stored_event.global_position,
            stored_event.event_type()
        )?;
        // Process for your projection: the payload is the Rust type again.
        if let Some(created) = stored_event.downcast_ref::<OrderCreated>() {
            assert_eq!(
                (created.customer_id.as_str(), created.total_amount),
                ("cust-123", 99.99)
            );
        }
    }
    store.close().await;
    Ok(())
}

/// Streaming from a specific position, in batches.
async fn catch_up_from_position(
    db: &Path,
    last_position: u64,
    out: &mut dyn Write,
) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;
    let options = ReadOptions {
        from_position: last_position,
        direction: ReadDirection::Forward,
        limit: Some(100), // Process in batches
        ..ReadOptions::default()
    };
    let mut events = store.read_all(options);
    while let Some(stored_event) = events.next().await {
        writeln!(
            out,
            "Processing event at position {}",
            stored_event?.global_position
        )?;
    }
    store.close().await;
    Ok(())
}

async fn run(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    create_and_use(db, out).await?;
    writeln!(out)?;
    rebuild_projection(db, out).await?;
    writeln!(out)?;
    catch_up_from_position(db, 1000, out).await?;
    Ok(())
}

fn database_path() -> PathBuf {
    match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let path = std::env::temp_dir()
                .join("eventsource-examples")
                .join("orders.db");
            // A fresh file each run, so the output is always the one below.
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
            path
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let db = database_path();
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    run(&db, &mut std::io::stdout()).await?;
    eprintln!("(database: {})", db.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use eventsource_tests::example_support::mask_uuids;

    /// The example's event types match its lock (`examples/locks/basic_usage.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "basic_usage",
            env!("CARGO_CRATE_NAME"),
        );
    }

    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir = eventsource_tests::example_support::TempDir::new();
        let mut out = Vec::new();
        super::run(&dir.file("orders.db"), &mut out).await.unwrap();
        assert_eq!(
            mask_uuids(&String::from_utf8(out).unwrap()),
            "Success: true
New version: 1
Global position: 1
Events in stream: 1
Current version: 1
 - OrderCreated: [UUID]

Position 1: OrderCreated

"
        );
    }
}
