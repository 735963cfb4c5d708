//! Conformance bodies: appends, versions, idempotency, atomicity, envelopes, racing
//! writers, unknown and raw types, pages, stream ids, declared aggregates.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use eventsource::prelude::*;
use eventsource::{Error, EventRegistry};
use futures::StreamExt;
use uuid::Uuid;

use super::reads::five_event_stream;
use super::{collect, created, noted, TaskCompleted, TaskCreated, TaskReassigned, Unserializable};

type Store = Arc<dyn EventStore>;

fn lock_error(result: eventsource::Result<AppendResult>) -> (ExpectedVersion, u64) {
    match result {
        Err(Error::OptimisticLock {
            expected, actual, ..
        }) => (expected, actual),
        other => panic!("expected an optimistic lock error, got {other:?}"),
    }
}

pub async fn append_and_read_back(store: Store) {
    let id = Uuid::new_v4();
    let tenant = Uuid::new_v4();
    let correlation = Uuid::new_v4();
    let causation = Uuid::new_v4();
    let at = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap() + Duration::microseconds(123_456);
    let event = created("Learn event stores")
        .with_tenant_id(tenant)
        .with_actor_id("user-1")
        .with_correlation_id(correlation)
        .with_causation_id(causation)
        .with_metadata("source", "test")
        .with_timestamp(at);
    let event_id = event.event_id();
    let result = store
        .append_events(id, "Task", vec![event], ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert!(!result.already_stored);
    assert_eq!(result.new_version, 1);
    assert_eq!(result.global_position, 1);

    let stream = store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert_eq!(stream.aggregate_id, id);
    assert_eq!(stream.aggregate_type, "Task");
    assert_eq!(stream.version, 1);
    assert!(!stream.is_empty());
    let stored = stream.latest_event().unwrap();
    assert_eq!(stored.event_id(), event_id);
    assert_eq!(stored.event_type(), "eventsource.conformance.TaskCreated");
    assert_eq!(stored.aggregate_version(), 1);
    assert_eq!(stored.stream_position, 1);
    assert_eq!(stored.global_position, 1);
    let envelope = &stored.envelope;
    assert_eq!(envelope.tenant_id, Some(tenant));
    assert_eq!(envelope.actor_id.as_deref(), Some("user-1"));
    assert_eq!(envelope.correlation_id, Some(correlation));
    assert_eq!(envelope.causation_id, Some(causation));
    assert_eq!(
        envelope.metadata.get("source"),
        Some(&serde_json::json!("test"))
    );
    assert_eq!(envelope.timestamp, at);
    assert_eq!(envelope.event_version, 1);
    assert!(stored.is_typed());
    assert_eq!(
        stored.event::<TaskCreated>().unwrap().title,
        "Learn event stores"
    );
    assert!(stored.downcast_ref::<TaskCompleted>().is_none());
    assert!(matches!(
        stored.event::<TaskCompleted>(),
        Err(Error::EventTypeMismatch {
            expected: "eventsource.conformance.TaskCompleted",
            ..
        })
    ));
    assert_eq!(
        stored.payload_json().unwrap(),
        serde_json::json!({"title": "Learn event stores"})
    );

    let missing = store
        .get_events(Uuid::new_v4(), "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert!(missing.is_empty());
    assert_eq!(missing.version, 0);
    assert!(missing.latest_event().is_none());
}

pub async fn batch_versions_and_positions(store: Store) {
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    store
        .append_events(a, "Task", vec![created("a")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    let result = store
        .append_events(
            b,
            "Task",
            vec![created("b"), NewEvent::new(TaskCompleted {}), created("b2")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    assert_eq!(result.new_version, 3);
    assert_eq!(result.global_position, 4);
    let stream = store
        .get_events(b, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    let versions: Vec<u64> = stream
        .events
        .iter()
        .map(|e| e.aggregate_version())
        .collect();
    let positions: Vec<u64> = stream.events.iter().map(|e| e.global_position).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(positions, [2, 3, 4]);
    // The same id under another aggregate type is another stream.
    let other = store
        .append_events(a, "Project", vec![noted("p")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert_eq!(other.new_version, 1);
    assert_eq!(store.get_stream_version(a, "Task").await.unwrap(), 1);
}

pub async fn expected_version_rules(store: Store) {
    let id = Uuid::new_v4();
    // StreamExists on a new stream fails.
    let (expected, actual) = lock_error(
        store
            .append_events(
                id,
                "Task",
                vec![created("x")],
                ExpectedVersion::StreamExists,
            )
            .await,
    );
    assert_eq!((expected, actual), (ExpectedVersion::StreamExists, 0));
    // Exact(0) is NoStream.
    store
        .append_events(id, "Task", vec![created("x")], ExpectedVersion::Exact(0))
        .await
        .unwrap();
    // NoStream on an existing stream fails with the actual version.
    let (expected, actual) = lock_error(
        store
            .append_events(id, "Task", vec![created("y")], ExpectedVersion::NoStream)
            .await,
    );
    assert_eq!((expected, actual), (ExpectedVersion::NoStream, 1));
    store
        .append_events(
            id,
            "Task",
            vec![NewEvent::new(TaskCompleted {})],
            ExpectedVersion::from(1),
        )
        .await
        .unwrap();
    // A stale exact version fails, naming aggregate, expected and actual.
    match store
        .append_events(
            id,
            "Task",
            vec![NewEvent::new(TaskReassigned {
                new_assignee: Uuid::new_v4(),
            })],
            ExpectedVersion::Exact(1),
        )
        .await
    {
        Err(Error::OptimisticLock {
            aggregate_id,
            aggregate_type,
            expected,
            actual,
        }) => {
            assert_eq!(aggregate_id, id);
            assert_eq!(aggregate_type, "Task");
            assert_eq!(expected, ExpectedVersion::Exact(1));
            assert_eq!(actual, 2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A version ahead of the stream fails too (no gaps).
    let (_, actual) = lock_error(
        store
            .append_events(id, "Task", vec![created("z")], ExpectedVersion::Exact(7))
            .await,
    );
    assert_eq!(actual, 2);
    let ok = store
        .append_events(
            id,
            "Task",
            vec![created("z")],
            ExpectedVersion::StreamExists,
        )
        .await
        .unwrap();
    assert_eq!(ok.new_version, 3);
    let ok = store
        .append_events(id, "Task", vec![created("w")], ExpectedVersion::Any)
        .await
        .unwrap();
    assert_eq!(ok.new_version, 4);
    let ok = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("v")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    assert_eq!(ok.new_version, 1);
    // Nothing of the failed appends was stored.
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 4);
    assert_eq!(store.get_global_position().await.unwrap(), 5);
}

pub async fn idempotent_event_ids(store: Store) {
    let id = Uuid::new_v4();
    let batch = vec![created("a"), NewEvent::new(TaskCompleted {})];
    let first = store
        .append_events(id, "Task", batch.clone(), ExpectedVersion::NoStream)
        .await
        .unwrap();
    // The acknowledgement was lost; the whole batch is sent again with the same
    // expected version.
    let again = store
        .append_events(id, "Task", batch.clone(), ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert!(
        again.already_stored,
        "nothing written: the batch was stored already"
    );
    assert!(!first.already_stored);
    assert_eq!(again.new_version, 2);
    assert_eq!(again.global_position, first.global_position);
    assert_eq!(store.get_global_position().await.unwrap(), 2);
    assert!(store.event_exists(batch[0].event_id()).await.unwrap());

    // A batch mixing a stored event and a new one appends only the new one.
    let fresh = created("c");
    let mixed = store
        .append_events(
            id,
            "Task",
            vec![batch[1].clone(), fresh.clone()],
            ExpectedVersion::Exact(2),
        )
        .await
        .unwrap();
    assert_eq!(mixed.new_version, 3);
    assert!(!mixed.already_stored, "one of its events was new");
    let stream = store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    let ids: Vec<Uuid> = stream.events.iter().map(|e| e.event_id()).collect();
    assert_eq!(
        ids,
        [batch[0].event_id(), batch[1].event_id(), fresh.event_id()]
    );

    // An id stored in another stream is refused, not silently skipped.
    let other = Uuid::new_v4();
    let reused = store
        .append_events(
            other,
            "Task",
            vec![batch[0].clone(), created("new")],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(
        matches!(reused, Err(Error::DuplicateEventId { event_id, global_position: 1 }) if event_id == batch[0].event_id()),
        "{reused:?}"
    );
    assert_eq!(store.get_stream_version(other, "Task").await.unwrap(), 0);

    // An id repeated inside one batch is stored once.
    let twice = created("d");
    let result = store
        .append_events(
            id,
            "Task",
            vec![twice.clone(), twice],
            ExpectedVersion::Exact(3),
        )
        .await
        .unwrap();
    assert_eq!(result.new_version, 4);
    assert_eq!(store.get_global_position().await.unwrap(), 4);
}

/// A batch refused before any write (an event that does not serialize, a conflict) leaves
/// nothing; a failure in the database halfway through a batch is tested per backend
/// (`store_sqlite.rs`).
pub async fn rejected_batch_leaves_nothing(store: Store) {
    let id = Uuid::new_v4();
    let result = store
        .append_events(
            id,
            "Task",
            vec![created("a"), NewEvent::new(Unserializable {}), created("b")],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(
        matches!(&result, Err(Error::Serialization { event_type, .. }) if event_type == "eventsource.conformance.Unserializable"),
        "{result:?}"
    );
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 0);
    assert_eq!(store.get_global_position().await.unwrap(), 0);
    // So does a control character the stores reserve.
    let reserved = store
        .append_events(
            id,
            "Ta\u{1f}sk",
            vec![created("a")],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(
        matches!(reserved, Err(Error::InvalidInput { .. })),
        "{reserved:?}"
    );
    let reserved = store
        .append_events(
            id,
            "Task",
            vec![created("a").with_actor_id("x\u{1f}y")],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(
        matches!(reserved, Err(Error::InvalidInput { .. })),
        "{reserved:?}"
    );
    // A conflicting batch leaves nothing either.
    store
        .append_events(id, "Task", vec![created("a")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    let conflicting = vec![created("b"), created("c")];
    let ids: Vec<Uuid> = conflicting.iter().map(NewEvent::event_id).collect();
    assert!(store
        .append_events(id, "Task", conflicting, ExpectedVersion::NoStream)
        .await
        .is_err());
    for event_id in ids {
        assert!(!store.event_exists(event_id).await.unwrap());
    }
    assert_eq!(store.get_global_position().await.unwrap(), 1);
}

pub async fn events_belong_to_their_declared_aggregate(store: Store) {
    // `TaskCreated` is declared with #[event(aggregate = "Task")].
    let id = Uuid::new_v4();
    for event in [
        created("a"),
        NewEvent::raw(
            "eventsource.conformance.TaskCreated",
            1,
            serde_json::json!({"title": "raw"}),
        ),
    ] {
        match store
            .append_events(id, "Member", vec![event], ExpectedVersion::NoStream)
            .await
        {
            Err(Error::InvalidInput { message }) => {
                assert!(
                    message.contains("declared for aggregate type `Task`"),
                    "{message}"
                );
                assert!(message.contains("\"Member\""), "{message}");
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(store.get_global_position().await.unwrap(), 0);
    // An unregistered raw type declares nothing: it goes anywhere.
    store
        .append_events(
            id,
            "Member",
            vec![NewEvent::raw("MemberNoted", 1, serde_json::json!({}))],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store
        .append_events(id, "Task", vec![created("a")], ExpectedVersion::NoStream)
        .await
        .unwrap();
}

pub async fn metadata_queries(store: Store) {
    assert_eq!(store.get_global_position().await.unwrap(), 0);
    assert!(store.event_type_counts().await.unwrap().is_empty());
    let id = Uuid::new_v4();
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 0);
    let event = created("a");
    let event_id = event.event_id();
    assert!(!store.event_exists(event_id).await.unwrap());
    store
        .append_events(
            id,
            "Task",
            vec![event, created("b"), NewEvent::new(TaskCompleted {})],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    assert!(store.event_exists(event_id).await.unwrap());
    assert!(!store.event_exists(Uuid::new_v4()).await.unwrap());
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 3);
    assert_eq!(store.get_global_position().await.unwrap(), 3);
    let counts: Vec<(String, u32, u64)> = store
        .event_type_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.event_type, c.event_version, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("eventsource.conformance.TaskCompleted".to_owned(), 1, 1),
            ("eventsource.conformance.TaskCreated".to_owned(), 1, 2)
        ]
    );
}

pub async fn racing_appends_one_winner(store: Store) {
    for round in 0..40 {
        let id = Uuid::new_v4();
        store
            .append_events(
                id,
                "Task",
                vec![created("start")],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .append_events(
                            id,
                            "Task",
                            vec![created(&format!("racer {i}"))],
                            ExpectedVersion::Exact(1),
                        )
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        let mut conflicts = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(result) => {
                    assert_eq!(result.new_version, 2);
                    wins += 1;
                }
                Err(Error::OptimisticLock { actual, .. }) => {
                    assert_eq!(actual, 2);
                    conflicts += 1;
                }
                Err(other) => panic!("round {round}: unexpected error {other}"),
            }
        }
        assert_eq!((wins, conflicts), (1, 1), "round {round}");
        assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 2);
    }
}

pub async fn concurrent_writers_get_unique_positions(store: Store) {
    const WRITERS: usize = 4;
    const APPENDS: u64 = 25;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                for v in 0..APPENDS {
                    store
                        .append_events(id, "Task", vec![created("x")], ExpectedVersion::from(v))
                        .await
                        .unwrap();
                }
                id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    let all = collect(store.read_all(ReadOptions::new())).await;
    let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
    assert_eq!(
        positions,
        (1..=WRITERS as u64 * APPENDS).collect::<Vec<_>>()
    );
    for id in ids {
        let stream = store
            .get_events(id, "Task", GetEventsOptions::default())
            .await
            .unwrap();
        let versions: Vec<u64> = stream
            .events
            .iter()
            .map(|e| e.aggregate_version())
            .collect();
        assert_eq!(versions, (1..=APPENDS).collect::<Vec<_>>());
    }
}

pub async fn unknown_event_types_are_kept(store: Store) {
    let id = Uuid::new_v4();
    let payload = serde_json::json!({"sku": "A-1", "quantity": 3});
    let raw = NewEvent::raw("LegacyItemAdded", 2, payload.clone());
    store
        .append_events(id, "Cart", vec![raw], ExpectedVersion::NoStream)
        .await
        .unwrap();
    let all = collect(store.read_all(ReadOptions::new())).await;
    assert_eq!(all.len(), 1);
    let stored = &all[0];
    assert!(!stored.is_typed());
    assert_eq!(stored.event_type(), "LegacyItemAdded");
    assert_eq!(stored.envelope.event_version, 2);
    let raw = stored.raw().expect("kept as raw JSON");
    assert_eq!(raw.payload, payload);
    assert_eq!(raw.event_version, 2);
    assert!(matches!(
        stored.event::<TaskCreated>(),
        Err(Error::UnknownEventType { ref event_type, version: 2 }) if event_type == "LegacyItemAdded"
    ));
    let missing = EventRegistry::global()
        .find_unregistered(store.as_ref())
        .await
        .unwrap();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].event_type, "LegacyItemAdded");
    assert_eq!(missing[0].event_version, 2);
    assert!(matches!(
        EventRegistry::global().verify_store(store.as_ref()).await,
        Err(Error::UnregisteredEventTypes { missing }) if missing == ["LegacyItemAdded@2 (1 events)"]
    ));
}

pub async fn raw_events_of_registered_types_decode(store: Store) {
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![NewEvent::raw(
                "eventsource.conformance.TaskCreated",
                1,
                serde_json::json!({"title": "from raw"}),
            )],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let stream = store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert_eq!(
        stream.events[0].event::<TaskCreated>().unwrap().title,
        "from raw"
    );
    EventRegistry::global()
        .verify_store(store.as_ref())
        .await
        .unwrap();
}

pub async fn reads_span_many_pages(store: Store) {
    // More than two pages of the stores' page size (500), in batches.
    let id = Uuid::new_v4();
    for batch in 0..12u64 {
        let events = (0..100)
            .map(|i| created(&format!("{}", batch * 100 + i)))
            .collect();
        store
            .append_events(id, "Task", events, ExpectedVersion::from(batch * 100))
            .await
            .unwrap();
    }
    let mut stream = store.read_all(ReadOptions::new());
    let mut expected = 1;
    while let Some(event) = stream.next().await {
        assert_eq!(event.unwrap().global_position, expected);
        expected += 1;
    }
    assert_eq!(expected, 1201);
    let limited = collect(store.read_all(ReadOptions::new().from_position(250).limit(700))).await;
    assert_eq!(limited.len(), 700);
    assert_eq!(limited[0].global_position, 251);
    assert_eq!(limited[699].global_position, 950);
    let back =
        collect(store.read_stream(&StreamId::new(id, "Task"), ReadOptions::new().backward())).await;
    assert_eq!(back.len(), 1200);
    assert_eq!(back[0].stream_position, 1200);
    assert_eq!(back[1199].stream_position, 1);
}

pub async fn stream_ids_parse(_store: Store) {
    let id = Uuid::new_v4();
    let parsed: StreamId = format!("{id}:Task").parse().unwrap();
    assert_eq!(parsed, StreamId::new(id, "Task"));
    assert_eq!(parsed.to_string(), format!("{id}:Task"));
    for bad in [
        "",
        "Task",
        "not-a-uuid:Task",
        &format!("{id}:"),
        &id.to_string(),
    ] {
        assert!(
            matches!(bad.parse::<StreamId>(), Err(Error::InvalidStreamId { .. })),
            "{bad:?} parsed"
        );
    }
}

pub async fn replay_stream_agrees_with_get_events(store: Store) {
    let (id, _) = five_event_stream(&store).await;
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("elsewhere")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    for from in [0, 1, 3, 5, 6] {
        let replayed = store.replay_stream(id, "Task", from).await.unwrap();
        let stream = store
            .get_events(id, "Task", GetEventsOptions::from_version(from))
            .await
            .unwrap();
        assert_eq!(replayed.len(), stream.events.len(), "from {from}");
        for (r, e) in replayed.iter().zip(&stream.events) {
            assert_eq!(
                (r.global_position, r.version),
                (e.global_position, e.stream_position)
            );
            assert_eq!(r.payload.event_type(), e.event_type());
            assert_eq!(
                r.payload.to_json_value().unwrap(),
                e.payload.to_json_value().unwrap()
            );
        }
    }
    assert!(store
        .replay_stream(Uuid::new_v4(), "Task", 1)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .replay_stream(id, "Other", 1)
        .await
        .unwrap()
        .is_empty());
}
