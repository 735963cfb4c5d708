//! SqliteEventStore beyond the conformance suite: files, reopening, the schema,
//! eventsource-py databases, corrupt rows, bad input, and appends from other processes.

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventsource::prelude::*;
use eventsource::{Error, SqliteEventStore};
use futures::StreamExt;
use support::{collect, created, TaskCompleted, TaskCreated, TempDir};
use uuid::Uuid;

async fn open_initialized(dir: &TempDir) -> SqliteEventStore {
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    store
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = TempDir::new();
    let id = Uuid::new_v4();
    let store = open_initialized(&dir).await;
    assert!(store.is_connected());
    store
        .append_events(
            id,
            "Task",
            vec![created("persisted")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store.close().await;
    assert!(!store.is_connected());

    let reopened = open_initialized(&dir).await;
    let stream = reopened
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert_eq!(stream.version, 1);
    assert_eq!(
        stream.events[0].event::<TaskCreated>().unwrap().title,
        "persisted"
    );
    let next = reopened
        .append_events(
            id,
            "Task",
            vec![NewEvent::new(TaskCompleted {})],
            ExpectedVersion::Exact(1),
        )
        .await
        .unwrap();
    assert_eq!((next.new_version, next.global_position), (2, 2));
}

#[tokio::test]
async fn close_leaves_a_closed_checkpointed_file() {
    // Connections closing together used to leave `-wal`/`-shm` files behind at random.
    for _ in 0..10 {
        let dir = TempDir::new();
        let store = open_initialized(&dir).await;
        let id = Uuid::new_v4();
        store
            .append_events(id, "Task", vec![created("x")], ExpectedVersion::Any)
            .await
            .unwrap();
        assert!(dir.file("events.db-wal").exists());
        // A read just before: its connection is still on its way back to the pool.
        assert_eq!(collect(store.read_all(ReadOptions::new())).await.len(), 1);
        store.close().await;
        assert_eq!(store.pool().size(), 0);
        assert!(
            !dir.file("events.db-wal").exists(),
            "WAL checkpointed and removed"
        );
        assert!(!dir.file("events.db-shm").exists());
        // Everything is in the main file now.
        let copy = dir.file("copy.db");
        std::fs::copy(dir.file("events.db"), &copy).unwrap();
        let reopened = SqliteEventStore::open(&copy).await.unwrap();
        assert_eq!(reopened.get_stream_version(id, "Task").await.unwrap(), 1);
    }
}

#[tokio::test]
async fn closed_store_fails_with_a_typed_error() {
    let dir = TempDir::new();
    let store = open_initialized(&dir).await;
    store.close().await;
    let id = Uuid::new_v4();
    assert!(matches!(
        store
            .append_events(id, "Task", vec![created("x")], ExpectedVersion::Any)
            .await,
        Err(Error::StoreClosed)
    ));
    assert!(matches!(
        store
            .get_events(id, "Task", GetEventsOptions::default())
            .await,
        Err(Error::StoreClosed)
    ));
    assert!(matches!(
        store.get_global_position().await,
        Err(Error::StoreClosed)
    ));
    assert!(matches!(store.initialize().await, Err(Error::StoreClosed)));
    let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
    assert!(
        matches!(items.as_slice(), [Err(Error::StoreClosed)]),
        "{items:?}"
    );
}

#[tokio::test]
async fn initialize_is_idempotent_and_creates_the_tables() {
    let dir = TempDir::new();
    let store = open_initialized(&dir).await;
    store.initialize().await.unwrap();
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("x")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        tables,
        [
            "dead_letter_queue",
            "event_outbox",
            "events",
            "eventsource_settings",
            "projection_checkpoints",
            "snapshots"
        ]
    );
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND name LIKE 'idx_%' ORDER BY name")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        indexes,
        [
            "idx_events_aggregate_type",
            "idx_events_event_type",
            "idx_events_tenant_id",
            "idx_events_timestamp",
            "idx_events_type_tenant_timestamp"
        ]
    );
    assert_eq!(store.get_global_position().await.unwrap(), 1);
}

