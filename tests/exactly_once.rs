//! Exactly-once read models in SQLite (a durable `#[projection]` whose handlers take the
//! transaction's connection): read-model writes, dead letters and the checkpoint
//! commit together, so a process killed (`kill -9`) at any point and restarted applies
//! every event exactly once. (Under a `SubscriptionManager`, with dead-letter replay:
//! `tests/exactly_once_manager.rs`.)

mod support;

use std::process::Command;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{DeadLetterStore, RetryPolicy, SqliteProjectionRunner};
use sqlx::SqliteConnection;
use support::exactly_once::{catch_up_under_manager, open, AppliedCounter};
use support::{created, TaskCreated, TempDir};
use uuid::Uuid;
#[tokio::test]
async fn a_failing_event_is_rolled_back_and_dead_lettered_in_the_batch() {
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    for title in ["a", "poison", "b"] {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(title)],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
    }
    let projection = AppliedCounter {
        fail_title: Some("poison".into()),
        ..AppliedCounter::default()
    };
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let mut runner = SqliteProjectionRunner::new(store.clone(), projection, "applied").retry(retry);
    assert_eq!(runner.catch_up().await.unwrap(), 2);
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM applied ORDER BY title")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(
        titles,
        ["a", "b"],
        "the failed attempts' writes were rolled back"
    );
    let letters = store
        .get_failed_events(Some("applied"), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (
            letters[0].failed.global_position,
            letters[0].failed.retry_count
        ),
        (2, 2)
    );
    assert_eq!(
        eventsource::CheckpointStore::get_position(&store, "applied")
            .await
            .unwrap(),
        Some(3)
    );
    // Nothing more to do.
    assert_eq!(runner.run_batch().await.unwrap().applied, 0);
}

const CHILD_DB: &str = "EVENTSOURCE_TEST_EXACTLY_ONCE_DB";
/// Set for a child that runs the read model under a `SubscriptionManager`.
const CHILD_UNDER_MANAGER: &str = "EVENTSOURCE_TEST_EXACTLY_ONCE_UNDER_MANAGER";

/// Run by `kill_9_between_events_applies_every_event_exactly_once`: applies the read
/// model slowly, in small batches, until caught up; prints DONE.
#[tokio::test]
#[ignore = "child process of kill_9_between_events_applies_every_event_exactly_once"]
async fn exactly_once_child() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = open(std::path::Path::new(&db)).await;
    let projection = AppliedCounter {
        delay: Duration::from_millis(2),
        ..AppliedCounter::default()
    };
    let runner = SqliteProjectionRunner::new(store.clone(), projection, "applied").batch_size(7);
    if std::env::var(CHILD_UNDER_MANAGER).is_ok_and(|v| !v.is_empty()) {
        // The same runner under a SubscriptionManager: started, caught up, stopped.
        catch_up_under_manager(&store, runner, 7).await;
    } else {
        let mut runner = runner;
        runner.catch_up().await.unwrap();
    }
    println!("DONE");
}

#[tokio::test]
async fn kill_9_between_events_applies_every_event_exactly_once() {
    kill_9_and_restart(false).await;
}

#[tokio::test]
async fn kill_9_under_the_subscription_manager_applies_every_event_exactly_once() {
    kill_9_and_restart(true).await;
}

