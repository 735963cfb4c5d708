//! A full disk: appends fail with a typed `StorageFull` error, and once space is back,
//! every later append in the same process succeeds (no pooled connection is left
//! poisoned by the failed transactions).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::{DatabaseErrorKind, Error, SqliteEventStore};
use support::created;
use uuid::Uuid;

/// A small tmpfs, mounted for one test and unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when this process may not mount one (not root, no tmpfs).
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("eventsource-tmpfs-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|out| out.status.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// One event with a payload of `size` bytes.
fn big(size: usize) -> NewEvent {
    created(&"x".repeat(size))
}

/// Appends from `writers` tasks at once until each of them has failed `failures` times;
/// returns the errors.
async fn fill(store: &Arc<SqliteEventStore>, writers: usize, failures: usize) -> Vec<Error> {
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..10_000 {
                if let Err(error) = store
                    .append_events(
                        Uuid::new_v4(),
                        "Task",
                        vec![big(8_000)],
                        ExpectedVersion::Any,
                    )
                    .await
                {
                    errors.push(error);
                    if errors.len() == failures {
                        break;
                    }
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.expect("writer task"));
    }
    errors
}

/// After the failures, `count` appends from as many tasks at once, each on whatever
/// pooled connection it gets: every one must succeed.
async fn appends_succeed(store: &Arc<SqliteEventStore>, count: usize) {
    let mut tasks = Vec::new();
    for i in 0..count {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_events(
                    Uuid::new_v4(),
                    "Task",
                    vec![created(&format!("after {i}"))],
                    ExpectedVersion::NoStream,
                )
                .await
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        if let Err(error) = task.await.expect("append task") {
            failed.push(error.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {count} appends failed after the space came back: {failed:?}",
        failed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_gives_storage_full_and_no_poisoned_connection() {
    let Some(tmpfs) = Tmpfs::mount("8m") else {
        eprintln!(
            "SKIPPED a_full_filesystem_gives_storage_full_and_no_poisoned_connection: \
             mounting a tmpfs needs root (the error injected with max_page_count below runs anyway)"
        );
        return;
    };
    let store = Arc::new(
        SqliteEventStore::open(tmpfs.path().join("events.db"))
            .await
            .unwrap(),
    );
    store.initialize().await.unwrap();
    // Room to free afterwards (the 40 appends after it write a few pages each to the WAL).
    let ballast = tmpfs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 4_000_000]).unwrap();

    let errors = fill(&store, 8, 3).await;
    assert!(!errors.is_empty());
    for error in &errors {
        assert!(
            matches!(
                error,
                Error::Database {
                    operation: "append_events",
                    kind: DatabaseErrorKind::StorageFull | DatabaseErrorKind::Io,
                    ..
                }
            ),
            "a full disk is a typed error: {error:?}"
        );
        assert!(!error.is_transient(), "{error}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.database_kind() == Some(DatabaseErrorKind::StorageFull)),
        "{errors:?}"
    );

    std::fs::remove_file(&ballast).unwrap();
    appends_succeed(&store, 40).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_at_its_page_limit_gives_storage_full_and_recovers() {
    // The same fault without root: SQLite's max_page_count (set on every connection of
    // the store with `pragma`) makes the database "full".
    let dir = support::TempDir::new();
    let path = dir.file("events.db");
    // A ballast table to free afterwards: its pages go to the free list, which appends
    // reuse without growing the file past the limit.
    let setup = SqliteEventStore::open(&path).await.unwrap();
    setup.initialize().await.unwrap();
    sqlx::query("CREATE TABLE ballast AS SELECT zeroblob(200000) AS b")
        .execute(setup.pool())
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(setup.pool())
        .await
        .unwrap();
    setup.close().await;
    let store = Arc::new(
        SqliteEventStore::options(&path)
            .max_connections(1)
            .pragma("max_page_count", (pages + 20).to_string())
            .open()
            .await
            .unwrap(),
    );
    // SQLite rolls the whole transaction back by itself here, so the append's own
    // ROLLBACK fails: the connection must not be used inside that transaction again.
    let errors = fill(&store, 1, 1).await;
    assert_eq!(errors.len(), 1);
    for error in &errors {
        assert_eq!(
            error.database_kind(),
            Some(DatabaseErrorKind::StorageFull),
            "{error}"
        );
    }
    // Free space inside the limit, through the same store.
    sqlx::query("DROP TABLE ballast")
        .execute(store.pool())
        .await
        .unwrap();
    appends_succeed(&store, 40).await;
    store.close().await;
}
