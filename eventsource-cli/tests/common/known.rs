//! The known database the CLI tests read: five events in two streams, a checkpoint, a
//! dead letter and outbox entries in each state.

use std::path::Path;

use eventsource::prelude::*;
use eventsource::{CheckpointStore, DeadLetterStore, FailedEvent, OutboxStore};
use serde_json::json;
use uuid::Uuid;

pub(crate) const ORDER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);
pub(crate) const CUSTOMER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0002);
pub(crate) const CORRELATION: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_00c0);

/// A store of five events in two streams (an order placed, paid and shipped by a chain
/// of causes in one correlation; a customer registered and renamed), a checkpoint, a
/// dead letter and outbox entries.
pub(crate) async fn known_store(path: &Path) -> SqliteEventStore {
    let store = SqliteEventStore::options(path)
        .outbox(true)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let at = |s: u32| {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-01-31T12:00:{s:02}Z"))
            .unwrap()
            .to_utc()
    };
    let placed = NewEvent::raw("OrderPlaced", 1, json!({ "total": 50.0 }))
        .with_timestamp(at(1))
        .with_correlation_id(CORRELATION);
    let paid = NewEvent::raw("OrderPaid", 1, json!({ "amount": 50.0 }))
        .with_timestamp(at(2))
        .with_correlation_id(CORRELATION)
        .with_causation_id(placed.event_id());
    let shipped = NewEvent::raw("OrderShipped", 2, json!({ "carrier": "post" }))
        .with_timestamp(at(4))
        .with_correlation_id(CORRELATION)
        .with_causation_id(paid.event_id());
    store
        .append_events(
            ORDER,
            "Order",
            vec![placed, paid],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let tenant = Uuid::from_u128(7);
    store
        .append_events(
            CUSTOMER,
            "Customer",
            vec![
                NewEvent::raw("CustomerRegistered", 1, json!({ "name": "Ada" }))
                    .with_timestamp(at(3))
                    .with_tenant_id(tenant)
                    .with_correlation_id(CORRELATION)
                    .with_causation_id(Uuid::from_u128(99)),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store
        .append_events(ORDER, "Order", vec![shipped], ExpectedVersion::Exact(2))
        .await
        .unwrap();
    store
        .append_events(
            CUSTOMER,
            "Customer",
            vec![
                NewEvent::raw("CustomerRenamed", 1, json!({ "name": "Ada L." }))
                    .with_timestamp(at(5)),
            ],
            ExpectedVersion::Exact(1),
        )
        .await
        .unwrap();
    store.save_progress("order-list", 3, None, 3).await.unwrap();
    let paid = {
        use futures::StreamExt;
        let events: Vec<StoredEvent> = store
            .read_all(ReadOptions::new().event_types(["OrderPaid"]))
            .map(Result::unwrap)
            .collect()
            .await;
        events.into_iter().next().unwrap()
    };
    store
        .add_failed_event(FailedEvent::for_event(
            "order-list",
            &paid,
            "boom: no such customer",
            3,
        ))
        .await
        .unwrap();
    let entries = store.get_pending_events(10).await.unwrap();
    store.mark_published(entries[0].id).await.unwrap();
    store.mark_failed(entries[1].id).await.unwrap();
    store
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
