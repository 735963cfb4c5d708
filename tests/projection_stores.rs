//! The projection macro's dispatch, and the checkpoint and dead-letter stores on memory,
//! SQLite and PostgreSQL.

mod support;

use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::{
    lag_metrics, replay_dead_letter, BoxError, CheckpointStore, DeadLetterStatus, DeadLetterStore,
    Error, EventContext, FailedEvent, InMemoryCheckpointStore, InMemoryDeadLetterStore, Projection,
    SqliteEventStore,
};
use support::{created, TaskCompleted, TaskCreated};
use uuid::Uuid;

#[derive(Debug, Default)]
struct Recorder {
    seen: Vec<(String, u64, u64)>,
    fail_on: Option<String>,
    resets: u32,
}

#[projection(name = "recorder")]
impl Recorder {
    #[handles]
    async fn created(
        &mut self,
        event: &TaskCreated,
        ctx: &EventContext<'_>,
    ) -> Result<(), BoxError> {
        if self.fail_on.as_deref() == Some(event.title.as_str()) {
            return Err(format!("cannot handle {}", event.title).into());
        }
        self.seen.push((
            event.title.clone(),
            ctx.global_position(),
            ctx.stream_position(),
        ));
        Ok(())
    }

    #[handles]
    async fn completed(&mut self, _event: &TaskCompleted) {
        self.seen.push(("completed".into(), 0, 0));
    }

    #[reset]
    async fn clear(&mut self) {
        self.seen.clear();
        self.resets += 1;
    }
}

#[derive(Debug, Default)]
struct NoReset;

#[projection]
impl NoReset {
    #[handles]
    async fn created(&mut self, _event: &TaskCreated) {}
}

