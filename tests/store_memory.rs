//! The conformance suite on `InMemoryEventStore`, and its test helpers.

mod support;

use eventsource::prelude::*;
use support::{created, memory_fixture};
use uuid::Uuid;

eventsource::conformance_suite!(memory_fixture);

#[tokio::test]
async fn test_helpers_list_count_and_clear() {
    let store = InMemoryEventStore::new();
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    store
        .append_events(
            a,
            "Task",
            vec![created("a1"), created("a2")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store
        .append_events(b, "Task", vec![created("b1")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    store
        .append_events(
            a,
            "Project",
            vec![support::noted("p1")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    assert_eq!(store.get_event_count(), 4);
    assert_eq!(store.get_aggregate_ids(), [a, b]);
    let all = store.get_all_events();
    assert_eq!(
        all.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    store.clear();
    assert_eq!(store.get_event_count(), 0);
    assert!(store.get_aggregate_ids().is_empty());
    assert_eq!(store.get_global_position().await.unwrap(), 0);
    // Positions start again at 1 after a clear.
    let result = store
        .append_events(a, "Task", vec![created("again")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert_eq!(result.global_position, 1);
}
