//! The event registry: derive registrations, the explicit fallback, serde attributes,
//! nested modules, enums and the start-up self-check.

mod support;

use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::{EventRegistry, SqliteEventStore};
use serde::{Deserialize, Serialize};
use support::TaskCreated;
use uuid::Uuid;

mod billing {
    pub(crate) mod events {
        use eventsource::DomainEvent;
        use serde::{Deserialize, Serialize};

        /// An event two modules deep: registration works wherever the type lives.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
        #[event(name = "billing.invoice_sent", aggregate = "Invoice", version = 3)]
        pub(crate) struct InvoiceSent {
            pub(crate) number: u32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[serde(rename_all = "camelCase")]
#[event(name = "CustomerRenamed")]
struct CustomerRenamed {
    #[serde(rename = "name")]
    new_name: String,
    #[serde(default)]
    previous_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "kind")]
enum DoorEvent {
    Opened { by: String },
    Closed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
struct UnitLike {}

#[test]
fn derived_types_are_in_the_global_registry() {
    let registry = EventRegistry::global();
    registry.validate().unwrap();
    assert!(registry.is_registered("TaskCreated", 1));
    assert!(!registry.is_registered("TaskCreated", 2));
    assert!(registry.is_registered("billing.invoice_sent", 3));
    // An enum without a `name`: each variant is its own stored type.
    assert!(registry.is_registered("Opened", 1) && registry.is_registered("Closed", 1));
    assert!(!registry.is_registered("DoorEvent", 1));
    let invoice = registry
        .registered_types()
        .into_iter()
        .find(|r| r.name() == "billing.invoice_sent")
        .unwrap();
    assert_eq!(invoice.version(), 3);
    assert_eq!(invoice.aggregate_type(), Some("Invoice"));
    assert_eq!(
        invoice.type_name(),
        "registry::billing::events::InvoiceSent"
    );
    assert_eq!(
        billing::events::InvoiceSent::EVENT_TYPE,
        "billing.invoice_sent"
    );
    assert_eq!(UnitLike::AGGREGATE_TYPE, None);
    assert_eq!(UnitLike::VERSION, 1);
}

#[test]
fn explicit_registration_is_the_fallback() {
    let registry = EventRegistry::new();
    assert!(!registry.is_registered("TaskCreated", 1));
    registry.register::<TaskCreated>().unwrap();
    registry.register::<TaskCreated>().unwrap();
    assert!(registry.is_registered("TaskCreated", 1));
    assert_eq!(registry.registered_types().len(), 1);
    assert_eq!(
        registry.registered_types()[0].type_name(),
        std::any::type_name::<TaskCreated>()
    );
}

#[tokio::test]
async fn a_custom_registry_decides_what_a_store_decodes() {
    let registry = Arc::new(EventRegistry::new());
    let store = SqliteEventStore::options(":memory:")
        .registry(registry.clone())
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![support::created("t")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let event = store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap()
        .events[0]
        .clone();
    assert!(
        !event.is_typed(),
        "not registered in this registry: kept raw"
    );
    assert_eq!(
        event.raw().unwrap().payload,
        serde_json::json!({"title": "t"})
    );
    let missing = registry.find_unregistered(&store).await.unwrap();
    assert_eq!(missing.len(), 1);
    assert!(registry.verify_store(&store).await.is_err());

    // Registering the type at start-up fixes it, with no change to the data.
    registry.register::<TaskCreated>().unwrap();
    registry.verify_store(&store).await.unwrap();
    let event = store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap()
        .events[0]
        .clone();
    assert_eq!(event.event::<TaskCreated>().unwrap().title, "t");
}

#[tokio::test]
async fn serde_attributes_enums_and_nested_modules_round_trip() {
    let store = SqliteEventStore::open(":memory:").await.unwrap();
    store.initialize().await.unwrap();
    let id = Uuid::new_v4();
    let renamed = CustomerRenamed {
        new_name: "Ada".into(),
        previous_names: vec!["A.".into()],
        reason: None,
    };
    store
        .append_events(
            id,
            "Customer",
            vec![
                NewEvent::new(renamed.clone()),
                NewEvent::new(DoorEvent::Opened { by: "bob".into() }),
                NewEvent::new(DoorEvent::Closed),
                NewEvent::new(UnitLike {}),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    // Declared for the Invoice aggregate: appended to an Invoice stream.
    store
        .append_events(
            id,
            "Invoice",
            vec![NewEvent::new(billing::events::InvoiceSent { number: 7 })],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let events = store
        .get_events(id, "Customer", GetEventsOptions::default())
        .await
        .unwrap()
        .events;
    assert_eq!(events[0].event::<CustomerRenamed>().unwrap(), &renamed);
    assert_eq!(
        events[0].payload_json().unwrap(),
        serde_json::json!({"name": "Ada", "previousNames": ["A."]}),
        "serde attributes shape the stored payload"
    );
    assert_eq!(
        events[1].event::<DoorEvent>().unwrap(),
        &DoorEvent::Opened { by: "bob".into() }
    );
    assert_eq!(events[2].event::<DoorEvent>().unwrap(), &DoorEvent::Closed);
    // Stored per variant: the variant's name, its fields without serde's tag.
    assert_eq!(
        (events[1].event_type(), events[2].event_type()),
        ("Opened", "Closed")
    );
    assert_eq!(
        events[1].payload_json().unwrap(),
        serde_json::json!({"by": "bob"})
    );
    assert_eq!(events[2].payload_json().unwrap(), serde_json::json!({}));
    assert_eq!(events[3].event::<UnitLike>().unwrap(), &UnitLike {});
    assert_eq!(events[3].payload_json().unwrap(), serde_json::json!({}));
    let invoices = store
        .get_events(id, "Invoice", GetEventsOptions::default())
        .await
        .unwrap()
        .events;
    assert_eq!(invoices[0].event_type(), "billing.invoice_sent");
    assert_eq!(invoices[0].envelope.event_version, 3);
    assert_eq!(
        invoices[0]
            .event::<billing::events::InvoiceSent>()
            .unwrap()
            .number,
        7
    );

    // `default` fills fields missing from older payloads; unknown fields are ignored.
    store
        .append_events(
            id,
            "Customer",
            vec![NewEvent::raw(
                "CustomerRenamed",
                1,
                serde_json::json!({"name": "Grace", "legacy": true}),
            )],
            ExpectedVersion::Exact(4),
        )
        .await
        .unwrap();
    let events = store
        .get_events(id, "Customer", GetEventsOptions::from_version(5))
        .await
        .unwrap()
        .events;
    let old = events[0].event::<CustomerRenamed>().unwrap();
    assert_eq!(old.new_name, "Grace");
    assert!(old.previous_names.is_empty());
}
