//! Conformance bodies for reads: streams, `read_all` order, limits and filters,
//! `get_events` and `get_events_by_type`, and filtered reads across many pages.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use eventsource::prelude::*;
use eventsource::ReplayedEvent;
use uuid::Uuid;

use super::{collect, created, noted, TaskCompleted, TaskCreated};

type Store = Arc<dyn EventStore>;

/// A one-type filter over more than two pages of its rows, mixed with another type: in
/// order both ways, from a position, and with a limit.
pub async fn one_type_reads_span_pages_in_order(store: Store) {
    let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let mut created_at = Vec::new();
    for round in 0..8u64 {
        for id in &ids {
            let events: Vec<NewEvent> = (0..50)
                .map(|i| {
                    if i % 2 == 0 {
                        created(&format!("{round}-{i}"))
                    } else {
                        NewEvent::new(TaskCompleted {})
                    }
                })
                .collect();
            let done = store
                .append_events(*id, "Task", events, ExpectedVersion::from(round * 50))
                .await
                .unwrap();
            let first = done.global_position - 49;
            created_at.extend((0..50).filter(|i| i % 2 == 0).map(|i| first + i));
        }
    }
    assert_eq!(created_at.len(), 600);
    let read = |options: ReadOptions| {
        let store = store.clone();
        async move {
            collect(store.read_all(options))
                .await
                .iter()
                .map(|e| e.global_position)
                .collect::<Vec<u64>>()
        }
    };
    let one = || ReadOptions::new().event_types(["eventsource.conformance.TaskCreated"]);
    assert_eq!(read(one()).await, created_at);
    let mut backward = created_at.clone();
    backward.reverse();
    assert_eq!(read(one().backward()).await, backward);
    let middle = created_at[300];
    assert_eq!(read(one().from_position(middle)).await, created_at[301..]);
    let before: Vec<u64> = created_at[..300].iter().rev().copied().collect();
    assert_eq!(read(one().from_position(middle).backward()).await, before);
    assert_eq!(read(one().limit(510)).await, created_at[..510]);
}

pub(crate) async fn five_event_stream(store: &Store) -> (Uuid, StreamId) {
    let id = Uuid::new_v4();
    let events = (1..=5).map(|i| created(&format!("t{i}"))).collect();
    store
        .append_events(id, "Task", events, ExpectedVersion::NoStream)
        .await
        .unwrap();
    (id, StreamId::new(id, "Task"))
}

fn titles(events: &[StoredEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.event::<TaskCreated>().unwrap().title.clone())
        .collect()
}

pub async fn read_stream_options(store: Store) {
    let (_, stream_id) = five_event_stream(&store).await;
    // Another stream's events never show.
    five_event_stream(&store).await;
    let all = collect(store.read_stream(&stream_id, ReadOptions::new())).await;
    assert_eq!(titles(&all), ["t1", "t2", "t3", "t4", "t5"]);
    let positions: Vec<u64> = all.iter().map(|e| e.stream_position).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    let back = collect(store.read_stream(&stream_id, ReadOptions::new().backward().limit(2))).await;
    assert_eq!(titles(&back), ["t5", "t4"]);
    let after = collect(store.read_stream(&stream_id, ReadOptions::new().from_position(3))).await;
    assert_eq!(titles(&after), ["t4", "t5"]);
    let before =
        collect(store.read_stream(&stream_id, ReadOptions::new().backward().from_position(3)))
            .await;
    assert_eq!(titles(&before), ["t2", "t1"]);
    let limited =
        collect(store.read_stream(&stream_id, ReadOptions::new().from_position(1).limit(2))).await;
    assert_eq!(titles(&limited), ["t2", "t3"]);
    let none =
        collect(store.read_stream(&StreamId::new(Uuid::new_v4(), "Task"), ReadOptions::new()))
            .await;
    assert!(none.is_empty());
    let zero = collect(store.read_stream(&stream_id, ReadOptions::new().limit(0))).await;
    assert!(zero.is_empty());
}

