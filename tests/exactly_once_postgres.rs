//! Exactly-once read models in PostgreSQL: a durable `#[projection]` whose handlers take
//! the transaction's `PgConnection`, run by `PostgresProjectionRunner`. Read-model writes,
//! dead letters and the checkpoint commit together, so a process killed (`kill -9`) at
//! any point and restarted applies every event exactly once; two runners of one name take
//! turns on the checkpoint's row lock instead of applying a batch twice.
#![cfg(feature = "postgres")]

mod support;

use std::process::Command;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    BoxError, CheckpointStore, DeadLetterStore, Error, PostgresProjectionRunner, RetryPolicy,
};
use sqlx::PgConnection;
use support::exactly_once::{catch_up_under_manager, manager_on};
use support::{created, postgres, TaskCreated};
use uuid::Uuid;

/// Counts how often each event was applied, in a table of the store's schema.
#[derive(Debug, Default)]
struct AppliedCounter {
    /// The schema-qualified table.
    table: String,
    delay: Duration,
    fail_title: Option<String>,
}

#[projection(name = "applied")]
impl AppliedCounter {
    #[handles]
    async fn created(
        &mut self,
        event: &TaskCreated,
        ctx: &EventContext<'_>,
        conn: &mut PgConnection,
    ) -> Result<(), BoxError> {
        sqlx::query(&format!(
            "INSERT INTO {} AS a (event_id, title, times) VALUES ($1, $2, 1) \
             ON CONFLICT (event_id) DO UPDATE SET times = a.times + 1",
            self.table
        ))
        .bind(ctx.stored_event().event_id().to_string())
        .bind(&event.title)
        .execute(&mut *conn)
        .await?;
        if self.fail_title.as_deref() == Some(event.title.as_str()) {
            // The write above must be undone with the attempt.
            return Err(format!("cannot apply {}", event.title).into());
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(())
    }

    #[reset]
    async fn clear(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("DELETE FROM {}", self.table))
            .execute(conn)
            .await
            .map(|_| ())
    }
}

/// A store in `schema` (created when new) with the read model's table.
async fn open(url: &str, schema: &str) -> PostgresEventStore {
    let store = PostgresEventStore::options(url)
        .schema(schema)
        .max_connections(4)
        .connect()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE IF NOT EXISTS {schema}.applied \
         (event_id TEXT PRIMARY KEY, title TEXT NOT NULL, times INTEGER NOT NULL)"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    store
}

fn counter(store: &PostgresEventStore) -> AppliedCounter {
    AppliedCounter {
        table: format!("{}.applied", store.schema()),
        ..AppliedCounter::default()
    }
}

async fn append(store: &PostgresEventStore, count: usize) {
    for batch in 0..count.div_ceil(50) {
        let events = (batch * 50..count.min(batch * 50 + 50))
            .map(|i| created(&i.to_string()))
            .collect();
        store
            .append_events(Uuid::new_v4(), "Task", events, ExpectedVersion::NoStream)
            .await
            .unwrap();
    }
}

/// (rows, rows applied more than once).
async fn applied_rows(store: &PostgresEventStore) -> (i64, i64) {
    sqlx::query_as(&format!(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE times > 1) FROM {}.applied",
        store.schema()
    ))
    .fetch_one(store.pool())
    .await
    .unwrap()
}

