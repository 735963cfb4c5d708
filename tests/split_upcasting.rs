//! Split upcasters: one stored row read back as zero, one or several current events, on
//! every store and read path, with limits and type filters keeping a row's events
//! together. (Subscriptions and projections: `split_upcasting_consumers.rs`.)

#[path = "split_upcasting/orders.rs"]
mod orders;
mod support;

use eventsource::prelude::*;
use eventsource::registry::split::SplitUpcaster;
use eventsource::{Error, EventRegistry, RawEvent};
use orders::{placed_v1, ItemAdded, Order, OrderPlaced};
use serde_json::{json, Value};
use support::every_store;
use uuid::Uuid;

/// One order stream: placed at v1 with two items, a dropped note, a current item.
async fn order(store: &dyn EventStore) -> (Uuid, Uuid) {
    let id = Uuid::new_v4();
    let first = placed_v1("ada", &["a-1", "b-2"]);
    let row_id = first.event_id();
    store
        .append_events(
            id,
            "Order",
            vec![
                first,
                NewEvent::raw("OrderNoted", 1, json!({"text": "call back"})),
                NewEvent::new(ItemAdded { sku: "c-3".into() }),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    (id, row_id)
}

fn describe(events: &[StoredEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            if let Ok(item) = e.event::<ItemAdded>() {
                format!(
                    "item {} @{}/v{}",
                    item.sku, e.global_position, e.stream_position
                )
            } else {
                let placed = e.event::<OrderPlaced>().expect("an OrderPlaced");
                format!(
                    "placed {} @{}/v{}",
                    placed.customer, e.global_position, e.stream_position
                )
            }
        })
        .collect()
}

#[test]
fn the_registry_knows_each_split_and_what_it_produces() {
    let registry = EventRegistry::global();
    assert!(registry.is_registered("OrderPlaced", 1));
    assert!(registry.is_registered("OrderNoted", 1));
    let splits: Vec<_> = registry
        .split_upcasters()
        .iter()
        .map(|s| (s.name(), s.version(), s.produces()))
        .collect();
    assert_eq!(
        splits,
        [
            ("OrderAudited", 1, &["OrderPlaced"][..]),
            ("OrderNoted", 1, &[][..]),
            ("OrderPlaced", 1, &["OrderPlaced", "ItemAdded"][..]),
        ]
    );
    registry.validate().unwrap();
    let lock = eventsource::schema::Lock::of_code(&registry, "split_upcasting").unwrap();
    assert_eq!(
        lock.events[&("OrderPlaced".to_owned(), 1)].shape,
        "(split -> OrderPlaced, ItemAdded)"
    );
    assert_eq!(
        lock.events[&("OrderNoted".to_owned(), 1)].shape,
        "(split -> )"
    );
    let parsed = eventsource::schema::Lock::parse(&lock.render()).unwrap();
    assert_eq!(parsed, lock, "the lock reads back what it renders");
}

#[test]
fn a_split_conflicts_with_a_type_or_another_split_of_its_version() {
    fn other(_v: Value) -> Result<Vec<RawEvent>, String> {
        Ok(Vec::new())
    }
    let registry = EventRegistry::new();
    registry.register::<OrderPlaced>().unwrap();
    let split = |f| SplitUpcaster::new("OrderPlaced", 2, &[], f, "tests::split");
    let error = registry.register_split(split(other)).unwrap_err();
    assert!(
        matches!(&error, Error::DuplicateEventType { name, version: 2, .. } if name == "OrderPlaced"),
        "{error}"
    );
    let registry = EventRegistry::new();
    registry
        .register_split(SplitUpcaster::new("Old", 1, &[], other, "tests::first"))
        .unwrap();
    let error = registry
        .register_split(SplitUpcaster::new("Old", 1, &[], other, "tests::second"))
        .unwrap_err();
    assert!(matches!(error, Error::DuplicateEventType { .. }), "{error}");
    // Refused before it was registered: the first one still reads its rows.
    registry.validate().unwrap();
    assert_eq!(registry.split_upcasters()[0].path(), "tests::first");
}

#[tokio::test]
async fn a_row_reads_back_as_the_events_its_upcaster_makes_on_every_store() {
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let (id, row_id) = order(&*store).await;
        let expected = [
            "placed ada @1/v1",
            "item a-1 @1/v1",
            "item b-2 @1/v1",
            "item c-3 @3/v3",
        ];
        let stream = store
            .get_events(id, "Order", GetEventsOptions::default())
            .await
            .unwrap();
        assert_eq!(describe(&stream.events), expected, "{name}: get_events");
        // The first event keeps the row's id; the others get their own, the same on
        // every read.
        let ids: Vec<Uuid> = stream.events.iter().map(StoredEvent::event_id).collect();
        assert_eq!(ids[0], row_id, "{name}");
        assert!(
            ids[1] != ids[0] && ids[2] != ids[1] && ids[2] != ids[0],
            "{name}"
        );
        assert_eq!(
            stream.events[1].envelope.event_type, "ItemAdded",
            "{name}: the envelope names each event's type"
        );

        let all = support::collect(store.read_all(ReadOptions::new())).await;
        assert_eq!(describe(&all), expected, "{name}: read_all");
        let again: Vec<Uuid> = all.iter().map(StoredEvent::event_id).collect();
        assert_eq!(again, ids, "{name}: ids are stable");
        let back = support::collect(store.read_all(ReadOptions::new().backward())).await;
        assert_eq!(
            describe(&back),
            [
                "item c-3 @3/v3",
                "placed ada @1/v1",
                "item a-1 @1/v1",
                "item b-2 @1/v1"
            ],
            "{name}: backward, a row's events in their order"
        );
        let read =
            support::collect(store.read_stream(&StreamId::new(id, "Order"), ReadOptions::new()))
                .await;
        assert_eq!(describe(&read), expected, "{name}: read_stream");
        let by_type = store.get_events_by_type("Order", None, None).await.unwrap();
        assert_eq!(describe(&by_type), expected, "{name}: get_events_by_type");

        // A limit counts events, and never cuts one row's events apart.
        let one = support::collect(store.read_all(ReadOptions::new().limit(1))).await;
        assert_eq!(describe(&one), expected[..3], "{name}: limit 1");
        let four = support::collect(store.read_all(ReadOptions::new().limit(4))).await;
        assert_eq!(describe(&four), expected, "{name}: limit 4");
        let after =
            support::collect(store.read_all(ReadOptions::new().from_position(1).limit(1))).await;
        assert_eq!(
            describe(&after),
            expected[3..],
            "{name}: the dropped row is passed over"
        );
        // A type filter applies to the events.
        let items =
            support::collect(store.read_all(ReadOptions::new().event_types(["ItemAdded"]))).await;
        assert_eq!(describe(&items), expected[1..], "{name}: filtered");
        let orders = support::collect(
            store.read_all(ReadOptions::new().event_types(["OrderPlaced"]).limit(1)),
        )
        .await;
        assert_eq!(
            describe(&orders),
            expected[..1],
            "{name}: filtered and limited"
        );

        // The aggregate is at the stream's stored version: the next append follows it.
        let repository = AggregateRepository::<Order>::new(store.clone());
        let mut root = repository.load(id).await.unwrap();
        assert_eq!(root.state().items, ["a-1", "b-2", "c-3"], "{name}");
        assert_eq!(
            (root.state().customer.as_str(), root.version()),
            ("ada", 3),
            "{name}"
        );
        root.apply_event(ItemAdded { sku: "d-4".into() });
        repository.save(&mut root).await.unwrap();
        assert_eq!(
            repository.load(id).await.unwrap().state().items.len(),
            4,
            "{name}"
        );
        EventRegistry::global().verify_store(&*store).await.unwrap();
    }
}

