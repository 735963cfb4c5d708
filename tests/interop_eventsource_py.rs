//! A database shared with eventsource-py both ways, with the real package: eventsource-py
//! creates it and appends, Rust appends (every envelope field set), and eventsource-py
//! reads every event back, field for field.
//!
//! The test installs `eventsource-py==0.5.0` (with `greenlet` and `aiosqlite`) into a
//! virtualenv under the target directory with pip, once (the test kit's
//! `eventsource::testing::python`); `EVENTSOURCE_PY_PYTHON` names a Python that has it
//! instead. Where neither works it is skipped, loudly, unless
//! `EVENTSOURCE_REQUIRE_PYTHON=1` (set by `.ci/run`) makes that a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use eventsource::prelude::*;
use eventsource::PayloadFormat;
use serde_json::{json, Value};
use support::{TaskCompleted, TaskCreated, TempDir};
use uuid::Uuid;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/eventsource_py_interop.py")
}

fn python_or_skip() -> Option<PathBuf> {
    eventsource::testing::python::eventsource_py(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

fn run_python(python: &Path, command: &str, db: &Path) -> String {
    let output = Command::new(python)
        .arg(script())
        .arg(command)
        .arg(db)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn eventsource_py_reads_what_rust_appends_to_its_database() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = TempDir::new();
    let db = dir.file("shared.db");
    run_python(&python, "create", &db);

    // Rust opens eventsource-py's database: initialize keeps its rows and records that
    // appends write payloads it reads.
    let store = SqliteEventStore::open(&db).await.unwrap();
    store.initialize().await.unwrap();
    assert_eq!(store.payload_format(), PayloadFormat::EventsourcePy);
    let task = Uuid::new_v4();
    let (tenant, correlation, causation) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let created = NewEvent::new(TaskCreated {
        title: "written by rust".into(),
    })
    .with_tenant_id(tenant)
    .with_actor_id("ops")
    .with_correlation_id(correlation)
    .with_causation_id(causation)
    .with_metadata("channel", "api");
    let created_id = created.event_id();
    store
        .append_events(
            task,
            "Task",
            vec![created, NewEvent::new(TaskCompleted {})],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    // Rust reads all three as it reads its own rows.
    let all = support::collect(store.read_all(ReadOptions::new())).await;
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[1].event::<TaskCreated>().unwrap().title,
        "written by rust"
    );
    assert_eq!(all[1].envelope.correlation_id, Some(correlation));
    // A reopened handle keeps the format: it is the database's.
    drop(store);
    let reopened = SqliteEventStore::open(&db).await.unwrap();
    assert_eq!(reopened.payload_format(), PayloadFormat::EventsourcePy);
    reopened.close().await;

    // eventsource-py reads every event, the Rust ones field for field.
    let lines: Vec<Value> = run_python(&python, "read", &db)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["event"]["title"], "written by python");
    let event = &lines[1]["event"];
    assert_eq!(lines[1]["global_position"], 2);
    assert_eq!(lines[1]["stream_position"], 1);
    for (field, expected) in [
        ("event_id", json!(created_id.to_string())),
        ("event_type", json!("TaskCreated")),
        ("event_version", json!(1)),
        ("aggregate_id", json!(task.to_string())),
        ("aggregate_type", json!("Task")),
        ("aggregate_version", json!(1)),
        ("tenant_id", json!(tenant.to_string())),
        ("actor_id", json!("ops")),
        ("correlation_id", json!(correlation.to_string())),
        ("causation_id", json!(causation.to_string())),
        ("metadata", json!({"channel": "api"})),
        ("title", json!("written by rust")),
    ] {
        assert_eq!(event[field], expected, "{field}: {event:#}");
    }
    let completed = &lines[2]["event"];
    assert_eq!(completed["event_type"], "TaskCompleted");
    assert_eq!(completed["aggregate_version"], 2);
    assert!(completed["occurred_at"].is_string());
}

#[tokio::test]
async fn a_database_this_library_creates_keeps_lean_payloads_unless_asked() {
    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("events.db")).await.unwrap();
    store.initialize().await.unwrap();
    assert_eq!(store.payload_format(), PayloadFormat::Lean);
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![support::created("lean")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store
        .set_payload_format(PayloadFormat::EventsourcePy)
        .await
        .unwrap();
    store
        .append_events(
            id,
            "Task",
            vec![support::created("py")],
            ExpectedVersion::Exact(1),
        )
        .await
        .unwrap();
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM events ORDER BY global_position")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(payloads[0], r#"{"title":"lean"}"#);
    let py: Value = serde_json::from_str(&payloads[1]).unwrap();
    assert_eq!(py["title"], "py");
    assert_eq!(py["aggregate_version"], 2);
    assert_eq!(py["aggregate_id"], id.to_string());
    // Both read back alike.
    let events = store
        .get_events(id, "Task", GetEventsOptions::default())
        .await
        .unwrap();
    let titles: Vec<&str> = events
        .events
        .iter()
        .map(|e| e.event::<TaskCreated>().unwrap().title.as_str())
        .collect();
    assert_eq!(titles, ["lean", "py"]);

    // A payload eventsource-py could not hold is refused, naming the field.
    #[derive(Debug, serde::Serialize, serde::Deserialize, DomainEvent)]
    #[event(aggregate = "Task")]
    struct Clashing {
        metadata: String,
    }
    let refused = store
        .append_events(
            id,
            "Task",
            vec![NewEvent::new(Clashing {
                metadata: "x".into(),
            })],
            ExpectedVersion::Exact(2),
        )
        .await;
    assert!(
        matches!(&refused, Err(eventsource::Error::InvalidInput { message }) if message.contains("`metadata`")),
        "{refused:?}"
    );
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 2);

    // So is one whose type denies unknown fields: it could not read its own payload back.
    #[derive(Debug, serde::Serialize, serde::Deserialize, DomainEvent)]
    #[event(aggregate = "Task")]
    #[serde(deny_unknown_fields)]
    struct Strict {
        note: String,
    }
    let refused = store
        .append_events(
            id,
            "Task",
            vec![NewEvent::new(Strict { note: "x".into() })],
            ExpectedVersion::Exact(2),
        )
        .await;
    assert!(
        matches!(&refused, Err(eventsource::Error::InvalidInput { message }) if message.contains("denies unknown fields")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_shared_database_an_earlier_version_initialized_is_recognized() {
    // An eventsource-py table that an earlier version of this library initialized: it
    // has this library's columns, no settings, and eventsource-py's rows (metadata NULL).
    let dir = TempDir::new();
    let path = dir.file("shared.db");
    {
        let store = SqliteEventStore::open(&path).await.unwrap();
        store.initialize().await.unwrap();
        sqlx::raw_sql(
            "DROP TABLE eventsource_settings;
             INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, \
                 timestamp, payload, created_at) \
             VALUES ('00000000-0000-4000-8000-000000000009', '00000000-0000-4000-8000-000000000001', \
                 'Task', 'TaskCreated', 1, '2024-01-01T00:00:00+00:00', \
                 '{\"title\": \"from python\", \"aggregate_id\": \"00000000-0000-4000-8000-000000000001\", \"aggregate_type\": \"Task\"}', \
                 '2024-01-01T00:00:00+00:00')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        store.close().await;
    }
    let store = SqliteEventStore::open(&path).await.unwrap();
    assert_eq!(
        store.payload_format(),
        PayloadFormat::Lean,
        "not recorded yet"
    );
    store.initialize().await.unwrap();
    assert_eq!(store.payload_format(), PayloadFormat::EventsourcePy);
    // An explicit choice is kept.
    store.set_payload_format(PayloadFormat::Lean).await.unwrap();
    store.initialize().await.unwrap();
    assert_eq!(store.payload_format(), PayloadFormat::Lean);
}
