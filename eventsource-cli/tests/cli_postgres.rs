//! The real `eventsource` binary against PostgreSQL (a throwaway cluster of the test
//! kit's harness): `migrate` from a SQLite file with its report, then the inspection
//! commands and `verify` on the PostgreSQL schema, damage found there, and an import.

mod common;

use std::path::Path;

use common::{eventsource, json_lines};
use eventsource::prelude::*;
use eventsource::testing::{postgres, TempDir};
use serde_json::{json, Value};
use uuid::Uuid;

async fn sqlite_with_events(path: &Path, count: usize) {
    let store = SqliteEventStore::open(path).await.unwrap();
    store.initialize().await.unwrap();
    for i in 0..count {
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![
                    NewEvent::raw("TaskCreated", 1, json!({ "title": format!("task {i}") })),
                    NewEvent::raw("TaskCompleted", 1, json!({})),
                ],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    store.save_progress("tasks", 7, None, 7).await.unwrap();
    store.close().await;
}

fn fresh_schema() -> String {
    format!("cli_{}", Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_inspect_and_verify_postgres() {
    let Some(server) = postgres::server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let source = dir.file("source.db");
    sqlite_with_events(&source, 60).await;
    let schema = fresh_schema();
    let url = server.url();
    let source = source.to_str().unwrap();

    let report = &json_lines(&[
        "migrate",
        source,
        url,
        "--schema",
        &schema,
        "--json",
        "--batch-size",
        "25",
    ])[0];
    assert_eq!(report["source_events"], 120);
    assert_eq!(report["target_events"], 120);
    assert_eq!(report["copied"], 120);
    assert_eq!(report["checkpoints"], 1);
    assert_eq!(report["verified"], true);
    // Resumable: again, nothing to copy.
    let again = &json_lines(&["migrate", source, url, "--schema", &schema, "--json"])[0];
    assert_eq!(
        (again["copied"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(120))
    );

    let info = &json_lines(&["info", url, "--schema", &schema, "--json"])[0];
    assert_eq!(info["events"], 120);
    assert_eq!(info["streams"], 60);
    assert_eq!(info["event_types"].as_array().unwrap().len(), 2);
    assert!(info["database_bytes"].as_u64().unwrap() > 0);
    let events = json_lines(&[
        "events",
        url,
        "--schema",
        &schema,
        "--json",
        "--type",
        "TaskCompleted",
        "--limit",
        "5",
    ]);
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["event_type"] == "TaskCompleted"));
    let checkpoints = json_lines(&["checkpoints", "list", url, "--schema", &schema, "--json"]);
    assert_eq!(
        (
            checkpoints[0]["name"].as_str(),
            checkpoints[0]["events_behind"].as_u64()
        ),
        (Some("tasks"), Some(113))
    );
    let verified = json_lines(&["verify", url, "--schema", &schema, "--json"]);
    assert_eq!(verified.last().unwrap()["ok"], true, "{verified:?}");

    // Damage: a version removed from the middle of a stream.
    let store = PostgresEventStore::options(url)
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    eventsource::sqlx::query(&format!(
        "DELETE FROM \"{schema}\".events WHERE global_position = 1"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let output = eventsource(&["verify", url, "--schema", &schema, "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let problems: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|p: &Value| p.get("kind").is_some())
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (
            problems[0]["kind"].as_str(),
            problems[0]["global_position"].as_u64()
        ),
        (Some("version_gap"), Some(2))
    );

    // Export from PostgreSQL, import into a new schema.
    let backup = dir.file("pg.jsonl");
    let exported = eventsource(&[
        "export",
        url,
        "--schema",
        &schema,
        "-o",
        backup.to_str().unwrap(),
    ]);
    assert!(exported.status.success());
    let copy = fresh_schema();
    let backup = backup.to_str().unwrap();
    // The damaged stream, first in the file, cannot start at version 2: refused, loudly,
    // with its line.
    let refused = eventsource(&["import", url, "--schema", &copy, "-i", backup]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.starts_with("eventsource: line 1: ") && err.contains("expected"),
        "{err}"
    );
    // Without that line, the rest goes in, and again is a no-op.
    let text = std::fs::read_to_string(backup).unwrap();
    let rest: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let repaired = dir.file("rest.jsonl");
    std::fs::write(&repaired, rest).unwrap();
    let repaired = repaired.to_str().unwrap();
    let imported = &json_lines(&["import", url, "--schema", &copy, "-i", repaired, "--json"])[0];
    assert_eq!(
        (imported["imported"].as_u64(), imported["skipped"].as_u64()),
        (Some(118), Some(0))
    );
    let again = &json_lines(&["import", url, "--schema", &copy, "-i", repaired, "--json"])[0];
    assert_eq!(
        (again["imported"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(118))
    );
    let copied = &json_lines(&["info", url, "--schema", &copy, "--json"])[0];
    assert_eq!(copied["events"], 118);
}

#[test]
fn a_missing_schema_and_an_unreachable_server_exit_2() {
    let Some(server) = postgres::server() else {
        return;
    };
    let output = eventsource(&["info", server.url(), "--schema", "no_such_schema_here"]);
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let output = eventsource(&["migrate", "/nonexistent.db", server.url()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no SQLite database at /nonexistent.db")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_on_postgres_is_woken_by_listen_notify() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let Some(server) = postgres::server() else {
        return;
    };
    let schema = fresh_schema();
    let store = PostgresEventStore::options(server.url())
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let append = |title: &'static str| {
        let store = store.clone();
        async move {
            store
                .append_events(
                    Uuid::new_v4(),
                    "Task",
                    vec![NewEvent::raw("TaskCreated", 1, json!({ "title": title }))],
                    ExpectedVersion::NoStream,
                )
                .await
                .unwrap()
        }
    };
    append("before").await;
    // Polling only once a minute: an event seen within seconds came by NOTIFY.
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args([
            "events",
            server.url(),
            "--schema",
            &schema,
            "--json",
            "--follow",
            "--poll-ms",
            "60000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["payload"]["title"], "before");
    let started = Instant::now();
    let saved = append("live").await;
    let line = lines.next().unwrap().unwrap();
    let live: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(live["global_position"], saved.global_position);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "delivered by NOTIFY, not by the minute's poll"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    store.close().await;
}
