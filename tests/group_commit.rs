//! Group commit on SQLite: an append that fails in the database fails alone, and the
//! store without group commit keeps every append's outcome too.

mod support;

use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::testing::conformance as conformance_writers;
use eventsource::{Error, SqliteEventStore};
use support::{created, TaskCompleted, TempDir};
use uuid::Uuid;

/// A database that refuses `TaskCompleted` rows (a trigger): a group holding one fails
/// in SQL as a whole, is written again one append at a time, and only the refused append
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_of_an_append_failing_in_sql_are_stored() {
    let dir = TempDir::new();
    let store = Arc::new(
        SqliteEventStore::open(dir.file("refusing.db"))
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_completed BEFORE INSERT ON events \
         WHEN NEW.event_type = 'TaskCompleted' BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    const TASKS: usize = 48;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut outcomes = Vec::new();
                for round in 0..4 {
                    let refused = (i + round) % 8 == 0;
                    let event = if refused {
                        NewEvent::new(TaskCompleted {})
                    } else {
                        created(&format!("{i}-{round}"))
                    };
                    let result = store
                        .append_events(
                            Uuid::new_v4(),
                            "Task",
                            vec![event],
                            ExpectedVersion::NoStream,
                        )
                        .await;
                    outcomes.push((refused, result));
                }
                outcomes
            })
        })
        .collect();
    let (mut stored, mut refused) = (0, 0);
    for task in tasks {
        for (should_fail, result) in task.await.unwrap() {
            match (should_fail, result) {
                (false, Ok(result)) => {
                    assert_eq!(result.new_version, 1);
                    stored += 1;
                }
                (true, Err(Error::Database { source, .. })) => {
                    assert!(
                        source.to_string().contains("refused by a trigger"),
                        "{source}"
                    );
                    refused += 1;
                }
                other => panic!("unexpected outcome: {other:?}"),
            }
        }
    }
    assert_eq!(refused, TASKS * 4 / 8);
    assert_eq!(stored, TASKS * 4 - refused);
    assert_eq!(store.get_global_position().await.unwrap(), stored as u64);
    store.close().await;
}

/// `group_commit(false)`: every append its own transaction, the same outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_group_commit_stale_appends_fail_alone() {
    let dir = TempDir::new();
    let store = SqliteEventStore::options(dir.file("alone.db"))
        .group_commit(false)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    conformance_writers::stale_appends_fail_alone(Arc::new(store)).await;
}