#[tokio::test]
async fn options_wal_mode_and_busy_timeout() {
    let dir = TempDir::new();
    let store = open_initialized(&dir).await;
    assert!(store.wal_mode());
    assert_eq!(store.busy_timeout(), Duration::from_millis(5000));
    assert_eq!(store.database(), dir.file("events.db"));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    store.close().await;

    let plain = SqliteEventStore::options(dir.file("plain.db"))
        .wal_mode(false)
        .busy_timeout(Duration::from_millis(250))
        .open()
        .await
        .unwrap();
    assert!(!plain.wal_mode());
    assert_eq!(plain.busy_timeout(), Duration::from_millis(250));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(plain.pool())
        .await
        .unwrap();
    assert_eq!(mode, "delete");

    // WAL is ignored for :memory:.
    let memory = SqliteEventStore::options(":memory:")
        .wal_mode(true)
        .open()
        .await
        .unwrap();
    assert!(!memory.wal_mode());
    assert_eq!(memory.database().to_str(), Some(":memory:"));
}

#[tokio::test]
async fn memory_databases_are_private_to_their_store() {
    let a = SqliteEventStore::open(":memory:").await.unwrap();
    let b = SqliteEventStore::open(":memory:").await.unwrap();
    a.initialize().await.unwrap();
    b.initialize().await.unwrap();
    a.append_events(
        Uuid::new_v4(),
        "Task",
        vec![created("a")],
        ExpectedVersion::NoStream,
    )
    .await
    .unwrap();
    assert_eq!(a.get_global_position().await.unwrap(), 1);
    assert_eq!(b.get_global_position().await.unwrap(), 0);
}

