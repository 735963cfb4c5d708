//! The seeds' "Checkpoint Repository Usage": a projection's checkpoint in the SQLite
//! store's `projection_checkpoints` table, and its lag.
//!
//! Run with: `cargo run --example checkpoint_usage`

use std::error::Error;
use std::io::Write;
use std::path::Path;

use eventsource::prelude::*;
use eventsource::{lag_metrics, CheckpointStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
struct OrderCreated {
    total: f64,
}

async fn run(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    // One store: events and checkpoints share the database (and its connections).
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;
    let projection_name = "OrderSummaryProjection";

    // Get last checkpoint (None if first run)
    let last_checkpoint = store.get_position(projection_name).await?;
    writeln!(out, "Last checkpoint: {last_checkpoint:?}")?;

    // Process some events...
    let result = store
        .append_events(
            Uuid::new_v4(),
            "Order",
            vec![
                NewEvent::new(OrderCreated { total: 10.0 }),
                NewEvent::new(OrderCreated { total: 20.0 }),
            ],
            ExpectedVersion::NoStream,
        )
        .await?;
    let first = store
        .get_events_by_type("Order", None, None)
        .await?
        .remove(0);

    // Update checkpoint after processing the first one
    store
        .save_position(
            projection_name,
            first.global_position,
            first.event_id(),
            first.event_type(),
        )
        .await?;
    writeln!(out, "Updated checkpoint to: {}", first.event_id())?;

    // Get lag metrics
    if let Some(metrics) =
        lag_metrics(&store, &store, projection_name, Some(&["OrderCreated"])).await?
    {
        writeln!(out, "Events processed: {}", metrics.events_processed)?;
        writeln!(out, "Events behind: {}", metrics.events_behind)?;
        writeln!(out, "Lag seconds: {}", metrics.lag_seconds)?;
    }
    let checkpoint = store.get_checkpoint(projection_name).await?;
    writeln!(
        out,
        "Resume from position: {} (head {})",
        checkpoint.map_or(0, |c| c.global_position) + 1,
        result.global_position
    )?;
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("eventsource-checkpoints-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir.join("app.db"), &mut std::io::stdout()).await;
    std::fs::remove_dir_all(&dir)?;
    result
}

#[cfg(test)]
mod tests {
    use eventsource_tests::example_support::mask_uuids;

    /// The example's event types match its lock (`examples/locks/checkpoint_usage.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "checkpoint_usage",
            env!("CARGO_CRATE_NAME"),
        );
    }

    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir = eventsource_tests::example_support::TempDir::new();
        let mut out = Vec::new();
        super::run(&dir.file("app.db"), &mut out).await.unwrap();
        let text = mask_uuids(&String::from_utf8(out).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "Last checkpoint: None",
                "Updated checkpoint to: [UUID]",
                "Events processed: 1",
                "Events behind: 1"
            ]
        );
        assert!(lines[4].starts_with("Lag seconds: "), "{text}");
        assert_eq!(lines[5], "Resume from position: 2 (head 2)");
    }
}