#[tokio::test]
async fn projection_dispatch_by_type_with_context() {
    let store = InMemoryEventStore::new();
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![
                created("one"),
                NewEvent::new(support::TaskReassigned {
                    new_assignee: Uuid::new_v4(),
                }),
                NewEvent::new(TaskCompleted {}),
                NewEvent::raw("TaskCreated", 9, serde_json::json!({"title": "v9"})),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let events = store.get_all_events();
    let mut recorder = Recorder::default();
    assert_eq!(recorder.name(), "recorder");
    assert_eq!(
        recorder.handled_event_types(),
        ["TaskCreated", "TaskCompleted"]
    );
    for event in &events[..3] {
        recorder.handle(event).await.unwrap();
    }
    assert_eq!(
        recorder.seen,
        [("one".to_owned(), 1, 1), ("completed".to_owned(), 0, 0)],
        "TaskReassigned is not handled and skipped"
    );
    // A handled type name at an unregistered version is an error, not a silent skip.
    let error = recorder.handle(&events[3]).await.unwrap_err();
    assert!(error.to_string().contains("version 9"), "{error}");
    recorder.fail_on = Some("one".into());
    assert_eq!(
        recorder.handle(&events[0]).await.unwrap_err().to_string(),
        "cannot handle one"
    );
    recorder.reset().await.unwrap();
    assert!(recorder.seen.is_empty());
    assert_eq!(recorder.resets, 1);

    let mut no_reset = NoReset;
    assert_eq!(no_reset.name(), "NoReset");
    assert!(no_reset
        .reset()
        .await
        .unwrap_err()
        .to_string()
        .contains("no #[reset]"));
}

async fn checkpoint_store_behaves(checkpoints: &dyn CheckpointStore, events: &dyn EventStore) {
    assert_eq!(checkpoints.get_position("orders").await.unwrap(), None);
    assert!(lag_metrics(checkpoints, events, "orders", None)
        .await
        .unwrap()
        .is_none());
    let id = Uuid::new_v4();
    events
        .append_events(
            id,
            "Task",
            vec![created("a"), created("b"), NewEvent::new(TaskCompleted {})],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let first = Uuid::new_v4();
    checkpoints
        .save_position("orders", 1, first, "TaskCreated")
        .await
        .unwrap();
    checkpoints
        .save_progress("orders", 2, None, 1)
        .await
        .unwrap();
    checkpoints
        .save_position("billing", 3, Uuid::new_v4(), "TaskCompleted")
        .await
        .unwrap();
    let orders = checkpoints.get_checkpoint("orders").await.unwrap().unwrap();
    assert_eq!(orders.global_position, 2);
    assert_eq!(orders.events_processed, 2);
    assert_eq!(
        orders.last_event_id,
        Some(first),
        "kept when the update names no event"
    );
    assert_eq!(orders.last_event_type.as_deref(), Some("TaskCreated"));
    assert!(orders.last_processed_at.is_some());
    let names: Vec<String> = checkpoints
        .get_all_checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.projection_name)
        .collect();
    assert_eq!(names, ["billing", "orders"]);

    let lag = lag_metrics(checkpoints, events, "orders", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (lag.global_position, lag.head_position, lag.events_behind),
        (2, 3, 1)
    );
    let lag = lag_metrics(checkpoints, events, "orders", Some(&["TaskCreated"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lag.events_behind, 0, "only the handled types count");
    assert_eq!(lag.lag_seconds, 0.0);

    checkpoints.reset("orders").await.unwrap();
    assert_eq!(checkpoints.get_position("orders").await.unwrap(), None);
    assert_eq!(checkpoints.get_position("billing").await.unwrap(), Some(3));
}

#[tokio::test]
async fn checkpoint_stores() {
    let memory = InMemoryEventStore::new();
    checkpoint_store_behaves(&InMemoryCheckpointStore::new(), &memory).await;
    let sqlite = SqliteEventStore::open(":memory:").await.unwrap();
    sqlite.initialize().await.unwrap();
    checkpoint_store_behaves(&sqlite, &sqlite).await;
    #[cfg(feature = "postgres")]
    if let Some(server) = support::postgres::server() {
        let postgres = server.store().await;
        checkpoint_store_behaves(&postgres, &postgres).await;
    }
}

async fn dead_letter_store_behaves(dlq: &dyn DeadLetterStore, events: &dyn EventStore) {
    let id = Uuid::new_v4();
    let result = events
        .append_events(id, "Task", vec![created("poison")], ExpectedVersion::Any)
        .await
        .unwrap();
    let stored = events
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap()
        .events[0]
        .clone();
    let failed = FailedEvent {
        event_id: stored.event_id(),
        projection_name: "recorder".into(),
        event_type: "TaskCreated".into(),
        global_position: result.global_position,
        event_data: stored.payload_json().unwrap(),
        error: "Processing failed: invalid data format".into(),
        retry_count: 1,
    };
    let dlq_id = dlq.add_failed_event(failed.clone()).await.unwrap();
    // The same event failing again updates the entry.
    let again = dlq
        .add_failed_event(FailedEvent {
            retry_count: 2,
            ..failed.clone()
        })
        .await
        .unwrap();
    assert_eq!(again, dlq_id);
    dlq.add_failed_event(FailedEvent {
        event_id: Uuid::new_v4(),
        projection_name: "other".into(),
        ..failed.clone()
    })
    .await
    .unwrap();

    let listed = dlq
        .get_failed_events(Some("recorder"), Some(DeadLetterStatus::Failed), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].failed.retry_count, 2);
    assert_eq!(
        listed[0].failed.event_data,
        serde_json::json!({"title": "poison"})
    );
    assert_eq!(
        listed[0].failed.error,
        "Processing failed: invalid data format"
    );
    assert_eq!(
        dlq.get_failed_events(None, None, 10).await.unwrap().len(),
        2
    );
    assert_eq!(dlq.get_failed_events(None, None, 1).await.unwrap().len(), 1);
    let stats = dlq.get_statistics().await.unwrap();
    assert_eq!((stats.total, stats.failed, stats.resolved), (2, 2, 0));
    assert_eq!(stats.failed_by_projection.get("recorder"), Some(&1));

    // Replaying into a projection that still fails keeps it failed, with the new error.
    let mut recorder = Recorder {
        fail_on: Some("poison".into()),
        ..Recorder::default()
    };
    let replay = replay_dead_letter(dlq, events, &mut recorder, dlq_id).await;
    assert!(
        matches!(replay, Err(Error::HandlerFailed { .. })),
        "{replay:?}"
    );
    assert_eq!(
        dlq.get_failed_event(dlq_id)
            .await
            .unwrap()
            .unwrap()
            .failed
            .retry_count,
        3
    );
    // Fixed: the replay succeeds and resolves it.
    recorder.fail_on = None;
    replay_dead_letter(dlq, events, &mut recorder, dlq_id)
        .await
        .unwrap();
    assert_eq!(recorder.seen.len(), 1);
    let letter = dlq.get_failed_event(dlq_id).await.unwrap().unwrap();
    assert_eq!(letter.status, DeadLetterStatus::Resolved);
    assert_eq!(letter.resolution.as_deref(), Some("replayed"));
    assert!(letter.resolved_at.is_some());
    let stats = dlq.get_statistics().await.unwrap();
    assert_eq!((stats.failed, stats.resolved), (1, 1));
    assert!(matches!(
        dlq.mark_resolved(9999, "x").await,
        Err(Error::DeadLetterNotFound { id: 9999 })
    ));
    assert!(matches!(
        replay_dead_letter(dlq, events, &mut recorder, 9999).await,
        Err(Error::DeadLetterNotFound { .. })
    ));
}

#[tokio::test]
async fn dead_letter_stores() {
    let memory = InMemoryEventStore::new();
    dead_letter_store_behaves(&InMemoryDeadLetterStore::new(), &memory).await;
    let sqlite = Arc::new(SqliteEventStore::open(":memory:").await.unwrap());
    sqlite.initialize().await.unwrap();
    dead_letter_store_behaves(sqlite.as_ref(), sqlite.as_ref()).await;
    #[cfg(feature = "postgres")]
    if let Some(server) = support::postgres::server() {
        let postgres = server.store().await;
        dead_letter_store_behaves(&postgres, &postgres).await;
    }
}
