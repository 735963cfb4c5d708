//! The SQLite store's own connections (rusqlite, beside sqlx's pool): an append that
//! finds the write lock held elsewhere waits for it off the runtime's threads, with
//! group commit on and off; the native reader sees what other connections commit; and
//! `SqliteStoreOptions::pragma` reaches every connection or is refused.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{Error, SqliteStoreOptions};
use futures::TryStreamExt;
use sqlx::Connection;
use support::{created, TempDir};
use uuid::Uuid;

/// Another connection to `path`, holding the database's write lock (`BEGIN IMMEDIATE`)
/// until it commits or rolls back.
async fn hold_write_lock(path: &std::path::Path) -> sqlx::SqliteConnection {
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    other
}

/// Holds the database's write lock from another connection, while a store
/// appends; the append must wait, not fail, and the runtime's one thread must keep
/// running other tasks meanwhile (a ticker counts).
async fn append_while_locked(group_commit: bool) {
    let dir = TempDir::new();
    let path = dir.file("events.db");
    let store = SqliteStoreOptions::new(&path)
        .group_commit(group_commit)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let mut other = hold_write_lock(&path).await;

    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let id = Uuid::new_v4();
    let append = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append_events(
                    id,
                    "Task",
                    vec![created("waits")],
                    ExpectedVersion::NoStream,
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!append.is_finished(), "the append waits for the lock");
    assert!(
        ticks.load(Ordering::Relaxed) >= 10,
        "the runtime ran other tasks while the append waited: {} ticks",
        ticks.load(Ordering::Relaxed)
    );
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let result = append.await.unwrap().unwrap();
    assert_eq!(result.new_version, 1);
    ticker.abort();
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 1);
    other.close().await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_append_waits_for_a_lock_held_elsewhere_off_the_runtime_thread() {
    append_while_locked(true).await;
    append_while_locked(false).await;
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_a_transient_busy_error() {
    let dir = TempDir::new();
    let path = dir.file("events.db");
    let store = SqliteStoreOptions::new(&path)
        .busy_timeout(Duration::from_millis(200))
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let mut other = hold_write_lock(&path).await;
    let error = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("refused")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(matches!(error, Error::Database { .. }), "{error:?}");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    // Nothing was written, and the store goes on.
    assert_eq!(store.get_global_position().await.unwrap(), 0);
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("then")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    other.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn reads_see_what_other_connections_commit() {
    let dir = TempDir::new();
    let path = dir.file("events.db");
    let store = SqliteEventStore::open(&path).await.unwrap();
    store.initialize().await.unwrap();
    let other = SqliteEventStore::open(&path).await.unwrap();
    for n in 0..3u64 {
        let id = Uuid::new_v4();
        other
            .append_events(id, "Task", vec![created("x")], ExpectedVersion::NoStream)
            .await
            .unwrap();
        let events: Vec<_> = store
            .read_all(ReadOptions::new())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events.len() as u64, n + 1);
        assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 1);
        let stream: Vec<_> = store
            .read_stream(&StreamId::new(id, "Task"), ReadOptions::new())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(stream.len(), 1);
    }
    other.close().await;
    store.close().await;
    // Closed: every read and append is a typed error.
    let read: Result<Vec<_>, _> = store.read_all(ReadOptions::new()).try_collect().await;
    assert!(matches!(read, Err(Error::StoreClosed)), "{read:?}");
    let append = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("late")],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(matches!(append, Err(Error::StoreClosed)), "{append:?}");
}

#[tokio::test]
async fn pragmas_reach_every_connection_or_are_refused() {
    let dir = TempDir::new();
    let store = SqliteStoreOptions::new(dir.file("events.db"))
        .pragma("temp_store", "2")
        .open()
        .await
        .unwrap();
    let value: i64 = sqlx::query_scalar("PRAGMA temp_store")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(value, 2);
    store.close().await;
    for (name, value) in [
        ("temp_store; DROP TABLE events", "2"),
        ("temp_store", "2; DROP TABLE events"),
        ("", "1"),
        ("journal_mode", "delete"),
        ("cache_size", "100"),
        ("busy_timeout", "1"),
    ] {
        let refused = SqliteStoreOptions::new(dir.file("other.db"))
            .pragma(name, value)
            .open()
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidConfiguration { .. })),
            "{name} = {value}: {refused:?}"
        );
    }
}

/// A replay reads on from page to page while its caller keeps up, and holds no reader
/// connection while its stream is held and not polled: with one reader, another read
/// goes on meanwhile; then the replay reads on, whole and in order. A replay dropped half
/// way leaves the store reading and closing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_held_and_not_polled_holds_no_reader() {
    let dir = TempDir::new();
    let store = SqliteStoreOptions::new(dir.file("events.db"))
        .max_connections(1)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
    for batch in 0..5u64 {
        let events = (0..1000)
            .map(|i| created(&format!("{batch}-{i}")))
            .collect();
        store
            .append_events(id, "Task", events, ExpectedVersion::from(batch * 1000))
            .await
            .unwrap();
    }
    store
        .append_events(
            other,
            "Task",
            vec![created("other")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let read_other = || async {
        tokio::time::timeout(
            Duration::from_secs(30),
            store.get_events(other, "Task", GetEventsOptions::default()),
        )
        .await
        .expect("a read waited for a replay held and not polled")
        .unwrap()
    };

    let mut pages = store.replay_stream_pages(id, "Task", 0);
    let first = pages.try_next().await.unwrap().unwrap();
    assert_eq!(first.len(), 1000);
    // Give the replay's read time to get ahead and find its caller behind.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(read_other().await.events.len(), 1);
    let mut versions: Vec<u64> = first.iter().map(|e| e.version).collect();
    while let Some(page) = pages.try_next().await.unwrap() {
        versions.extend(page.iter().map(|e| e.version));
    }
    assert_eq!(versions, (1..=5000).collect::<Vec<u64>>());

    let mut pages = store.replay_stream_pages(id, "Task", 0);
    pages.try_next().await.unwrap().unwrap();
    drop(pages);
    assert_eq!(read_other().await.events.len(), 1);
    store.close().await;
}