pub async fn read_all_order_and_limits(store: Store) {
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    store
        .append_events(a, "Task", vec![created("a1")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    store
        .append_events(b, "Task", vec![created("b1")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    store
        .append_events(a, "Task", vec![created("a2")], ExpectedVersion::Exact(1))
        .await
        .unwrap();
    let all = collect(store.read_all(ReadOptions::new())).await;
    assert_eq!(titles(&all), ["a1", "b1", "a2"]);
    let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, [1, 2, 3]);
    assert_eq!(
        titles(&collect(store.read_all(ReadOptions::new().backward())).await),
        ["a2", "b1", "a1"]
    );
    assert_eq!(
        titles(&collect(store.read_all(ReadOptions::new().backward().limit(2))).await),
        ["a2", "b1"]
    );
    assert_eq!(
        titles(&collect(store.read_all(ReadOptions::new().from_position(1))).await),
        ["b1", "a2"]
    );
    assert_eq!(
        titles(&collect(store.read_all(ReadOptions::new().from_position(1).limit(1))).await),
        ["b1"]
    );
    assert_eq!(
        titles(&collect(store.read_all(ReadOptions::new().backward().from_position(3))).await),
        ["b1", "a1"]
    );
    assert!(collect(store.read_all(ReadOptions::new().from_position(3)))
        .await
        .is_empty());
}

pub async fn read_all_filters(store: Store) {
    let tenant_a = Uuid::new_v4();
    let tenant_b = Uuid::new_v4();
    let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let at = |hours: i64| base + Duration::hours(hours);
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![
                created("h0").with_tenant_id(tenant_a).with_timestamp(at(0)),
                NewEvent::new(TaskCompleted {})
                    .with_tenant_id(tenant_b)
                    .with_timestamp(at(1)),
                created("h2").with_tenant_id(tenant_b).with_timestamp(at(2)),
                created("h3").with_timestamp(at(3)),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let positions =
        |events: Vec<StoredEvent>| events.iter().map(|e| e.global_position).collect::<Vec<_>>();
    let read = |options: ReadOptions| {
        let store = store.clone();
        async move { positions(collect(store.read_all(options)).await) }
    };
    assert_eq!(read(ReadOptions::new().tenant_id(tenant_b)).await, [2, 3]);
    assert_eq!(read(ReadOptions::new().tenant_id(tenant_a)).await, [1]);
    assert_eq!(
        read(ReadOptions::new().tenant_id(Uuid::new_v4())).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        read(ReadOptions::new().event_types(["eventsource.conformance.TaskCompleted"])).await,
        [2]
    );
    assert_eq!(
        read(ReadOptions::new().event_types([
            "eventsource.conformance.TaskCreated",
            "eventsource.conformance.TaskCompleted"
        ]))
        .await,
        [1, 2, 3, 4]
    );
    assert_eq!(
        read(ReadOptions::new().event_types(Vec::<String>::new())).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        read(ReadOptions::new().from_timestamp(at(1))).await,
        [2, 3, 4]
    );
    assert_eq!(read(ReadOptions::new().to_timestamp(at(1))).await, [1, 2]);
    assert_eq!(
        read(ReadOptions::new().from_timestamp(at(1)).to_timestamp(at(2))).await,
        [2, 3]
    );
    assert_eq!(
        read(
            ReadOptions::new()
                .tenant_id(tenant_b)
                .event_types(["eventsource.conformance.TaskCreated"])
                .backward()
        )
        .await,
        [3]
    );
    // read_stream filters on the tenant too.
    let stream = collect(store.read_stream(
        &StreamId::new(id, "Task"),
        ReadOptions::new().tenant_id(tenant_a),
    ))
    .await;
    assert_eq!(positions(stream), [1]);
}

pub async fn get_events_filters(store: Store) {
    let base = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    let id = Uuid::new_v4();
    let events = (0..6)
        .map(|i| created(&format!("t{i}")).with_timestamp(base + Duration::minutes(i)))
        .collect();
    store
        .append_events(id, "Task", events, ExpectedVersion::NoStream)
        .await
        .unwrap();
    let versions = |stream: EventStream| {
        stream
            .events
            .iter()
            .map(|e| e.aggregate_version())
            .collect::<Vec<_>>()
    };
    let from5 = store
        .get_events(id, "Task", GetEventsOptions::from_version(5))
        .await
        .unwrap();
    assert_eq!(from5.version, 6);
    assert_eq!(versions(from5), [5, 6]);
    let after = store
        .get_events(
            id,
            "Task",
            GetEventsOptions::between(Some(base + Duration::minutes(4)), None),
        )
        .await
        .unwrap();
    assert_eq!(versions(after), [5, 6]);
    let range = store
        .get_events(
            id,
            "Task",
            GetEventsOptions::between(
                Some(base + Duration::minutes(1)),
                Some(base + Duration::minutes(2)),
            ),
        )
        .await
        .unwrap();
    assert_eq!(range.version, 3);
    assert_eq!(versions(range), [2, 3]);
}

pub async fn get_events_by_type_filters(store: Store) {
    let tenant = Uuid::new_v4();
    let old = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("old").with_timestamp(old)],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("mine").with_tenant_id(tenant)],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store
        .append_events(
            Uuid::new_v4(),
            "Project",
            vec![noted("project")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let tasks = store.get_events_by_type("Task", None, None).await.unwrap();
    assert_eq!(titles(&tasks), ["old", "mine"]);
    let mine = store
        .get_events_by_type("Task", Some(tenant), None)
        .await
        .unwrap();
    assert_eq!(titles(&mine), ["mine"]);
    let recent = store
        .get_events_by_type("Task", None, Some(Utc::now() - Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(titles(&recent), ["mine"]);
    assert!(store
        .get_events_by_type("Nothing", None, None)
        .await
        .unwrap()
        .is_empty());
}

/// `replay_stream_pages` yields `replay_stream`'s events, in order, over more than two
/// pages (SQLite pages by 1,000), from any version; an aggregate loads from them.
pub async fn replay_pages_agree_with_replay_stream(store: Store) {
    use futures::TryStreamExt;
    let id = Uuid::new_v4();
    for batch in 0..5u64 {
        let events: Vec<NewEvent> = (0..500).map(|i| created(&format!("{batch}-{i}"))).collect();
        store
            .append_events(id, "Task", events, ExpectedVersion::from(batch * 500))
            .await
            .unwrap();
    }
    for from in [0, 1, 999, 1000, 1001, 2000, 2500, 2501] {
        let whole = store.replay_stream(id, "Task", from).await.unwrap();
        let pages: Vec<Vec<ReplayedEvent>> = store
            .replay_stream_pages(id, "Task", from)
            .try_collect()
            .await
            .unwrap();
        let paged: Vec<&ReplayedEvent> = pages.iter().flatten().collect();
        assert_eq!(paged.len(), whole.len(), "from {from}");
        for (p, w) in paged.iter().zip(&whole) {
            assert_eq!(
                (p.global_position, p.version),
                (w.global_position, w.version)
            );
            assert_eq!(
                p.payload.to_json_value().unwrap(),
                w.payload.to_json_value().unwrap()
            );
        }
        let versions: Vec<u64> = paged.iter().map(|e| e.version).collect();
        let first = from.max(1);
        let expected: Vec<u64> = (first..=2500).collect();
        assert_eq!(versions, expected, "from {from}");
    }
    let none: Vec<Vec<ReplayedEvent>> = store
        .replay_stream_pages(Uuid::new_v4(), "Task", 1)
        .try_collect()
        .await
        .unwrap();
    assert!(none.iter().all(Vec::is_empty));
}
