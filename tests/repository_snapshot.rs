//! Snapshots: taken every N events, loads start from the latest and replay only newer
//! events, snapshots of another state schema are ignored, and loading with and without
//! snapshots gives the same state over random command sequences.

mod support;

use std::sync::Arc;

use chrono::Utc;
use eventsource::prelude::*;
use eventsource::{
    Error, InMemorySnapshotStore, Snapshot, SnapshotStore, SnapshotStrategy, SqliteEventStore,
};
use support::bank::{AccountCommands, AccountState};
use support::TempDir;
use uuid::Uuid;

type Repo = AggregateRepository<AccountState>;

async fn sqlite(dir: &TempDir) -> Arc<SqliteEventStore> {
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    Arc::new(store)
}

#[tokio::test]
async fn snapshots_follow_the_strategy_and_skip_old_events() {
    let dir = TempDir::new();
    let store = sqlite(&dir).await;
    let strategy = SnapshotStrategy::every(5).unwrap();
    let repo = Repo::new(store.clone()).with_snapshots(store.clone(), strategy);
    let id = Uuid::new_v4();
    let mut account = repo.create_new(id);
    account.open("Alice", 0.0).unwrap();
    repo.save(&mut account).await.unwrap();
    assert!(store.get_snapshot(id, "Account").await.unwrap().is_none());
    for _ in 0..11 {
        let mut account = repo.load(id).await.unwrap();
        account.deposit(1.0).unwrap();
        repo.save(&mut account).await.unwrap();
    }
    let snapshot = store
        .get_snapshot(id, "Account")
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.version, 10);
    assert_eq!(snapshot.schema_version, 1);
    assert_eq!(snapshot.state["balance"], serde_json::json!(9.0));

    // Break an event older than the snapshot: a load from the snapshot never reads it.
    sqlx::query("UPDATE events SET payload = '{broken' WHERE aggregate_id = ? AND version = 3")
        .bind(id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    let account = repo.load(id).await.unwrap();
    assert_eq!((account.version(), account.state().balance), (12, 11.0));
    let without = Repo::new(store.clone()).load(id).await;
    assert!(
        matches!(without, Err(Error::CorruptEvent { .. })),
        "{without:?}"
    );
}

#[tokio::test]
async fn snapshots_of_another_schema_or_undecodable_are_ignored() {
    let events = Arc::new(InMemoryEventStore::new());
    let snapshots = Arc::new(InMemorySnapshotStore::new());
    let repo = Repo::new(events.clone())
        .with_snapshots(snapshots.clone(), SnapshotStrategy::every(100).unwrap());
    let id = Uuid::new_v4();
    let mut account = repo.create_new(id);
    account.open("Alice", 10.0).unwrap();
    account.deposit(5.0).unwrap();
    repo.save(&mut account).await.unwrap();
    assert!(snapshots.is_empty());

    let planted = |schema_version: u32, state: serde_json::Value| Snapshot {
        aggregate_id: id,
        aggregate_type: "Account".into(),
        version: 2,
        schema_version,
        state,
        created_at: Utc::now(),
    };
    // Written by an older state schema (the same fields meant something else).
    let mut old_state = serde_json::to_value(account.state()).unwrap();
    old_state["balance"] = serde_json::json!(1_000_000.0);
    snapshots
        .save_snapshot(planted(99, old_state))
        .await
        .unwrap();
    let loaded = repo.load(id).await.unwrap();
    assert_eq!(
        loaded.state().balance,
        15.0,
        "the old-schema snapshot was not used"
    );

    // The right schema version but a state that does not decode.
    snapshots
        .save_snapshot(planted(1, serde_json::json!({"nonsense": true})))
        .await
        .unwrap();
    let loaded = repo.load(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.state().balance), (2, 15.0));
}

