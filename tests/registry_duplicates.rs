//! Two Rust types claiming one event name and version: a clear error at first use that
//! names both types. (Its own test binary, so the clash stays out of the other tests'
//! global registry.)

use eventsource::prelude::*;
use eventsource::{Error, EventRegistry};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod orders {
    #[derive(Debug, serde::Serialize, serde::Deserialize, eventsource::DomainEvent)]
    #[event(name = "OrderPlaced", version = 1)]
    pub(crate) struct OrderPlaced {
        pub(crate) total: f64,
    }
}

mod legacy {
    #[derive(Debug, serde::Serialize, serde::Deserialize, eventsource::DomainEvent)]
    #[event(name = "OrderPlaced")]
    pub(crate) struct OrderPlaced {
        pub(crate) amount: i64,
    }
}

/// Same name, another version: no clash.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "OrderPlaced", version = 2)]
struct OrderPlacedV2 {
    total_cents: i64,
}

#[test]
fn validate_names_both_types() {
    let error = EventRegistry::global().validate().unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("`registry_duplicates::legacy::OrderPlaced`"),
        "{message}"
    );
    assert!(
        message.contains("`registry_duplicates::orders::OrderPlaced`"),
        "{message}"
    );
    assert!(message.contains("OrderPlaced` version 1"), "{message}");
    assert!(EventRegistry::global().is_registered("OrderPlaced", 2));
}

#[test]
fn explicit_registration_refuses_a_second_type() {
    let registry = EventRegistry::new();
    registry.register::<orders::OrderPlaced>().unwrap();
    registry.register::<OrderPlacedV2>().unwrap();
    match registry.register::<legacy::OrderPlaced>() {
        Err(Error::DuplicateEventType {
            name,
            version,
            first,
            second,
        }) => {
            assert_eq!((name.as_str(), version), ("OrderPlaced", 1));
            let both = [first, second];
            assert!(
                both.iter().any(|t| t.ends_with("legacy::OrderPlaced")),
                "{both:?}"
            );
            assert!(
                both.iter().any(|t| t.ends_with("orders::OrderPlaced")),
                "{both:?}"
            );
        }
        other => panic!("expected a duplicate error, got {other:?}"),
    }
    assert!(
        !registry.is_registered("OrderPlaced", 1),
        "an ambiguous name decodes to nothing"
    );
    assert!(registry.is_registered("OrderPlaced", 2));
}

#[tokio::test]
async fn every_store_refuses_to_append_an_ambiguous_event_type() {
    let memory = InMemoryEventStore::new();
    let sqlite = eventsource::SqliteEventStore::open(":memory:")
        .await
        .unwrap();
    sqlite.initialize().await.unwrap();
    let stores: [&dyn EventStore; 2] = [&memory, &sqlite];
    for store in stores {
        let id = Uuid::new_v4();
        for event in [
            // Typed: stored, it would fail every later read of the stream.
            NewEvent::new(orders::OrderPlaced { total: 1.0 }),
            // Raw: cannot be resolved to one of the two types.
            NewEvent::raw("OrderPlaced", 1, serde_json::json!({"total": 1.0})),
        ] {
            let result = store
                .append_events(id, "Order", vec![event], ExpectedVersion::NoStream)
                .await;
            assert!(
                matches!(result, Err(Error::DuplicateEventType { .. })),
                "{store:?}: {result:?}"
            );
        }
        assert_eq!(store.get_global_position().await.unwrap(), 0);
        // Another version of the name is not ambiguous.
        store
            .append_events(
                id,
                "Order",
                vec![NewEvent::new(OrderPlacedV2 { total_cents: 1 })],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn reading_an_ambiguous_event_fails_instead_of_guessing() {
    let sqlite = eventsource::SqliteEventStore::open(":memory:")
        .await
        .unwrap();
    sqlite.initialize().await.unwrap();
    let id = Uuid::new_v4();
    // Written by another tool: the row is there, and reading it names both types.
    sqlx::query(
        "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, timestamp, payload, event_version) \
         VALUES (?, ?, 'Order', 'OrderPlaced', 1, '2024-01-02T03:04:05+00:00', '{\"total\": 1.0}', 1)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(id.to_string())
    .execute(sqlite.pool())
    .await
    .unwrap();
    let result = sqlite
        .get_events(id, "Order", GetEventsOptions::default())
        .await;
    assert!(
        matches!(result, Err(Error::DuplicateEventType { .. })),
        "{result:?}"
    );
    let _ = (
        legacy::OrderPlaced { amount: 1 }.amount,
        OrderPlacedV2 { total_cents: 1 }.total_cents,
    );
}
