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
async fn reading_an_ambiguous_event_fails_instead_of_guessing() {
    let store = InMemoryEventStore::new();
    let id = Uuid::new_v4();
    // A raw event cannot be resolved to one of two types.
    let result = store
        .append_events(
            id,
            "Order",
            vec![NewEvent::raw(
                "OrderPlaced",
                1,
                serde_json::json!({"total": 1.0}),
            )],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(
        matches!(result, Err(Error::DuplicateEventType { .. })),
        "{result:?}"
    );

    let sqlite = eventsource::SqliteEventStore::open(":memory:")
        .await
        .unwrap();
    sqlite.initialize().await.unwrap();
    sqlite
        .append_events(
            id,
            "Order",
            vec![NewEvent::new(orders::OrderPlaced { total: 1.0 })],
            ExpectedVersion::NoStream,
        )
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
