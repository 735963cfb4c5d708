//! Transient and permanent failures are told apart by type: a busy SQLite database and
//! an exhausted PostgreSQL pool are transient `Error::Database` kinds that a retry loop
//! can act on, and the repository's retry helper does.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{DatabaseErrorKind, Error};
use sqlx::{Connection, SqliteConnection};
use support::bank::{AccountCommands, AccountState};
use support::created;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_is_a_transient_busy_error() {
    let dir = support::TempDir::new();
    let path = dir.file("events.db");
    let store = Arc::new(
        SqliteEventStore::options(&path)
            .busy_timeout(Duration::from_millis(50))
            .open()
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    // Another process (here: another connection) holds the write lock.
    let mut holder = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let error = store
        .append_events(id, "Task", vec![created("a")], ExpectedVersion::NoStream)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Database {
                operation: "append_events",
                kind: DatabaseErrorKind::Busy,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert!(error.to_string().contains("(busy)"), "{error}");

    // The repository's retry helper waits the lock out.
    let repo = AggregateRepository::<AccountState>::new(store.clone());
    let account = Uuid::new_v4();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(120)).await;
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        holder
    });
    let saved = repo
        .execute_with_retry(account, 10, |root| root.open("Ada", 10.0))
        .await
        .unwrap();
    assert_eq!(saved.version(), 1);
    drop(release.await.unwrap());
    assert_eq!(
        store.get_stream_version(account, "Account").await.unwrap(),
        1
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_postgres_pool_is_a_transient_pool_timeout() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let store = server
        .options()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let held = store.pool().acquire().await.unwrap();
    let error = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("a")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.database_kind(),
        Some(DatabaseErrorKind::PoolTimeout),
        "{error:?}"
    );
    assert!(error.is_transient());
    drop(held);
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("b")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
}

#[test]
fn permanent_errors_are_not_transient() {
    for error in [
        Error::StoreClosed,
        Error::OptimisticLock {
            aggregate_id: Uuid::nil(),
            aggregate_type: "Task".into(),
            expected: ExpectedVersion::NoStream,
            actual: 1,
        },
        Error::Database {
            operation: "append_events",
            kind: DatabaseErrorKind::StorageFull,
            source: "database or disk is full".into(),
        },
    ] {
        assert!(!error.is_transient(), "{error}");
    }
}

#[tokio::test]
async fn a_save_retried_after_a_lost_acknowledgement_is_stored_once() {
    for (backend, fixture) in support::every_store().await {
        let repo = AggregateRepository::<AccountState>::new(fixture.store.clone());
        let id = Uuid::new_v4();
        let mut account = repo.create_new(id);
        account.open("Ada", 10.0).unwrap();
        // The first save reached the store, but its acknowledgement was lost ...
        fixture
            .store
            .append_events(
                id,
                "Account",
                account.uncommitted_events().to_vec(),
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        // ... and another writer appended after it.
        let mut other = repo.load(id).await.unwrap();
        other.deposit(5.0).unwrap();
        repo.save(&mut other).await.unwrap();
        // Saving the same events again succeeds, and stores nothing twice.
        repo.save(&mut account)
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(
            fixture
                .store
                .get_stream_version(id, "Account")
                .await
                .unwrap(),
            2,
            "{backend}"
        );
    }
}
