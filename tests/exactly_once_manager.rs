//! Exactly-once SQLite read models under a `SubscriptionManager` (`subscribe_durable`):
//! health, `wait_for` and lag; dead-letter replay in one transaction with its resolution
//! (refused when it could apply an event twice); the starts the manager refuses; and a
//! rebuild resolving the dead letters whose events it applies again.

mod support;

use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{
    DeadLetterStatus, DeadLetterStore, Error, RetryPolicy, SqliteEventStore,
    SqliteProjectionRunner, SubscriptionState,
};
use support::exactly_once::{manager_on, open, AppliedCounter};
use support::{created, TempDir};
use uuid::Uuid;

async fn append_titles(store: &SqliteEventStore, titles: &[&str]) -> u64 {
    let mut last = 0;
    for title in titles {
        last = store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created(title)],
                ExpectedVersion::Any,
            )
            .await
            .unwrap()
            .global_position;
    }
    last
}

async fn titles(store: &SqliteEventStore) -> Vec<String> {
    sqlx::query_scalar("SELECT title FROM applied ORDER BY title")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_manager_a_durable_read_model_waits_reports_and_replays_its_dead_letters() {
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    append_titles(&store, &["a", "poison", "b"]).await;
    let projection = AppliedCounter {
        fail_title: Some("poison".into()),
        ..AppliedCounter::default()
    };
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let manager = manager_on(&store);
    let runner = SqliteProjectionRunner::new(store.clone(), projection, "applied");
    let config = SubscriptionConfig::new().batch_size(2).retry(retry);
    let applied = manager.subscribe_durable(runner, config).await.unwrap();
    manager.start().await.unwrap();

    applied.wait_for(3, Duration::from_secs(10)).await.unwrap();
    match applied.wait_for(2, Duration::from_secs(1)).await {
        Err(Error::DeadLettered {
            subscription,
            position,
            error,
            ..
        }) => {
            assert_eq!((subscription.as_str(), position), ("applied", 2));
            assert!(error.contains("cannot apply poison"), "{error}");
        }
        other => panic!("expected DeadLettered, got {other:?}"),
    }
    assert_eq!(titles(&store).await, ["a", "b"]);
    let health = applied.health();
    assert_eq!(
        (
            health.events_processed,
            health.events_failed,
            health.position
        ),
        (2, 1, 3)
    );
    assert!(health
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("poison")));
    assert_eq!(manager.health(), [health]);

    // Live: woken by the bus, committed with its checkpoint.
    let next = append_titles(&store, &["c"]).await;
    manager
        .wait_for(next, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(titles(&store).await, ["a", "b", "c"]);
    assert_eq!(applied.health().state, SubscriptionState::Live);
    let lag = manager.lag("applied").await.unwrap().unwrap();
    assert_eq!(lag.events_behind, 0);

    // The fix, then the replay: applied once, in one transaction with its resolution.
    applied.runner().lock().await.projection_mut().fail_title = None;
    let letter = manager
        .dead_letters()
        .get_failed_events(Some("applied"), None, 10)
        .await
        .unwrap();
    assert_eq!(letter.len(), 1);
    applied.replay_dead_letter(letter[0].id).await.unwrap();
    assert_eq!(titles(&store).await, ["a", "b", "c", "poison"]);
    // Applied now: waiting for it no longer says dead-lettered.
    applied.wait_for(2, Duration::from_secs(1)).await.unwrap();
    let resolved = store.get_failed_event(letter[0].id).await.unwrap().unwrap();
    assert_eq!(resolved.status, DeadLetterStatus::Resolved);
    assert_eq!(resolved.resolution.as_deref(), Some("replayed"));
    // Twice would apply it twice: refused.
    assert!(matches!(
        applied.replay_dead_letter(letter[0].id).await,
        Err(Error::InvalidInput { .. })
    ));
    manager.stop().await;
    assert_eq!(applied.health().state, SubscriptionState::Stopped);
    // Restarted, it goes on from its checkpoint: nothing applied again.
    manager.start().await.unwrap();
    let last = append_titles(&store, &["d"]).await;
    applied
        .wait_for(last, Duration::from_secs(10))
        .await
        .unwrap();
    let times: i64 = sqlx::query_scalar("SELECT MAX(times) FROM applied")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((titles(&store).await.len(), times), (5, 1));
    manager.stop().await;
}

#[tokio::test]
async fn a_replay_fails_loudly_and_keeps_the_dead_letter() {
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    append_titles(&store, &["a", "poison"]).await;
    let projection = AppliedCounter {
        fail_title: Some("poison".into()),
        ..AppliedCounter::default()
    };
    let mut runner = SqliteProjectionRunner::new(store.clone(), projection, "applied")
        .retry(RetryPolicy::no_retry());
    // A dead letter of an event the read model has not reached: refused (the runner
    // applies it when it gets there).
    let events: Vec<StoredEvent> = {
        use futures::StreamExt;
        store
            .read_all(ReadOptions::new())
            .map(Result::unwrap)
            .collect()
            .await
    };
    let id = store
        .add_failed_event(eventsource::FailedEvent::for_event(
            "applied", &events[1], "early", 1,
        ))
        .await
        .unwrap();
    let refused = runner.replay_dead_letter(id).await;
    assert!(
        matches!(&refused, Err(Error::InvalidInput { message }) if message.contains("before the event")),
        "{refused:?}"
    );
    // Caught up, the poison is dead-lettered again (the same letter); a replay that fails
    // again writes nothing and counts the attempt.
    runner.catch_up().await.unwrap();
    let before = store.get_failed_event(id).await.unwrap().unwrap();
    match runner.replay_dead_letter(id).await {
        Err(Error::HandlerFailed {
            projection,
            global_position,
            ..
        }) => assert_eq!((projection.as_str(), global_position), ("applied", 2)),
        other => panic!("expected HandlerFailed, got {other:?}"),
    }
    let after = store.get_failed_event(id).await.unwrap().unwrap();
    assert_eq!(after.failed.retry_count, before.failed.retry_count + 1);
    assert_eq!(after.status, DeadLetterStatus::Failed);
    assert_eq!(titles(&store).await, ["a"]);
    // Another projection's dead letter is not this one's to replay.
    let other = store
        .add_failed_event(eventsource::FailedEvent::for_event(
            "other", &events[0], "x", 1,
        ))
        .await
        .unwrap();
    assert!(matches!(
        runner.replay_dead_letter(other).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn the_manager_refuses_a_durable_start_it_cannot_keep() {
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    append_titles(&store, &["a"]).await;
    let manager = manager_on(&store);
    let runner =
        || SqliteProjectionRunner::new(store.clone(), AppliedCounter::default(), "applied");
    let refused = manager
        .subscribe_durable(
            runner(),
            SubscriptionConfig::new().start_from(StartFrom::Beginning),
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidConfiguration { message }) if message.contains("rebuild")),
        "{refused:?}"
    );
    // A checkpoint beyond the head (another database's): start says so, nothing runs.
    eventsource::CheckpointStore::save_progress(&store, "applied", 99, None, 0)
        .await
        .unwrap();
    manager
        .subscribe_durable(runner(), SubscriptionConfig::new())
        .await
        .unwrap();
    assert!(matches!(
        manager.start().await,
        Err(Error::InvalidCheckpoint { .. })
    ));
    assert_eq!(manager.health()[0].state, SubscriptionState::Pending);
    assert!(titles(&store).await.is_empty());
    assert!(matches!(
        manager
            .subscribe_durable(runner(), SubscriptionConfig::new())
            .await,
        Err(Error::InvalidConfiguration { .. })
    ));
    manager.stop().await;
}

#[tokio::test]
async fn a_rebuild_resolves_the_dead_letters_whose_events_it_applies_again() {
    let dir = TempDir::new();
    let store = open(&dir.file("events.db")).await;
    append_titles(&store, &["a", "poison", "b"]).await;
    let projection = AppliedCounter {
        fail_title: Some("poison".into()),
        ..AppliedCounter::default()
    };
    let mut runner = SqliteProjectionRunner::new(store.clone(), projection, "applied")
        .retry(RetryPolicy::no_retry());
    runner.catch_up().await.unwrap();
    let id = store
        .get_failed_events(Some("applied"), None, 10)
        .await
        .unwrap()[0]
        .id;
    // Fixed, then rebuilt: the poison is applied by the rebuild, once.
    runner.projection_mut().fail_title = None;
    runner.rebuild(|_| {}).await.unwrap();
    assert_eq!(titles(&store).await, ["a", "b", "poison"]);
    let letter = store.get_failed_event(id).await.unwrap().unwrap();
    assert_eq!(
        (letter.status, letter.resolution.as_deref()),
        (DeadLetterStatus::Resolved, Some("rebuilt"))
    );
    // So it cannot be replayed on top.
    assert!(matches!(
        runner.replay_dead_letter(id).await,
        Err(Error::InvalidInput { .. })
    ));
    // An event that fails again in a rebuild is dead-lettered again.
    runner.projection_mut().fail_title = Some("b".into());
    runner.rebuild(|_| {}).await.unwrap();
    let failed = store
        .get_failed_events(Some("applied"), Some(DeadLetterStatus::Failed), 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].failed.global_position, 3);
    let times: i64 = sqlx::query_scalar("SELECT MAX(times) FROM applied")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(times, 1);
}