#[tokio::test]
async fn a_stream_ending_in_rows_that_read_as_nothing_loads_at_its_stored_version() {
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let id = Uuid::new_v4();
        let rows = vec![
            placed_v1("ada", &["a-1"]),
            NewEvent::raw("OrderNoted", 1, json!({"text": "one"})),
            NewEvent::raw("OrderNoted", 1, json!({"text": "two"})),
        ];
        store
            .append_events(id, "Order", rows, ExpectedVersion::NoStream)
            .await
            .unwrap();
        let stream = store
            .get_events(id, "Order", GetEventsOptions::default())
            .await
            .unwrap();
        assert_eq!(
            (stream.events.len(), stream.version),
            (2, 3),
            "{name}: the version is the last row's"
        );
        let repository = AggregateRepository::<Order>::new(store.clone());
        let mut root = repository.load(id).await.unwrap();
        assert_eq!(root.version(), 3, "{name}");
        root.apply_event(ItemAdded { sku: "b-2".into() });
        repository.save(&mut root).await.unwrap();
        let loaded = repository.load(id).await.unwrap();
        assert_eq!(
            (loaded.version(), loaded.state().items.len()),
            (4, 2),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_failing_split_or_an_undeclared_event_names_the_row() {
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let id = Uuid::new_v4();
        store
            .append_events(
                id,
                "Order",
                vec![NewEvent::raw(
                    "OrderPlaced",
                    1,
                    json!({"customer": "bob", "items": "oops"}),
                )],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let error = store
            .get_events(id, "Order", GetEventsOptions::default())
            .await
            .unwrap_err();
        let Error::CorruptEvent {
            event_type,
            reason,
            global_position,
            ..
        } = &error
        else {
            panic!("{name}: {error}");
        };
        assert_eq!(
            (event_type.as_str(), *global_position),
            ("OrderPlaced", 1),
            "{name}"
        );
        assert!(
            reason.contains("split_order") && reason.contains("items is not a list"),
            "{name}: {reason}"
        );

        let audited = Uuid::new_v4();
        store
            .append_events(
                audited,
                "Order",
                vec![NewEvent::raw("OrderAudited", 1, json!({}))],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let items: Vec<_> = futures::StreamExt::collect(store.read_all(ReadOptions::new())).await;
        assert_eq!(items.len(), 2, "{name}: each bad row is one item");
        let Err(Error::CorruptEvent {
            reason,
            global_position: 2,
            ..
        }) = &items[1]
        else {
            panic!("{name}: {:?}", items[1]);
        };
        assert!(reason.contains("declares"), "{name}: {reason}");
    }
}
