//! One bad row planted among nine good ones, and the checks that it hides nothing: every
//! read path, in both directions, delivers the eight good rows and reports the bad one
//! as its own `CorruptEvent`.

use eventsource::prelude::*;
use eventsource::Error;
use futures::StreamExt;
use uuid::Uuid;

use super::{created, TaskCreated};

/// Appends a stream of nine `Task` events titled t1..t9, at positions 1..9.
pub async fn nine_tasks(store: &dyn EventStore) -> Uuid {
    let id = Uuid::new_v4();
    for i in 1..=9 {
        store
            .append_events(
                id,
                "Task",
                vec![created(&format!("t{i}")).with_actor_id("ops")],
                ExpectedVersion::Exact(i - 1),
            )
            .await
            .unwrap();
    }
    id
}

/// The titles of the events among `items`.
pub fn titles(items: &[eventsource::Result<StoredEvent>]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|e| e.event::<TaskCreated>().unwrap().title.clone())
        .collect()
}

/// Exactly one error among `items`: a `CorruptEvent` at `position`.
fn assert_one_report(items: &[eventsource::Result<StoredEvent>], position: u64, what: &str) {
    let errors: Vec<&Error> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{what}: {errors:?}");
    match errors[0] {
        Error::CorruptEvent {
            global_position, ..
        } => assert_eq!(*global_position, position, "{what}: {:?}", errors[0]),
        other => panic!("{what}: expected CorruptEvent, got {other:?}"),
    }
}

/// The row at position 5 of [`nine_tasks`]'s stream `id` was spoiled as `case` says; it is
/// reported at `reported_at` (0 for a row whose position is not one). Checks every read.
/// `bad_version`: the spoiled column is its version, so no version filter leaves it out;
/// `replayed`: `replay_stream` (which reads positions, type and payload) reads it.
pub async fn assert_the_bad_row_hides_nothing(
    store: &dyn EventStore,
    id: Uuid,
    case: &str,
    reported_at: u64,
    bad_version: bool,
    replayed: bool,
) {
    let good: Vec<String> = [1, 2, 3, 4, 6, 7, 8, 9]
        .iter()
        .map(|i| format!("t{i}"))
        .collect();
    let mut reversed = good.clone();
    reversed.reverse();
    let stream = StreamId::new(id, "Task");
    for (what, options, expected) in [
        ("read_all", ReadOptions::new(), &good),
        (
            "read_all backward",
            ReadOptions::new().backward(),
            &reversed,
        ),
    ] {
        let items: Vec<_> = store.read_all(options).collect().await;
        assert_eq!(titles(&items), *expected, "{case}: {what}");
        assert_one_report(&items, reported_at, &format!("{case}: {what}"));
    }
    for (what, options, expected) in [
        ("read_stream", ReadOptions::new(), &good),
        (
            "read_stream backward",
            ReadOptions::new().backward(),
            &reversed,
        ),
    ] {
        let items: Vec<_> = store.read_stream(&stream, options).collect().await;
        assert_eq!(titles(&items), *expected, "{case}: {what}");
        assert_one_report(&items, reported_at, &format!("{case}: {what}"));
    }
    // A limit counts placed rows (a bad row in place counts as one); rows at no
    // position come on top of it, forward from the start, and backward only when the
    // read reached the start.
    for options in [
        ReadOptions::new().limit(9),
        ReadOptions::new().backward().limit(9),
    ] {
        let items: Vec<_> = store.read_all(options.clone()).collect().await;
        assert_eq!(items.len(), 9, "{case}: {options:?}");
        let items: Vec<_> = store.read_stream(&stream, options.clone()).collect().await;
        assert_eq!(items.len(), 9, "{case}: read_stream {options:?}");
    }
    let items: Vec<_> = store.read_all(ReadOptions::new().limit(3)).collect().await;
    assert_eq!(
        items.len(),
        3 + usize::from(reported_at == 0),
        "{case}: limit 3"
    );
    let items: Vec<_> = store
        .read_stream(&stream, ReadOptions::new().limit(3))
        .collect()
        .await;
    assert_eq!(
        items.len(),
        3 + usize::from(bad_version),
        "{case}: read_stream limit 3"
    );
    // A backward read that its limit ends before the start does not report them.
    let items: Vec<_> = store
        .read_all(ReadOptions::new().backward().limit(3))
        .collect()
        .await;
    assert_eq!(items.len(), 3, "{case}: backward limit 3");
    // Reads of a whole stream cannot return part of it: they name the row.
    let froms: &[Option<u64>] = if bad_version {
        &[None, Some(1), Some(6)]
    } else {
        &[None, Some(1)]
    };
    for &from_version in froms {
        let options = GetEventsOptions {
            from_version,
            ..GetEventsOptions::default()
        };
        match store.get_events(id, "Task", options).await {
            Err(Error::CorruptEvent {
                global_position, ..
            }) => assert_eq!(global_position, reported_at, "{case}: get_events"),
            other => panic!("{case}: get_events from {from_version:?}: {other:?}"),
        }
    }
    match store.replay_stream(id, "Task", 1).await {
        Err(Error::CorruptEvent {
            global_position, ..
        }) if replayed => assert_eq!(global_position, reported_at, "{case}: replay_stream"),
        Ok(events) if !replayed => assert_eq!(events.len(), 9, "{case}: replay_stream"),
        other => panic!("{case}: replay_stream: {other:?}"),
    }
}
