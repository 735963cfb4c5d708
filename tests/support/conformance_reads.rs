//! Conformance bodies for filtered reads across many pages.

use std::sync::Arc;

use eventsource::prelude::*;
use uuid::Uuid;

use super::{collect, created, TaskCompleted};

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
    let one = || ReadOptions::new().event_types(["TaskCreated"]);
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
