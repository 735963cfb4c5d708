//! The seeds' "Dead Letter Queue Usage": record a failed event, list failures, read the
//! statistics, resolve.
//!
//! Run with: `cargo run --example dlq_usage`

use std::error::Error;
use std::io::Write;
use std::path::Path;

use eventsource::{DeadLetterStatus, DeadLetterStore, FailedEvent, SqliteEventStore};
use uuid::Uuid;

async fn run(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;

    // Simulate a failed event
    let event_id = Uuid::new_v4();
    let failure: Result<(), String> = Err("Processing failed: invalid data format".into());
    if let Err(error) = failure {
        store
            .add_failed_event(FailedEvent {
                event_id,
                projection_name: "OrderProjection".into(),
                event_type: "OrderCreated".into(),
                global_position: 0,
                event_data: serde_json::json!({"order_id": Uuid::new_v4().to_string(), "total": 99.99}),
                error,
                retry_count: 1,
            })
            .await?;
        writeln!(out, "Added to DLQ: {event_id}")?;
    }

    // View failed events
    let failed_events = store
        .get_failed_events(Some("OrderProjection"), Some(DeadLetterStatus::Failed), 10)
        .await?;
    writeln!(out, "\nFailed events: {}", failed_events.len())?;
    for entry in &failed_events {
        writeln!(out, " - Event: {}", entry.failed.event_type)?;
        writeln!(out, "   Error: {}", entry.failed.error)?;
        writeln!(out, "   Retry count: {}", entry.failed.retry_count)?;
    }

    // Get statistics
    let stats = store.get_statistics().await?;
    writeln!(
        out,
        "\nDLQ Statistics: total {}, failed {}, resolved {}, by projection {:?}",
        stats.total, stats.failed, stats.resolved, stats.failed_by_projection
    )?;

    // Mark as resolved after fixing
    if let Some(first) = failed_events.first() {
        store
            .mark_resolved(first.id, "Fixed data issue manually")
            .await?;
        writeln!(out, "Marked as resolved")?;
    }
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("eventsource-dlq-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir.join("app.db"), &mut std::io::stdout()).await;
    std::fs::remove_dir_all(&dir)?;
    result
}

#[cfg(test)]
mod tests {
    use eventsource_tests::example_support::mask_uuids;

    /// The example's event types match its lock (`examples/locks/dlq_usage.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "dlq_usage",
            env!("CARGO_CRATE_NAME"),
        );
    }

    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir = eventsource_tests::example_support::TempDir::new();
        let mut out = Vec::new();
        super::run(&dir.file("app.db"), &mut out).await.unwrap();
        assert_eq!(
            mask_uuids(&String::from_utf8(out).unwrap()),
            "Added to DLQ: [UUID]

Failed events: 1
 - Event: OrderCreated
   Error: Processing failed: invalid data format
   Retry count: 1

DLQ Statistics: total 1, failed 1, resolved 0, by projection {\"OrderProjection\": 1}
Marked as resolved
"
        );
    }
}