#[tokio::test]
async fn a_snapshot_ahead_of_the_stream_is_ignored() {
    let events = Arc::new(InMemoryEventStore::new());
    let snapshots = Arc::new(InMemorySnapshotStore::new());
    let repo = Repo::new(events.clone())
        .with_snapshots(snapshots.clone(), SnapshotStrategy::every(1).unwrap());
    let id = Uuid::new_v4();
    let mut account = repo.create_new(id);
    account.open("Alice", 10.0).unwrap();
    account.deposit(5.0).unwrap();
    repo.save(&mut account).await.unwrap();
    assert_eq!(
        snapshots
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // The event store is reset; the snapshot store is not.
    events.clear();
    assert!(matches!(
        repo.load(id).await,
        Err(Error::AggregateNotFound { .. })
    ));
    let mut fresh = repo.load_or_create(id).await.unwrap();
    assert_eq!(fresh.version(), 0);
    fresh.open("Bob", 1.0).unwrap();
    repo.save(&mut fresh).await.unwrap();
    let loaded = repo.load(id).await.unwrap();
    assert_eq!(
        (loaded.version(), loaded.state().owner_name.as_str()),
        (1, "Bob")
    );
}

#[tokio::test]
async fn sqlite_snapshot_store_round_trips_and_keeps_the_newest() {
    let dir = TempDir::new();
    snapshot_store_round_trips_and_keeps_the_newest(sqlite(&dir).await.as_ref()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_snapshot_store_round_trips_and_keeps_the_newest() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    snapshot_store_round_trips_and_keeps_the_newest(&server.store().await).await;
}

async fn snapshot_store_round_trips_and_keeps_the_newest(store: &dyn SnapshotStore) {
    let id = Uuid::new_v4();
    let at = |version: u64| Snapshot {
        aggregate_id: id,
        aggregate_type: "Account".into(),
        version,
        schema_version: 3,
        state: serde_json::json!({"v": version}),
        created_at: chrono::DateTime::from_timestamp(1_700_000_000, 123_000).unwrap(),
    };
    store.save_snapshot(at(10)).await.unwrap();
    assert_eq!(
        store.get_snapshot(id, "Account").await.unwrap(),
        Some(at(10))
    );
    store.save_snapshot(at(20)).await.unwrap();
    store.save_snapshot(at(15)).await.unwrap();
    assert_eq!(
        store
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .unwrap()
            .version,
        20,
        "an older snapshot does not replace a newer one"
    );
    assert!(store.get_snapshot(id, "Other").await.unwrap().is_none());
    store.delete_snapshot(id, "Account").await.unwrap();
    assert!(store.get_snapshot(id, "Account").await.unwrap().is_none());
    assert!(matches!(
        SnapshotStrategy::every(0),
        Err(Error::InvalidConfiguration { .. })
    ));
}

/// An event store that records the `from_version` of every `get_events`.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn EventStore>,
    from_versions: std::sync::Mutex<Vec<Option<u64>>>,
}

impl Recording {
    fn new(inner: Arc<dyn EventStore>) -> Self {
        Recording {
            inner,
            from_versions: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn recorded_from_versions(&self) -> Vec<Option<u64>> {
        self.from_versions.lock().unwrap().clone()
    }
}

#[eventsource::async_trait]
impl EventStore for Recording {
    async fn append_events(
        &self,
        id: Uuid,
        aggregate_type: &str,
        events: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> eventsource::Result<AppendResult> {
        self.inner
            .append_events(id, aggregate_type, events, expected)
            .await
    }

    async fn get_events(
        &self,
        id: Uuid,
        aggregate_type: &str,
        options: GetEventsOptions,
    ) -> eventsource::Result<EventStream> {
        self.from_versions
            .lock()
            .unwrap()
            .push(options.from_version);
        self.inner.get_events(id, aggregate_type, options).await
    }

    fn read_stream<'a>(
        &'a self,
        stream_id: &StreamId,
        options: ReadOptions,
    ) -> eventsource::StoredEventStream<'a> {
        self.inner.read_stream(stream_id, options)
    }

    fn read_all(&self, options: ReadOptions) -> eventsource::StoredEventStream<'_> {
        self.inner.read_all(options)
    }

    async fn get_events_by_type(
        &self,
        aggregate_type: &str,
        tenant_id: Option<Uuid>,
        from: Option<chrono::DateTime<Utc>>,
    ) -> eventsource::Result<Vec<StoredEvent>> {
        self.inner
            .get_events_by_type(aggregate_type, tenant_id, from)
            .await
    }

    async fn event_exists(&self, event_id: Uuid) -> eventsource::Result<bool> {
        self.inner.event_exists(event_id).await
    }

    async fn get_stream_version(&self, id: Uuid, aggregate_type: &str) -> eventsource::Result<u64> {
        self.inner.get_stream_version(id, aggregate_type).await
    }

    async fn get_global_position(&self) -> eventsource::Result<u64> {
        self.inner.get_global_position().await
    }

    async fn event_type_counts(&self) -> eventsource::Result<Vec<eventsource::EventTypeCount>> {
        self.inner.event_type_counts().await
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn loading_with_and_without_snapshots_gives_the_same_state() {
    let dir = TempDir::new();
    let sqlite = sqlite(&dir).await;
    let memory_events: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let backends: Vec<(Arc<dyn EventStore>, Arc<dyn SnapshotStore>)> = vec![
        (memory_events, Arc::new(InMemorySnapshotStore::new())),
        (sqlite.clone(), sqlite.clone()),
    ];
    for (events, snapshot_store) in backends {
        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let every = 1 + rng.below(7);
            let plain = Repo::new(events.clone());
            let snapshotting = Repo::new(events.clone()).with_snapshots(
                snapshot_store.clone(),
                SnapshotStrategy::every(every).unwrap(),
            );
            let id = Uuid::new_v4();
            let mut account = snapshotting.create_new(id);
            account.open("Prop", (rng.below(100)) as f64).unwrap();
            snapshotting.save(&mut account).await.unwrap();
            for _ in 0..(5 + rng.below(25)) {
                let mut account = snapshotting.load(id).await.unwrap();
                for _ in 0..(1 + rng.below(4)) {
                    // Tenths are not exact in binary: snapshots must round-trip f64 exactly.
                    let amount = (1 + rng.below(600)) as f64 / 10.0;
                    // Withdrawals beyond the balance are refused, as in production.
                    let _ = if rng.below(3) == 0 {
                        account.withdraw(amount)
                    } else {
                        account.deposit(amount)
                    };
                }
                snapshotting.save(&mut account).await.unwrap();
                let with = snapshotting.load(id).await.unwrap();
                let without = plain.load(id).await.unwrap();
                assert_eq!(
                    with.version(),
                    without.version(),
                    "seed {seed}, every {every}"
                );
                assert_eq!(with.state(), without.state(), "seed {seed}, every {every}");
            }
            let version = plain.load(id).await.unwrap().version();
            let snapshot = snapshot_store.get_snapshot(id, "Account").await.unwrap();
            if version >= every {
                let snapshot = snapshot.expect("a snapshot was taken");
                let last_multiple = version / every * every;
                assert!(
                    (last_multiple..=version).contains(&snapshot.version),
                    "seed {seed}"
                );
                // And loads start from it: only the events after it are read.
                let recording = Arc::new(Recording::new(events.clone()));
                let repo = Repo::new(recording.clone()).with_snapshots(
                    snapshot_store.clone(),
                    SnapshotStrategy::every(every).unwrap(),
                );
                assert_eq!(repo.load(id).await.unwrap().version(), version);
                assert_eq!(
                    recording.recorded_from_versions(),
                    [Some(snapshot.version + 1)],
                    "seed {seed}"
                );
            }
        }
    }
}
