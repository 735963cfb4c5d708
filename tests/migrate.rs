//! `migrate_sqlite_to_postgres`: every event copied as it was (ids, positions, versions,
//! timestamps, metadata, raw payloads), in batches with progress, resumable after an
//! interruption, verified by count and checksum; targets that hold other events and
//! unreadable source rows stop it with a typed error.
#![cfg(all(feature = "postgres", feature = "sqlite"))]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use eventsource::prelude::*;
use eventsource::{
    migrate_sqlite_to_postgres, CheckpointStore, Error, MigrationOptions, MigrationProgress,
    SqliteEventStore,
};
use futures::TryStreamExt;
use support::postgres::server;
use support::{created, TaskCompleted, TempDir};
use uuid::Uuid;

/// A SQLite store with `streams` streams of 3 events each, with every envelope field
/// set, and one event of a type no Rust type is registered for.
async fn source(dir: &TempDir, streams: usize) -> SqliteEventStore {
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    let tenant = Uuid::new_v4();
    for i in 0..streams {
        let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::microseconds(i as i64 * 1001);
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![
                    created(&format!("task {i}"))
                        .with_tenant_id(tenant)
                        .with_actor_id(format!("user-{i}"))
                        .with_correlation_id(Uuid::new_v4())
                        .with_causation_id(Uuid::new_v4())
                        .with_metadata("source", "import")
                        .with_metadata("nested", serde_json::json!({"z": 1, "a": [1.5, null]}))
                        .with_timestamp(at),
                    NewEvent::raw(
                        "LegacyNote",
                        2,
                        serde_json::json!({"text": "kept as stored", "b": 2, "a": 1}),
                    ),
                    NewEvent::new(TaskCompleted {}),
                ],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    store
}

async fn all(store: &dyn EventStore) -> Vec<StoredEvent> {
    store
        .read_all(ReadOptions::new())
        .try_collect()
        .await
        .unwrap()
}

fn same(a: &StoredEvent, b: &StoredEvent) {
    assert_eq!(a.envelope, b.envelope);
    assert_eq!(
        (a.global_position, a.stream_position, a.stored_at),
        (b.global_position, b.stream_position, b.stored_at)
    );
    assert_eq!(
        a.payload.to_json_value().unwrap(),
        b.payload.to_json_value().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_copied_as_it_was_and_verified() {
    let Some(server) = server() else { return };
    let dir = TempDir::new();
    let sqlite = source(&dir, 20).await;
    // Every digit of a number is kept: the payload goes over as text.
    let long_number = "123456789012345678901234567890.000000000000000000001";
    sqlx::query(&format!(
        "UPDATE events SET payload = '{{\"n\": {long_number}, \"text\": \"kept as stored\"}}' \
         WHERE global_position = 2"
    ))
    .execute(sqlite.pool())
    .await
    .unwrap();
    let last_of_first = all(&sqlite).await[0].event_id();
    sqlite
        .save_progress("ledger", 30, Some((last_of_first, "TaskCreated")), 30)
        .await
        .unwrap();
    let postgres = server.store().await;
    let reports = Arc::new(Mutex::new(Vec::<MigrationProgress>::new()));
    let sink = reports.clone();
    let report = migrate_sqlite_to_postgres(
        &sqlite,
        &postgres,
        MigrationOptions::new()
            .batch_size(7)
            .on_progress(move |p| sink.lock().unwrap().push(*p)),
    )
    .await
    .unwrap();
    assert_eq!((report.source_events, report.target_events), (60, 60));
    assert_eq!(
        (report.copied, report.skipped, report.checkpoints),
        (60, 0, 1)
    );
    assert_eq!(report.checksum.len(), 16);
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 9, "60 events in batches of 7");
    assert!(reports
        .windows(2)
        .all(|w| w[0].read < w[1].read && w[0].position < w[1].position));
    assert_eq!(
        reports.last().map(|p| (p.read, p.total, p.position)),
        Some((60, 60, 60))
    );

    let (from, to) = (all(&sqlite).await, all(&postgres).await);
    assert_eq!(from.len(), to.len());
    for (a, b) in from.iter().zip(&to) {
        same(a, b);
    }
    assert!(to[0].is_typed(), "registered types decode in the target");
    let n: String = sqlx::query_scalar(&format!(
        "SELECT payload->>'n' FROM \"{}\".events WHERE global_position = 2",
        postgres.schema()
    ))
    .fetch_one(postgres.pool())
    .await
    .unwrap();
    assert_eq!(n, long_number);
    let (a, b) = (
        sqlite.get_checkpoint("ledger").await.unwrap().unwrap(),
        postgres.get_checkpoint("ledger").await.unwrap().unwrap(),
    );
    assert_eq!(a, b, "checkpoints are copied as they are");
    assert_eq!(to[1].raw().unwrap().payload["text"], "kept as stored");

    // The target goes on where the source stopped: positions and stream versions.
    let stream = to[0].aggregate_id();
    let next = postgres
        .append_events(
            stream,
            "Task",
            vec![created("after")],
            ExpectedVersion::Exact(3),
        )
        .await
        .unwrap();
    assert_eq!((next.new_version, next.global_position), (4, 61));

    // Running it again copies nothing: the events are there. (The target has one more
    // event now than the source, so the verification says so.)
    let again = migrate_sqlite_to_postgres(&sqlite, &postgres, MigrationOptions::new()).await;
    match again {
        Err(Error::Migration { message }) => assert!(message.contains("61"), "{message}"),
        other => panic!("expected a failed verification, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_resumes_and_skips_what_is_there() {
    let Some(server) = server() else { return };
    let dir = TempDir::new();
    let sqlite = source(&dir, 50).await;
    let postgres = server.store().await;
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let tx = Mutex::new(tx);
    let (from, to) = (sqlite.clone(), postgres.clone());
    let run = tokio::spawn(async move {
        migrate_sqlite_to_postgres(
            &from,
            &to,
            MigrationOptions::new()
                .batch_size(10)
                .on_progress(move |p| {
                    let _ = tx.lock().unwrap().send(p.read);
                    if p.read == 20 {
                        // Hold the migration here until it is aborted.
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }),
        )
        .await
    });
    while rx.recv().unwrap() < 20 {}
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let partial = postgres.get_global_position().await.unwrap();
    assert!(
        (20..150).contains(&partial),
        "interrupted after {partial} events"
    );

    let report =
        migrate_sqlite_to_postgres(&sqlite, &postgres, MigrationOptions::new().batch_size(10))
            .await
            .unwrap();
    assert_eq!(report.target_events, 150);
    assert_eq!(report.copied + report.skipped, 150);
    assert!(report.skipped >= 20, "{report:?}");
    let (a, b) = (all(&sqlite).await, all(&postgres).await);
    for (a, b) in a.iter().zip(&b) {
        same(a, b);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_other_events_is_refused() {
    let Some(server) = server() else { return };
    let dir = TempDir::new();
    let sqlite = source(&dir, 2).await;
    let postgres = server.store().await;
    postgres
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("already here")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let result = migrate_sqlite_to_postgres(&sqlite, &postgres, MigrationOptions::new()).await;
    assert!(matches!(result, Err(Error::Migration { .. })), "{result:?}");
    assert_eq!(
        postgres.get_global_position().await.unwrap(),
        1,
        "nothing written"
    );
    let result =
        migrate_sqlite_to_postgres(&sqlite, &postgres, MigrationOptions::new().batch_size(0)).await;
    assert!(
        matches!(result, Err(Error::InvalidConfiguration { .. })),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_source_row_stops_the_migration_and_names_it() {
    let Some(server) = server() else { return };
    let dir = TempDir::new();
    let sqlite = source(&dir, 4).await;
    sqlx::query("UPDATE events SET aggregate_id = 'not-a-uuid' WHERE global_position = 5")
        .execute(sqlite.pool())
        .await
        .unwrap();
    let postgres = server.store().await;
    let result =
        migrate_sqlite_to_postgres(&sqlite, &postgres, MigrationOptions::new().batch_size(2)).await;
    assert!(
        matches!(
            result,
            Err(Error::CorruptEvent {
                global_position: 5,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        postgres.get_global_position().await.unwrap(),
        4,
        "the batches before it are kept"
    );
}
