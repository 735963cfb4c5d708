//! Conformance bodies for many writers at once (group commit on the SQL stores): each
//! append keeps its own outcome, whatever shares its transaction.

use std::collections::HashMap;
use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::Error;
use uuid::Uuid;

use super::{collect, created, TaskCreated};

type Store = Arc<dyn EventStore>;

/// 64 tasks append to their own streams at once; a quarter of the appends carry a stale
/// expected version. Exactly those fail (with the stream's real version), every other
/// append is stored once, in order, and the global positions have no gap.
pub async fn stale_appends_fail_alone(store: Store) {
    const TASKS: usize = 64;
    const APPENDS: usize = 12;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                let mut version = 0u64;
                let mut stored = Vec::new();
                let mut refused = 0;
                barrier.wait().await;
                for k in 0..APPENDS {
                    let stale = (task + k) % 4 == 0;
                    let expected = match (stale, version) {
                        (false, 0) => ExpectedVersion::NoStream,
                        (false, v) => ExpectedVersion::Exact(v),
                        (true, 0) => ExpectedVersion::Exact(3),
                        (true, v) => ExpectedVersion::Exact(v - 1),
                    };
                    let title = format!("{task}-{k}");
                    let result = store
                        .append_events(id, "Task", vec![created(&title)], expected)
                        .await;
                    match (stale, result) {
                        (false, Ok(result)) => {
                            assert!(!result.already_stored, "{title}");
                            assert_eq!(result.new_version, version + 1, "{title}");
                            assert!(result.global_position > 0, "{title}");
                            version += 1;
                            stored.push((title, result.global_position));
                        }
                        (true, Err(Error::OptimisticLock { actual, .. })) => {
                            assert_eq!(actual, version, "{title}");
                            refused += 1;
                        }
                        (stale, other) => panic!("{title} (stale: {stale}): {other:?}"),
                    }
                }
                (id, stored, refused)
            })
        })
        .collect();
    let mut expected_total = 0;
    let mut streams = Vec::new();
    let mut refused_total = 0;
    for task in tasks {
        let (id, stored, refused) = task.await.unwrap();
        expected_total += stored.len();
        refused_total += refused;
        streams.push((id, stored));
    }
    assert_eq!(refused_total, TASKS * APPENDS / 4);
    let all = collect(store.read_all(ReadOptions::new())).await;
    let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, (1..=expected_total as u64).collect::<Vec<_>>());
    let by_position: HashMap<u64, &StoredEvent> =
        all.iter().map(|e| (e.global_position, e)).collect();
    for (id, stored) in streams {
        let stream = store
            .get_events(id, "Task", GetEventsOptions::default())
            .await
            .unwrap();
        let titles: Vec<String> = stream
            .events
            .iter()
            .map(|e| e.event::<TaskCreated>().unwrap().title.clone())
            .collect();
        let acknowledged: Vec<String> = stored.iter().map(|(t, _)| t.clone()).collect();
        assert_eq!(titles, acknowledged, "stream {id}");
        let versions: Vec<u64> = stream
            .events
            .iter()
            .map(|e| e.aggregate_version())
            .collect();
        assert_eq!(versions, (1..=stored.len() as u64).collect::<Vec<_>>());
        // Each acknowledgement names the position its event is stored at.
        for (title, position) in &stored {
            let event = by_position[position];
            assert_eq!(event.aggregate_id(), id);
            assert_eq!(&event.event::<TaskCreated>().unwrap().title, title);
        }
    }
}

/// Appends of the same event at the same moment store it once; every one of them is
/// acknowledged (the event is in the stream), at the same position.
pub async fn same_event_at_once_is_stored_once(store: Store) {
    const TASKS: usize = 32;
    let id = Uuid::new_v4();
    let event = created("once");
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (store, barrier, event) = (store.clone(), barrier.clone(), event.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                // Other streams' appends share the groups.
                let other = store.append_events(
                    Uuid::new_v4(),
                    "Task",
                    vec![created(&format!("other {i}"))],
                    ExpectedVersion::NoStream,
                );
                let same = store.append_events(id, "Task", vec![event], ExpectedVersion::Any);
                let (other, same) = futures::join!(other, same);
                other.unwrap();
                same.unwrap()
            })
        })
        .collect();
    let mut positions = Vec::new();
    for task in tasks {
        let result = task.await.unwrap();
        assert_eq!(result.new_version, 1);
        positions.push(result.global_position);
    }
    positions.dedup();
    assert_eq!(positions.len(), 1, "{positions:?}");
    let stream = store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert_eq!(stream.events.len(), 1);
    assert_eq!(stream.events[0].global_position, positions[0]);
    assert_eq!(store.get_global_position().await.unwrap(), TASKS as u64 + 1);
}

/// Events each sent to two streams at once (all the races together, so that they share
/// transactions): one stream gets each event, the other append is refused with the
/// position the event is stored at.
pub async fn one_event_id_racing_into_two_streams(store: Store) {
    const EVENTS: usize = 16;
    let barrier = Arc::new(tokio::sync::Barrier::new(EVENTS * 2));
    let mut tasks = Vec::new();
    let events: Vec<NewEvent> = (0..EVENTS)
        .map(|i| created(&format!("contested {i}")))
        .collect();
    for event in &events {
        for _ in 0..2 {
            let (store, barrier, event) = (store.clone(), barrier.clone(), event.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append_events(Uuid::new_v4(), "Task", vec![event], ExpectedVersion::Any)
                    .await
            }));
        }
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for (event, pair) in events.iter().zip(results.chunks(2)) {
        let (won, lost) = match pair {
            [Ok(won), Err(lost)] | [Err(lost), Ok(won)] => (won, lost),
            other => panic!("expected one success and one refusal: {other:?}"),
        };
        match lost {
            Error::DuplicateEventId {
                event_id,
                global_position,
            } => {
                assert_eq!(*event_id, event.event_id());
                assert_eq!(*global_position, won.global_position);
            }
            other => panic!("expected DuplicateEventId, got {other}"),
        }
    }
    assert_eq!(store.get_global_position().await.unwrap(), EVENTS as u64);
}