/// Kills a child applying the read model (directly, or under a manager) five times at
/// different moments, checking after each that no event was applied twice and the
/// checkpoint moved with the read model; then lets one finish.
async fn kill_9_and_restart(under_manager: bool) {
    const EVENTS: usize = 400;
    let dir = TempDir::new();
    let path = dir.file("events.db");
    let store = open(&path).await;
    for batch in 0..(EVENTS / 50) {
        let events = (0..50)
            .map(|i| created(&format!("{}", batch * 50 + i)))
            .collect();
        store
            .append_events(Uuid::new_v4(), "Task", events, ExpectedVersion::NoStream)
            .await
            .unwrap();
    }
    let child = || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "exactly_once_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &path)
            .env(CHILD_UNDER_MANAGER, if under_manager { "1" } else { "" })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Kill the child at different moments: mid-batch, mid-handler, between batches.
    let mut kills = 0;
    let mut killed_mid_run = 0;
    for wait_ms in [150, 230, 310, 170, 260] {
        let mut running = child();
        std::thread::sleep(Duration::from_millis(wait_ms));
        if running.try_wait().unwrap().is_none() {
            running.kill().unwrap(); // SIGKILL: no destructor, no rollback by us
            kills += 1;
        }
        running.wait().unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM applied")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let doubled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM applied WHERE times > 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(doubled, 0, "after {kills} kills");
        let position = eventsource::CheckpointStore::get_position(&store, "applied")
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(
            applied as u64, position,
            "the checkpoint moved with the read model"
        );
        if (1..EVENTS as i64).contains(&applied) {
            killed_mid_run += 1;
        }
    }
    assert!(
        kills >= 2 && killed_mid_run >= 1,
        "the child was killed {kills} times, {killed_mid_run} of them with part of the work done"
    );
    // Restart and finish.
    let finished = child().wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&finished.stdout).contains("DONE"));
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT event_id, times FROM applied")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), EVENTS, "every event applied");
    assert!(
        rows.iter().all(|(_, times)| *times == 1),
        "each exactly once"
    );
    assert_eq!(
        eventsource::CheckpointStore::get_position(&store, "applied")
            .await
            .unwrap(),
        Some(EVENTS as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_runner_goes_live_and_stops() {
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    let bus = eventsource::InMemoryEventBus::new();
    let handle = SqliteProjectionRunner::new(store.clone(), AppliedCounter::default(), "applied")
        .spawn(Some(&bus), Duration::from_secs(30));
    // Let the first (empty) catch-up finish, so only the bus can wake it for what follows.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while eventsource::CheckpointStore::get_position(&store, "applied")
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut events = Vec::new();
    for title in ["live 1", "live 2"] {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(title)],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
        events
            .extend(support::collect(store.read_all(ReadOptions::new().backward().limit(1))).await);
    }
    // The bus wakes it long before the 30 s poll.
    eventsource::EventBus::publish(&bus, &events).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let position = eventsource::CheckpointStore::get_position(&store, "applied")
            .await
            .unwrap();
        if position == Some(2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runner did not go live"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stop().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM applied")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_handler_that_fails_once_is_retried_outside_the_write_lock() {
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    for title in ["a", "flaky", "b"] {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(title)],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
    }
    let projection = AppliedCounter {
        fail_title: Some("flaky".into()),
        ..AppliedCounter::default()
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    };
    let mut runner = SqliteProjectionRunner::new(store.clone(), projection, "applied").retry(retry);
    let report = runner.run_batch().await.unwrap();
    assert_eq!(
        (report.applied, report.position),
        (1, 1),
        "the batch ends before the failing event"
    );
    assert_eq!(report.retry_after, Some(Duration::from_millis(200)));
    // During the backoff the database is free: an append goes through at once.
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("c")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let report = runner.run_batch().await.unwrap();
    assert_eq!(
        report.retry_after,
        Some(Duration::from_millis(400)),
        "second failure, longer wait"
    );
    let report = runner.run_batch().await.unwrap();
    assert_eq!(
        (report.dead_lettered, report.applied),
        (1, 2),
        "third failure: dead-lettered, then the rest"
    );
    assert!(report.caught_up);
    assert_eq!(
        store
            .get_failed_events(Some("applied"), None, 10)
            .await
            .unwrap()[0]
            .failed
            .retry_count,
        3
    );
}

/// A durable read model with no `#[reset]`: it cannot be rebuilt.
#[derive(Debug, Default)]
struct NoReset;

#[projection(name = "no-reset")]
impl NoReset {
    #[handles]
    async fn created(&mut self, _event: &TaskCreated, conn: &mut SqliteConnection) {
        let _ = conn;
    }
}

#[tokio::test]
async fn a_rebuild_resets_and_replays_in_order_with_progress() {
    const EVENTS: u64 = 25;
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    for i in 0..EVENTS {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(&i.to_string())],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    let mut runner =
        SqliteProjectionRunner::new(store.clone(), AppliedCounter::default(), "applied")
            .batch_size(10);
    assert_eq!(runner.catch_up().await.unwrap(), EVENTS);
    // The read model drifts (a bug, a hand edit): the rebuild starts it over.
    sqlx::query("UPDATE applied SET times = 7 WHERE title = '3'")
        .execute(store.pool())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let applied = runner.rebuild(|p| seen.push(p)).await.unwrap();
    assert_eq!(applied, EVENTS);
    let rows: Vec<i64> = sqlx::query_scalar("SELECT times FROM applied")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, EVENTS);
    assert!(rows.iter().all(|t| *t == 1), "{rows:?}");
    let positions: Vec<u64> = seen.iter().map(|p| p.position).collect();
    assert_eq!(positions, [10, 20, 25]);
    let last = seen.last().unwrap();
    assert_eq!(
        (last.head, last.applied, last.dead_lettered),
        (EVENTS, EVENTS, 0)
    );
    assert_eq!(
        eventsource::CheckpointStore::get_position(&store, "applied")
            .await
            .unwrap(),
        Some(EVENTS)
    );

    // Without a #[reset]: refused, and nothing changed.
    let mut no_reset = SqliteProjectionRunner::new(store.clone(), NoReset, "no-reset");
    no_reset.catch_up().await.unwrap();
    let refused = no_reset.rebuild(|_| {}).await;
    assert!(
        matches!(&refused, Err(eventsource::Error::ResetFailed { projection, .. }) if projection == "no-reset"),
        "{refused:?}"
    );
    assert_eq!(
        eventsource::CheckpointStore::get_position(&store, "no-reset")
            .await
            .unwrap(),
        Some(EVENTS)
    );
}