fn fresh_schema() -> String {
    format!("t_{}", Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_failing_event_is_rolled_back_and_dead_lettered_in_the_batch() {
    let Some(server) = postgres::server() else {
        return;
    };
    let store = open(server.url(), &fresh_schema()).await;
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
        ..counter(&store)
    };
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let mut runner =
        PostgresProjectionRunner::new(store.clone(), projection, "applied").retry(retry);
    assert_eq!(runner.catch_up().await.unwrap(), 2);
    let titles: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT title FROM {}.applied ORDER BY title",
        store.schema()
    ))
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
    assert_eq!(store.get_position("applied").await.unwrap(), Some(3));
    assert_eq!(runner.run_batch().await.unwrap().applied, 0);

    // A checkpoint beyond the head is refused, not read past.
    store.save_progress("applied", 99, None, 0).await.unwrap();
    assert!(matches!(
        runner.run_batch().await,
        Err(Error::InvalidCheckpoint { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_of_one_name_take_turns_and_apply_each_event_once() {
    const EVENTS: usize = 300;
    let Some(server) = postgres::server() else {
        return;
    };
    let store = open(server.url(), &fresh_schema()).await;
    append(&store, EVENTS).await;
    let run = |store: PostgresEventStore| async move {
        let projection = counter(&store);
        let mut runner = PostgresProjectionRunner::new(store, projection, "applied").batch_size(10);
        let mut refused = 0;
        loop {
            match runner.run_batch().await {
                Ok(report) if report.caught_up => return refused,
                Ok(_) => {}
                // The other runner moved the checkpoint between this one's read and its
                // lock: nothing of this batch was committed.
                Err(Error::InvalidConfiguration { message }) => {
                    assert!(message.contains("another runner"), "{message}");
                    refused += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
    };
    let (first, second) = tokio::join!(
        tokio::spawn(run(store.clone())),
        tokio::spawn(run(store.clone()))
    );
    let refused = first.unwrap() + second.unwrap();
    assert_eq!(
        applied_rows(&store).await,
        (EVENTS as i64, 0),
        "every event once ({refused} batches refused)"
    );
    assert_eq!(
        store.get_position("applied").await.unwrap(),
        Some(EVENTS as u64)
    );
}

const CHILD_URL: &str = "EVENTSOURCE_TEST_EXACTLY_ONCE_PG_URL";
const CHILD_SCHEMA: &str = "EVENTSOURCE_TEST_EXACTLY_ONCE_PG_SCHEMA";
/// Set for a child that runs the read model under a `SubscriptionManager`.
const CHILD_UNDER_MANAGER: &str = "EVENTSOURCE_TEST_EXACTLY_ONCE_PG_UNDER_MANAGER";

/// Run by `kill_9_between_events_applies_every_event_exactly_once`: applies the read
/// model slowly, in small batches, until caught up; prints DONE.
#[tokio::test]
#[ignore = "child process of kill_9_between_events_applies_every_event_exactly_once"]
async fn exactly_once_child() {
    let (Ok(url), Ok(schema)) = (std::env::var(CHILD_URL), std::env::var(CHILD_SCHEMA)) else {
        return;
    };
    let store = open(&url, &schema).await;
    let projection = AppliedCounter {
        delay: Duration::from_millis(2),
        ..counter(&store)
    };
    let runner = PostgresProjectionRunner::new(store.clone(), projection, "applied").batch_size(7);
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
    let Some(server) = postgres::server() else {
        return;
    };
    let schema = fresh_schema();
    let store = open(server.url(), &schema).await;
    append(&store, EVENTS).await;
    let child = || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "exactly_once_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, server.url())
            .env(CHILD_SCHEMA, &schema)
            .env(CHILD_UNDER_MANAGER, if under_manager { "1" } else { "" })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Kill the child at different moments: mid-batch, mid-handler, between batches.
    let mut kills = 0;
    let mut killed_mid_run = 0;
    for wait_ms in [250, 380, 510, 300, 440] {
        let mut running = child();
        std::thread::sleep(Duration::from_millis(wait_ms));
        if running.try_wait().unwrap().is_none() {
            running.kill().unwrap(); // SIGKILL: the server rolls the open transaction back
            kills += 1;
        }
        running.wait().unwrap();
        let (rows, doubled) = applied_rows(&store).await;
        assert_eq!(doubled, 0, "after {kills} kills");
        let position = store.get_position("applied").await.unwrap().unwrap_or(0);
        assert_eq!(
            rows as u64, position,
            "the checkpoint moved with the read model"
        );
        if (1..EVENTS as i64).contains(&rows) {
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
    assert_eq!(
        applied_rows(&store).await,
        (EVENTS as i64, 0),
        "every event applied, each exactly once"
    );
    assert_eq!(
        store.get_position("applied").await.unwrap(),
        Some(EVENTS as u64)
    );
}

#[tokio::test]
async fn a_rebuild_resets_and_replays_in_order_with_progress() {
    const EVENTS: u64 = 25;
    let Some(server) = postgres::server() else {
        return;
    };
    let store = open(server.url(), &fresh_schema()).await;
    append(&store, EVENTS as usize).await;
    let mut runner =
        PostgresProjectionRunner::new(store.clone(), counter(&store), "applied").batch_size(10);
    assert_eq!(runner.catch_up().await.unwrap(), EVENTS);
    sqlx::query(&format!(
        "UPDATE {}.applied SET times = 7 WHERE title = '3'",
        store.schema()
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let mut seen = Vec::new();
    assert_eq!(runner.rebuild(|p| seen.push(p)).await.unwrap(), EVENTS);
    assert_eq!(applied_rows(&store).await, (EVENTS as i64, 0));
    let positions: Vec<u64> = seen.iter().map(|p| p.position).collect();
    assert_eq!(positions, [10, 20, 25]);
    let last = seen.last().unwrap();
    assert_eq!((last.head, last.applied), (EVENTS, EVENTS));
    assert_eq!(store.get_position("applied").await.unwrap(), Some(EVENTS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_manager_a_durable_read_model_waits_reports_and_replays_its_dead_letters() {
    let Some(server) = postgres::server() else {
        return;
    };
    let store = open(server.url(), &fresh_schema()).await;
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
        ..counter(&store)
    };
    let manager = manager_on(&store);
    let config = SubscriptionConfig::new().batch_size(2).retry(RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    });
    let runner = PostgresProjectionRunner::new(store.clone(), projection, "applied");
    let applied = manager.subscribe_durable(runner, config).await.unwrap();
    manager.start().await.unwrap();
    applied.wait_for(3, Duration::from_secs(10)).await.unwrap();
    assert!(matches!(
        applied.wait_for(2, Duration::from_secs(1)).await,
        Err(Error::DeadLettered { position: 2, .. })
    ));
    let health = applied.health();
    assert_eq!((health.events_processed, health.events_failed), (2, 1));
    assert_eq!(applied_rows(&store).await, (2, 0));

    applied.runner().lock().await.projection_mut().fail_title = None;
    let letters = store
        .get_failed_events(Some("applied"), None, 10)
        .await
        .unwrap();
    applied.replay_dead_letter(letters[0].id).await.unwrap();
    assert_eq!(applied_rows(&store).await, (3, 0), "replayed once");
    assert!(matches!(
        applied.replay_dead_letter(letters[0].id).await,
        Err(Error::InvalidInput { .. })
    ));
    let saved = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("c")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    applied
        .wait_for(saved.global_position, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(applied_rows(&store).await, (4, 0));
    assert_eq!(
        manager
            .lag("applied")
            .await
            .unwrap()
            .map(|l| l.events_behind),
        Some(0)
    );
    manager.stop().await;
}
