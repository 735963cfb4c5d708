//! The exactly-once read model the SQLite tests share: `AppliedCounter`, a durable
//! `#[projection]` counting how often each event was applied, in the store's database;
//! and a `SubscriptionManager` on one store (its checkpoints and dead letters too).

use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::sqlx::{self, SqliteConnection};
use eventsource::{BoxError, CheckpointStore, DeadLetterStore, DurableRunner, SqliteEventStore};

use super::TaskCreated;

/// Counts how often each event was applied, in a table of the store's database.
#[derive(Debug, Default)]
pub struct AppliedCounter {
    /// How long each event takes (a window for a kill).
    pub delay: Duration,
    /// The title whose event the handler refuses.
    pub fail_title: Option<String>,
}

/// A durable `#[projection]`: its handler writes through the transaction that moves
/// the checkpoint (`TransactionalProjection<SqliteConnection>`, generated).
#[projection(name = "applied")]
impl AppliedCounter {
    #[handles]
    async fn created(
        &mut self,
        event: &TaskCreated,
        ctx: &EventContext<'_>,
        conn: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        let title = &event.title;
        sqlx::query(
            "INSERT INTO applied (event_id, title, times) VALUES (?, ?, 1) \
             ON CONFLICT (event_id) DO UPDATE SET times = times + 1",
        )
        .bind(ctx.stored_event().event_id().to_string())
        .bind(title)
        .execute(&mut *conn)
        .await?;
        if self.fail_title.as_deref() == Some(title.as_str()) {
            // The write above must be undone with the attempt.
            return Err(format!("cannot apply {title}").into());
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(())
    }

    #[reset]
    async fn clear(&mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM applied")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

/// Opens (initializes) the store at `path` with the read model's table.
pub async fn open(path: &std::path::Path) -> SqliteEventStore {
    let store = SqliteEventStore::open(path).await.unwrap();
    store.initialize().await.unwrap();
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, title TEXT NOT NULL, times INTEGER NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    store
}

/// A manager on `store`, keeping its checkpoints and dead letters there, woken by an
/// in-memory bus.
pub fn manager_on<S>(store: &S) -> SubscriptionManager
where
    S: EventStore + CheckpointStore + DeadLetterStore + Clone + 'static,
{
    SubscriptionManager::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryEventBus::new()),
        Arc::new(store.clone()),
    )
    .with_dead_letters(Arc::new(store.clone()))
}

/// Runs `runner` under a manager on `store`, in batches of `batch_size`, until it has
/// committed the store's head; then stops the manager.
pub async fn catch_up_under_manager<S, R>(store: &S, runner: R, batch_size: usize)
where
    S: EventStore + CheckpointStore + DeadLetterStore + Clone + 'static,
    R: DurableRunner,
{
    let manager = manager_on(store);
    let config = SubscriptionConfig::new().batch_size(batch_size);
    let subscription = manager.subscribe_durable(runner, config).await.unwrap();
    manager.start().await.unwrap();
    let head = store.get_global_position().await.unwrap();
    subscription
        .wait_for(head, Duration::from_secs(60))
        .await
        .unwrap();
    manager.stop().await;
}
