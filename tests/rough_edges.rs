//! What a new user touches first: stored events and envelopes serialize (logs, APIs,
//! exports), raw events display, and a hand-written projection naming an event type that
//! no Rust type is registered under is refused instead of silently never called.

mod support;

use std::sync::Arc;

use eventsource::async_trait;
use eventsource::prelude::*;
use eventsource::{BoxError, Error};
use serde_json::json;
use support::{created, every_store};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_events_serialize_as_one_flat_object_on_every_store() {
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let id = Uuid::new_v4();
        let tenant = Uuid::new_v4();
        let typed = created("Write docs")
            .with_tenant_id(tenant)
            .with_actor_id("user-1")
            .with_metadata("source", "api");
        let raw = NewEvent::raw("LegacyThing", 3, json!({"x": [1, 2]}));
        let (typed_id, raw_id) = (typed.event_id(), raw.event_id());
        store
            .append_events(id, "Task", vec![typed, raw], ExpectedVersion::NoStream)
            .await
            .unwrap();
        let stream = store
            .get_events(id, "Task", GetEventsOptions::default())
            .await
            .unwrap();

        let value = serde_json::to_value(&stream.events[0]).unwrap();
        let text = |key: &str| value[key].as_str().map(str::to_owned);
        assert_eq!(text("event_id"), Some(typed_id.to_string()), "{name}");
        assert_eq!(text("event_type").as_deref(), Some("TaskCreated"));
        assert_eq!(value["event_version"], 1);
        assert_eq!(text("aggregate_id"), Some(id.to_string()));
        assert_eq!(text("aggregate_type").as_deref(), Some("Task"));
        assert_eq!(value["aggregate_version"], 1);
        assert_eq!(value["stream_position"], 1);
        assert_eq!(value["global_position"], stream.events[0].global_position);
        assert_eq!(text("tenant_id"), Some(tenant.to_string()));
        assert_eq!(text("actor_id").as_deref(), Some("user-1"));
        assert_eq!(value["correlation_id"], serde_json::Value::Null);
        assert_eq!(value["metadata"], json!({"source": "api"}));
        assert_eq!(value["payload"], stream.events[0].payload_json().unwrap());
        assert!(value["payload"]["title"] == "Write docs");
        assert!(value["timestamp"].is_string() && value["stored_at"].is_string());

        // An unregistered type serializes its stored JSON the same way.
        let raw_value = serde_json::to_value(&stream.events[1]).unwrap();
        assert_eq!(raw_value["event_id"], raw_id.to_string());
        assert_eq!(raw_value["event_type"], "LegacyThing");
        assert_eq!(raw_value["event_version"], 3);
        assert_eq!(raw_value["payload"], json!({"x": [1, 2]}));
        assert_eq!(
            stream.events[1].raw().unwrap().to_string(),
            r#"LegacyThing v3 {"x":[1,2]}"#
        );

        // The envelope comes back from its JSON unchanged.
        let envelope: eventsource::EventEnvelope = serde_json::from_value(value).unwrap();
        assert_eq!(envelope, stream.events[0].envelope, "{name}");
    }
}

/// A hand-written projection whose handled types are plain strings.
#[derive(Debug)]
struct Typo {
    types: &'static [&'static str],
}

#[async_trait]
impl Projection for Typo {
    fn name(&self) -> &str {
        "typo"
    }

    fn handled_event_types(&self) -> &'static [&'static str] {
        self.types
    }

    async fn handle(&mut self, _event: &StoredEvent) -> Result<(), BoxError> {
        Ok(())
    }

    fn is_durable(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_handled_type_no_rust_type_is_registered_under_is_refused_at_subscribe() {
    let store = Arc::new(InMemoryEventStore::new());
    let manager = SubscriptionManager::new(
        store.clone(),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(InMemoryCheckpointStore::new()),
    );
    let refused = manager
        .subscribe(
            Typo {
                types: &["TaskCreated", "TaskCreatd"],
            },
            SubscriptionConfig::new(),
            "typo",
        )
        .await;
    let Err(Error::InvalidConfiguration { message }) = refused else {
        panic!("expected a configuration error, got {refused:?}");
    };
    assert!(message.contains("handles `TaskCreatd`"), "{message}");
    assert!(message.contains("did you mean `TaskCreated`?"), "{message}");
    assert!(message.contains("allow_unregistered_types"), "{message}");

    // Registered names pass; so does an unregistered one allowed on purpose.
    manager
        .subscribe(
            Typo {
                types: &["TaskCreated"],
            },
            SubscriptionConfig::new(),
            "typo",
        )
        .await
        .unwrap();
    manager
        .subscribe(
            Typo {
                types: &["LegacyThing"],
            },
            SubscriptionConfig::new().allow_unregistered_types(true),
            "legacy",
        )
        .await
        .unwrap();
}