/// Inserts a row as raw SQL, bypassing the store (corrupt or foreign rows).
async fn insert_row(
    store: &SqliteEventStore,
    aggregate_id: &str,
    version: i64,
    event_type: &str,
    payload: &str,
) {
    sqlx::query(
        "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, timestamp, payload, created_at, event_version, metadata) \
         VALUES (?, ?, 'Task', ?, ?, '2024-01-01T00:00:00.000000+00:00', ?, '2024-01-01T00:00:00.000000+00:00', 1, '{}')",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(aggregate_id)
    .bind(event_type)
    .bind(version)
    .bind(payload)
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn corrupt_rows_are_typed_errors_naming_their_position() {
    let dir = TempDir::new();
    let store = open_initialized(&dir).await;
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![created("good 1")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    insert_row(&store, &id.to_string(), 2, "TaskCreated", "{not json").await;
    insert_row(&store, &id.to_string(), 3, "TaskCreated", r#"{"wrong": 1}"#).await;
    insert_row(&store, "not-a-uuid", 1, "TaskCreated", r#"{"title": "x"}"#).await;
    insert_row(
        &store,
        &Uuid::new_v4().to_string(),
        1,
        "Unregistered",
        "{broken",
    )
    .await;
    store
        .append_events(
            id,
            "Task",
            vec![created("good 2")],
            ExpectedVersion::Exact(3),
        )
        .await
        .unwrap();

    let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
    assert_eq!(items.len(), 6, "every row is reported, none dropped");
    assert_eq!(
        items[0]
            .as_ref()
            .unwrap()
            .event::<TaskCreated>()
            .unwrap()
            .title,
        "good 1"
    );
    let reason = |item: &eventsource::Result<StoredEvent>, position: u64| match item {
        Err(Error::CorruptEvent {
            global_position,
            reason,
            ..
        }) if *global_position == position => reason.clone(),
        other => panic!("expected a corrupt event at {position}, got {other:?}"),
    };
    assert!(reason(&items[1], 2).contains("payload"));
    assert!(reason(&items[2], 3).contains("TaskCreated"));
    assert!(reason(&items[3], 4).contains("aggregate_id"));
    assert!(reason(&items[4], 5).contains("not valid JSON"));
    assert_eq!(
        items[5]
            .as_ref()
            .unwrap()
            .event::<TaskCreated>()
            .unwrap()
            .title,
        "good 2"
    );

    // Loading the aggregate fails loudly instead of skipping events.
    match store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
    {
        Err(Error::CorruptEvent {
            global_position: 2,
            event_type,
            ..
        }) => assert_eq!(event_type, "TaskCreated"),
        other => panic!("expected a corrupt event, got {other:?}"),
    }
    // So does the repository's replay.
    match store.replay_stream(id, "Task", 1).await {
        Err(Error::CorruptEvent {
            global_position: 2, ..
        }) => {}
        other => panic!("expected a corrupt event, got {other:?}"),
    }
    // read_stream reports them too and goes on.
    let items: Vec<_> = store
        .read_stream(&StreamId::new(id, "Task"), ReadOptions::new())
        .collect()
        .await;
    assert_eq!(items.iter().filter(|i| i.is_err()).count(), 2);
    assert_eq!(items.len(), 4);
}

#[tokio::test]
async fn a_batch_failing_halfway_in_the_database_leaves_nothing() {
    let dir = TempDir::new();
    let store = open_initialized(&dir).await;
    sqlx::raw_sql(
        "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_type = 'TaskCompleted' \
         BEGIN SELECT RAISE(ABORT, 'poisoned event'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let id = Uuid::new_v4();
    let batch = vec![
        created("first"),
        created("second"),
        NewEvent::new(TaskCompleted {}),
    ];
    let result = store
        .append_events(id, "Task", batch, ExpectedVersion::NoStream)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::Database {
                operation: "append_events",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(store.get_global_position().await.unwrap(), 0);
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 0);
}

/// The `events` table exactly as eventsource-py creates it.
const PYTHON_SCHEMA: &str = "CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    aggregate_id TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    tenant_id TEXT,
    actor_id TEXT,
    version INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (aggregate_id, aggregate_type, version)
)";

#[tokio::test]
async fn reads_a_database_written_by_eventsource_py() {
    let dir = TempDir::new();
    let path = dir.file("python.db");
    let aggregate_id = Uuid::new_v4();
    let event_id = Uuid::new_v4();
    let tenant = Uuid::new_v4();
    let correlation = Uuid::new_v4();
    {
        let raw = SqliteEventStore::options(&path)
            .wal_mode(false)
            .open()
            .await
            .unwrap();
        sqlx::raw_sql(PYTHON_SCHEMA)
            .execute(raw.pool())
            .await
            .unwrap();
        let payload = serde_json::json!({
            "event_id": event_id, "event_type": "TaskCreated", "event_version": 1,
            "occurred_at": "2024-01-02T03:04:05.123456+00:00",
            "aggregate_id": aggregate_id, "aggregate_type": "Task", "aggregate_version": 1,
            "tenant_id": tenant, "actor_id": "alice", "correlation_id": correlation,
            "causation_id": null, "metadata": {"ip": "10.0.0.1"},
            "title": "written by python"
        });
        sqlx::query(
            "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, tenant_id, actor_id, version, timestamp, payload) \
             VALUES (?, ?, 'Task', 'TaskCreated', ?, 'alice', 1, '2024-01-02T03:04:05.123456+00:00', ?)",
        )
        .bind(event_id.to_string())
        .bind(aggregate_id.to_string())
        .bind(tenant.to_string())
        .bind(payload.to_string())
        .execute(raw.pool())
        .await
        .unwrap();
        raw.close().await;
    }

    let store = SqliteEventStore::open(&path).await.unwrap();
    store.initialize().await.unwrap();
    let stream = store
        .get_events(aggregate_id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert_eq!(stream.version, 1);
    let event = &stream.events[0];
    assert_eq!(event.event_id(), event_id);
    assert_eq!(
        event.event::<TaskCreated>().unwrap().title,
        "written by python"
    );
    assert_eq!(event.envelope.tenant_id, Some(tenant));
    assert_eq!(event.envelope.actor_id.as_deref(), Some("alice"));
    assert_eq!(event.envelope.correlation_id, Some(correlation));
    assert_eq!(event.envelope.causation_id, None);
    assert_eq!(
        event.envelope.metadata.get("ip"),
        Some(&serde_json::json!("10.0.0.1"))
    );
    assert_eq!(
        event.envelope.timestamp.to_rfc3339(),
        "2024-01-02T03:04:05.123456+00:00"
    );
    eventsource::EventRegistry::global()
        .verify_store(&store)
        .await
        .unwrap();

    // New events go on from the Python stream's version.
    let next = store
        .append_events(
            aggregate_id,
            "Task",
            vec![NewEvent::new(TaskCompleted {})],
            ExpectedVersion::Exact(1),
        )
        .await
        .unwrap();
    assert_eq!(next.new_version, 2);
    let all = collect(store.read_all(ReadOptions::new())).await;
    assert_eq!(all.len(), 2);
    // Replaying for a repository reads the Python row's schema version from its payload.
    let replayed = store.replay_stream(aggregate_id, "Task", 1).await.unwrap();
    assert_eq!(replayed.len(), 2);
    assert_eq!((replayed[0].version, replayed[0].global_position), (1, 1));
    assert_eq!(
        replayed[0].payload.get::<TaskCreated>().unwrap().title,
        "written by python"
    );
}

#[tokio::test]
async fn reads_an_eventsource_py_database_read_only_without_initialize() {
    let dir = TempDir::new();
    let path = dir.file("python.db");
    let id = Uuid::new_v4();
    {
        let raw = SqliteEventStore::options(&path)
            .wal_mode(false)
            .open()
            .await
            .unwrap();
        sqlx::raw_sql(PYTHON_SCHEMA)
            .execute(raw.pool())
            .await
            .unwrap();
        let payload = serde_json::json!({"event_version": 1, "correlation_id": null, "title": "py", "metadata": {}});
        sqlx::query(
            "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, timestamp, payload) \
             VALUES (?, ?, 'Task', 'TaskCreated', 1, '2024-01-02T03:04:05+00:00', ?)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(id.to_string())
        .bind(payload.to_string())
        .execute(raw.pool())
        .await
        .unwrap();
        raw.close().await;
    }
    let reader = SqliteEventStore::options(&path)
        .read_only(true)
        .open()
        .await
        .unwrap();
    let stream = reader
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert_eq!(stream.events[0].event::<TaskCreated>().unwrap().title, "py");
    assert_eq!(collect(reader.read_all(ReadOptions::new())).await.len(), 1);
    let replayed = reader.replay_stream(id, "Task", 1).await.unwrap();
    assert_eq!(
        replayed[0].payload.get::<TaskCreated>().unwrap().title,
        "py"
    );
    assert_eq!(
        reader.event_type_counts().await.unwrap()[0].event_type,
        "TaskCreated"
    );
    // Still not writable, said as such, and the file was not changed.
    assert!(matches!(
        reader.initialize().await,
        Err(Error::ReadOnly {
            operation: "initialize",
            ..
        })
    ));
    let refused = reader
        .append_events(id, "Task", vec![created("rust")], ExpectedVersion::Exact(1))
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::ReadOnly {
                operation: "append_events",
                ..
            })
        ),
        "read-only is reported as read-only: {refused:?}"
    );
    let columns: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('events')")
        .fetch_one(reader.pool())
        .await
        .unwrap();
    assert_eq!(columns, 11);
    // Writable but not upgraded yet: appending says to call initialize().
    let writer = SqliteEventStore::open(&path).await.unwrap();
    match writer
        .append_events(id, "Task", vec![created("rust")], ExpectedVersion::Exact(1))
        .await
    {
        Err(error @ Error::SchemaNotInitialized { .. }) => {
            let message = error.to_string();
            assert!(message.contains("event_version"), "{message}");
            assert!(message.contains("call initialize()"), "{message}");
        }
        other => panic!("expected SchemaNotInitialized, got {other:?}"),
    }
    writer.initialize().await.unwrap();
    writer
        .append_events(id, "Task", vec![created("rust")], ExpectedVersion::Exact(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_that_is_not_an_event_store_is_refused() {
    let dir = TempDir::new();
    let path = dir.file("other.db");
    let other = SqliteEventStore::open(&path).await.unwrap();
    sqlx::raw_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO events (name) VALUES ('keep me')")
        .execute(other.pool())
        .await
        .unwrap();
    match other.initialize().await {
        Err(Error::SchemaMismatch { table, detail }) => {
            assert_eq!(table, "events");
            assert!(detail.contains("aggregate_id"), "{detail}");
        }
        res => panic!("expected a schema mismatch, got {res:?}"),
    }
    // Nothing was changed: the transaction rolled back.
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM events")
        .fetch_all(other.pool())
        .await
        .unwrap();
    assert_eq!(names, ["keep me"]);
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'snapshots'",
    )
    .fetch_one(other.pool())
    .await
    .unwrap();
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused() {
    let dir = TempDir::new();
    let path = dir.file("garbage.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let result = match SqliteEventStore::open(&path).await {
        Ok(store) => store.initialize().await,
        Err(e) => Err(e),
    };
    match result {
        Err(e @ (Error::Connection { .. } | Error::Database { .. })) => {
            assert!(format!("{e}").contains("not a database"), "{e}");
        }
        other => panic!("expected a typed error, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![b'x'; 8192],
        "the file is untouched"
    );
}

#[tokio::test]
async fn bad_paths_and_configuration_are_typed_errors() {
    let dir = TempDir::new();
    let missing_dir = dir.file("no/such/dir/events.db");
    match SqliteEventStore::open(&missing_dir).await {
        Err(Error::Connection { database, source }) => {
            assert!(database.contains("no/such/dir"));
            assert!(source.to_string().contains("does not exist"), "{source}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(matches!(
        SqliteEventStore::open(dir.path()).await,
        Err(Error::Connection { .. })
    ));
    assert!(matches!(
        SqliteEventStore::open("").await,
        Err(Error::InvalidConfiguration { .. })
    ));
    assert!(matches!(
        SqliteEventStore::options(dir.file("a.db"))
            .max_connections(0)
            .open()
            .await,
        Err(Error::InvalidConfiguration { .. })
    ));
    assert!(matches!(
        SqliteEventStore::options(dir.file("a.db"))
            .busy_timeout(Duration::from_secs(u64::MAX / 2))
            .open()
            .await,
        Err(Error::InvalidConfiguration { .. })
    ));
    // Opening read-only needs an existing file.
    assert!(matches!(
        SqliteEventStore::options(dir.file("absent.db"))
            .read_only(true)
            .open()
            .await,
        Err(Error::Connection { .. })
    ));
}

#[tokio::test]
async fn a_read_only_store_refuses_writes_and_keeps_the_data() {
    let dir = TempDir::new();
    let id = Uuid::new_v4();
    let store = open_initialized(&dir).await;
    store
        .append_events(id, "Task", vec![created("kept")], ExpectedVersion::NoStream)
        .await
        .unwrap();
    store.close().await;

    let read_only = SqliteEventStore::options(dir.file("events.db"))
        .read_only(true)
        .open()
        .await
        .unwrap();
    let result = read_only
        .append_events(
            id,
            "Task",
            vec![created("refused")],
            ExpectedVersion::Exact(1),
        )
        .await;
    assert!(
        matches!(
            result,
            Err(Error::ReadOnly {
                operation: "append_events",
                ..
            })
        ),
        "{result:?}"
    );
    let stream = read_only
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    assert_eq!(stream.version, 1);
    assert_eq!(
        stream.events[0].event::<TaskCreated>().unwrap().title,
        "kept"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_read_only_file_refuses_writes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let id = Uuid::new_v4();
    let path = dir.file("events.db");
    {
        let store = SqliteEventStore::options(&path)
            .wal_mode(false)
            .open()
            .await
            .unwrap();
        store.initialize().await.unwrap();
        store
            .append_events(id, "Task", vec![created("kept")], ExpectedVersion::NoStream)
            .await
            .unwrap();
        store.close().await;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let writable = || std::fs::OpenOptions::new().append(true).open(&path).is_ok();
    // Root ignores permission bits; the immutable attribute stops root too.
    let _immutable = if writable() {
        Immutable::set(&path)
    } else {
        None
    };
    if writable() {
        eprintln!("SKIPPED a_read_only_file_refuses_writes: this user can write read-only files and chattr +i failed");
        return;
    }
    let store = SqliteEventStore::options(&path)
        .wal_mode(false)
        .open()
        .await
        .unwrap();
    let result = store
        .append_events(
            id,
            "Task",
            vec![created("refused")],
            ExpectedVersion::Exact(1),
        )
        .await;
    assert!(matches!(result, Err(Error::Database { .. })), "{result:?}");
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 1);
}

/// `chattr +i` on a file for the life of the guard.
#[cfg(unix)]
struct Immutable(std::path::PathBuf);

#[cfg(unix)]
impl Immutable {
    fn set(path: &std::path::Path) -> Option<Self> {
        let status = Command::new("chattr").arg("+i").arg(path).status().ok()?;
        status.success().then(|| Immutable(path.to_path_buf()))
    }
}

#[cfg(unix)]
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_have_one_winner_per_race() {
    let dir = TempDir::new();
    let a = open_initialized(&dir).await;
    let b = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    for _ in 0..30 {
        let id = Uuid::new_v4();
        a.append_events(
            id,
            "Task",
            vec![created("start")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
        let (ra, rb) = tokio::join!(
            a.append_events(id, "Task", vec![created("a")], ExpectedVersion::Exact(1)),
            b.append_events(id, "Task", vec![created("b")], ExpectedVersion::Exact(1)),
        );
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        let conflicts = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Err(Error::OptimisticLock { actual: 2, .. })))
            .count();
        assert_eq!((wins, conflicts), (1, 1), "{ra:?} {rb:?}");
    }
}

const CHILD_DB: &str = "EVENTSOURCE_TEST_CHILD_DB";
const CHILD_IDS: &str = "EVENTSOURCE_TEST_CHILD_IDS";
const CHILD_START: &str = "EVENTSOURCE_TEST_CHILD_START_MS";

/// Run by `optimistic_concurrency_holds_across_processes` in child processes: appends
/// version 2 to every aggregate it is given, printing `WIN <id>` or `LOSE <id>`.
#[tokio::test]
#[ignore = "child process of optimistic_concurrency_holds_across_processes"]
async fn child_appender() {
    let (Ok(db), Ok(ids), Ok(start)) = (
        std::env::var(CHILD_DB),
        std::env::var(CHILD_IDS),
        std::env::var(CHILD_START),
    ) else {
        return;
    };
    let store = SqliteEventStore::open(&db).await.unwrap();
    let start: u64 = start.parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(start.saturating_sub(now))).await;
    for id in ids.split(',') {
        let id: Uuid = id.parse().unwrap();
        match store
            .append_events(
                id,
                "Task",
                vec![created("child")],
                ExpectedVersion::Exact(1),
            )
            .await
        {
            Ok(_) => println!("WIN {id}"),
            Err(Error::OptimisticLock { .. }) => println!("LOSE {id}"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

#[tokio::test]
async fn optimistic_concurrency_holds_across_processes() {
    let dir = TempDir::new();
    let store = open_initialized(&dir).await;
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        store
            .append_events(
                *id,
                "Task",
                vec![created("start")],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1500;
    let joined = ids
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_appender",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DB, dir.file("events.db"))
                .env(CHILD_IDS, &joined)
                .env(CHILD_START, start.to_string())
                .spawn_output()
        })
        .collect();
    let mut wins = std::collections::HashMap::<Uuid, usize>::new();
    let mut losses = 0;
    for child in children {
        let output = child.join().unwrap();
        assert!(
            output.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The test harness may print "test child_appender ... " before the first line.
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some((_, id)) = line.split_once("WIN ") {
                *wins.entry(id.trim().parse().unwrap()).or_default() += 1;
            } else if line.contains("LOSE ") {
                losses += 1;
            }
        }
    }
    assert_eq!(wins.len(), ids.len(), "every aggregate has a winner");
    assert!(
        wins.values().all(|w| *w == 1),
        "exactly one winner each: {wins:?}"
    );
    assert_eq!(losses, ids.len(), "every other append lost");
    for id in &ids {
        assert_eq!(store.get_stream_version(*id, "Task").await.unwrap(), 2);
    }
}

/// Runs a command on a thread, returning its output when joined.
trait SpawnOutput {
    fn spawn_output(&mut self) -> std::thread::JoinHandle<std::process::Output>;
}

impl SpawnOutput for Command {
    fn spawn_output(&mut self) -> std::thread::JoinHandle<std::process::Output> {
        let child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::spawn(move || child.wait_with_output().unwrap())
    }
}

/// `read_all` reads pages ahead in a task of its own: with a single connection, a caller
/// that writes between events still gets the connection (the task holds it only while a
/// page's query runs, whether or not the stream is polled), and a stream dropped
/// mid-read stops the task and lets the store close.
#[tokio::test]
async fn reading_ahead_never_holds_the_only_connection() {
    let dir = TempDir::new();
    let store = SqliteEventStore::options(dir.file("one.db"))
        .max_connections(1)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let id = Uuid::new_v4();
    for batch in 0..12u64 {
        let events = (0..100).map(|i| created(&format!("t{i}"))).collect();
        store
            .append_events(id, "Task", events, ExpectedVersion::Exact(batch * 100))
            .await
            .unwrap();
    }
    let read = async {
        let mut stream = store.read_all(ReadOptions::new());
        let mut positions = Vec::new();
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            if event.global_position % 100 == 0 && event.global_position <= 1200 {
                store
                    .append_events(
                        Uuid::new_v4(),
                        "Task",
                        vec![created("x")],
                        ExpectedVersion::NoStream,
                    )
                    .await
                    .unwrap();
            }
            positions.push(event.global_position);
        }
        positions
    };
    let positions = tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("a write between events waited for the connection forever");
    assert!(positions.len() >= 1200, "{}", positions.len());
    assert!(positions.windows(2).all(|w| w[0] < w[1]));

    let mut stream = store.read_all(ReadOptions::new());
    stream.next().await.unwrap().unwrap();
    drop(stream);
    tokio::time::timeout(Duration::from_secs(120), store.close())
        .await
        .expect("a dropped stream kept its connection");
}

/// The reading task needs a tokio runtime: a stream polled outside one says so with a
/// typed error instead of panicking.
#[test]
fn reading_outside_a_tokio_runtime_is_a_typed_error() {
    let dir = TempDir::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let store = SqliteEventStore::open(dir.file("runtime.db"))
            .await
            .unwrap();
        store.initialize().await.unwrap();
        store
    });
    let mut stream = store.read_all(ReadOptions::new());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match stream.poll_next_unpin(&mut cx) {
        std::task::Poll::Ready(Some(Err(Error::Database { source, .. }))) => {
            assert!(source.to_string().contains("tokio runtime"), "{source}");
        }
        other => panic!("expected a typed error, got {other:?}"),
    }
    drop(stream);
    runtime.block_on(store.close());
}

/// Pages join their rows with U+001D. A value holding U+001D (appends refuse it in names,
/// but another tool may write it) makes the pieces outnumber the rows SQLite counted, and
/// the page is read again with length-prefixed rows: every read returns every value whole.
#[tokio::test]
async fn values_holding_the_row_separator_read_back_whole() {
    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("separator.db"))
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let id = Uuid::new_v4();
    let events = vec![
        created("a").with_actor_id("opsteam"),
        NewEvent::raw("OddType", 1, serde_json::json!({ "x": "\u{1d}" })),
        created("b"),
    ];
    assert!(matches!(
        store
            .append_events(
                id,
                "Task",
                vec![created("a").with_actor_id("ops\u{1d}team")],
                ExpectedVersion::NoStream
            )
            .await,
        Err(Error::InvalidInput { .. })
    ));
    store
        .append_events(id, "Task", events, ExpectedVersion::NoStream)
        .await
        .unwrap();
    // Another tool writes the separator into stored values.
    sqlx::raw_sql(
        "UPDATE events SET actor_id = 'ops' || char(29) || 'team' WHERE version = 1; \
         UPDATE events SET event_type = 'Odd' || char(29) || 'Type' WHERE version = 2;",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let check = |events: &[StoredEvent]| {
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0].envelope.actor_id.as_deref(),
            Some("ops\u{1d}team")
        );
        assert_eq!(events[1].event_type(), "Odd\u{1d}Type");
        assert_eq!(events[1].payload_json().unwrap()["x"], "\u{1d}");
        assert_eq!(events[2].event::<TaskCreated>().unwrap().title, "b");
    };
    check(&collect(store.read_all(ReadOptions::new())).await);
    check(&collect(store.read_stream(&StreamId::new(id, "Task"), ReadOptions::new())).await);
    check(
        &store
            .get_events(id, "Task", GetEventsOptions::default())
            .await
            .unwrap()
            .events,
    );
    let replayed = store.replay_stream(id, "Task", 1).await.unwrap();
    let versions: Vec<u64> = replayed.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(replayed[1].payload.event_type(), "Odd\u{1d}Type");
}
