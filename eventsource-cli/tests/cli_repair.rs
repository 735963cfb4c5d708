//! The real `eventsource` binary repairing, verifying and moving real SQLite files:
//! checkpoints, dead letters and the outbox listed and repaired, `verify` finding each
//! kind of damage planted in a copy, and export then import.

mod common;

use std::path::Path;

use common::known::{known_store, path_str};
use common::{eventsource, fails, json_lines, ok, stderr, stdout};
use eventsource::prelude::*;
use eventsource::sqlx;
use eventsource::testing::TempDir;
use eventsource::{CheckpointStore, OutboxStore};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_dead_letters_and_the_outbox_are_listed_and_repaired() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("ops.db");
    known_store(&path).await.close().await;
    let db = path_str(&path);

    let checkpoints = json_lines(&["checkpoints", "list", db, "--json"]);
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0]["name"], "order-list");
    assert_eq!(checkpoints[0]["position"], 3);
    assert_eq!(checkpoints[0]["events_behind"], 2);
    assert_eq!(checkpoints[0]["seconds_behind"], 2.0);
    // No terminal to ask on: refused unless --yes.
    fails(
        &["checkpoints", "rewind", db, "order-list", "--to", "1"],
        2,
        "pass --yes",
    );
    fails(
        &[
            "checkpoints",
            "rewind",
            db,
            "order-list",
            "--to",
            "9",
            "--yes",
        ],
        2,
        "beyond the store's head 5",
    );
    fails(
        &["checkpoints", "reset", db, "nobody", "--yes"],
        2,
        "no checkpoint named `nobody`",
    );
    assert!(ok(&[
        "checkpoints",
        "rewind",
        db,
        "order-list",
        "--to",
        "1",
        "--yes"
    ])
    .contains("moved from 3 to 1"));
    assert_eq!(
        json_lines(&["checkpoints", "list", db, "--json"])[0]["events_behind"],
        4
    );
    assert!(ok(&["checkpoints", "reset", db, "order-list", "--yes"]).contains("reset"));
    let store = SqliteEventStore::open(&path).await.unwrap();
    assert_eq!(store.get_position("order-list").await.unwrap(), None);

    let letters = json_lines(&["dlq", "list", db, "--json"]);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["event_type"], "OrderPaid");
    assert_eq!(letters[0]["status"], "failed");
    let id = letters[0]["id"].as_i64().unwrap().to_string();
    let shown = ok(&["dlq", "show", db, &id]);
    assert!(
        shown.contains("boom: no such customer") && shown.contains("\"amount\": 50.0"),
        "{shown}"
    );
    assert_eq!(
        json_lines(&["dlq", "stats", db, "--json"])[0]["failed_by_projection"],
        json!({ "order-list": 1 })
    );
    fails(&["dlq", "show", db, "999"], 2, "999");
    ok(&[
        "dlq",
        "resolve",
        db,
        &id,
        "--note",
        "customer restored by hand",
    ]);
    let resolved = &json_lines(&["dlq", "show", db, &id, "--json"])[0];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolution"], "customer restored by hand");
    assert_eq!(
        json_lines(&["dlq", "list", db, "--json", "--status", "failed"]).len(),
        0
    );

    let status = &json_lines(&["outbox", "status", db, "--json"])[0];
    assert_eq!(
        (
            status["pending"].as_u64(),
            status["published"].as_u64(),
            status["failed"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    let failed = json_lines(&["outbox", "list", db, "--json", "--status", "failed"]);
    assert_eq!(failed.len(), 1);
    fails(&["outbox", "retry", db], 2, "pass --yes");
    fails(
        &["outbox", "retry", db, "1", "2", "--yes"],
        2,
        "outbox entries 1 are not failed entries (nothing was changed)",
    );
    assert!(ok(&["outbox", "retry", db, "--yes"]).contains("1 failed entries back to pending"));
    assert_eq!(
        json_lines(&["outbox", "status", db, "--json"])[0]["pending"],
        4
    );
    assert!(store
        .get_pending_events(10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.retry_count == 0));
    store.close().await;
}

/// Plants one kind of damage in a copy of the known database; `verify` must report it
/// (exit 1) with its kind.
async fn damaged(dir: &TempDir, name: &str, damage: &str) -> String {
    let path = dir.file(&format!("{name}.db"));
    known_store(&path).await.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(damage).execute(&pool).await.unwrap();
    pool.close().await;
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_each_kind_of_damage() {
    let dir = TempDir::new().unwrap();
    let clean = dir.file("clean.db");
    known_store(&clean).await.close().await;
    let report = ok(&["verify", path_str(&clean)]);
    assert!(
        report.contains("ok: 5 events in 2 streams, no problem"),
        "{report}"
    );

    for (name, damage, kind, at) in [
        ("gap", "DELETE FROM events WHERE global_position = 2", "version_gap", 4),
        ("payload", "UPDATE events SET payload = '{not json' WHERE global_position = 3", "unreadable", 3),
        (
            "snapshot",
            "INSERT INTO snapshots (aggregate_id, aggregate_type, version, schema_version, state, created_at) \
             VALUES ('00000000-0000-4000-8000-000000000001', 'Order', 9, 1, '{}', '2026-01-31T12:00:00Z')",
            "snapshot_ahead",
            0,
        ),
        (
            "outbox",
            "INSERT INTO event_outbox (event_id, event_type, aggregate_id, aggregate_type, global_position, event_data, created_at) \
             VALUES ('00000000-0000-4000-8000-0000000000ee', 'Ghost', '00000000-0000-4000-8000-000000000001', 'Order', 77, '{}', '2026-01-31T12:00:00Z')",
            "outbox_orphan",
            77,
        ),
        ("version", "UPDATE events SET version = 7 WHERE global_position = 5", "version_gap", 5),
    ] {
        let db = damaged(&dir, name, damage).await;
        let output = eventsource(&["verify", &db, "--json"]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        let lines: Vec<Value> = stdout(&output).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let problems: Vec<&Value> = lines.iter().filter(|l| l.get("kind").is_some()).collect();
        assert!(
            problems.iter().any(|p| p["kind"] == kind && p["global_position"] == at),
            "{name}: expected {kind} at {at} in {lines:?}"
        );
        let summary = lines.last().unwrap();
        assert_eq!(summary["ok"], false, "{name}");
        assert_eq!(summary["problems"].as_u64().unwrap() as usize, problems.len());
        let text = eventsource(&["verify", &db]);
        assert!(stdout(&text).contains(kind), "{name}: {}", stdout(&text));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_keeps_every_event_and_resumes() {
    let dir = TempDir::new().unwrap();
    let source = dir.file("source.db");
    known_store(&source).await.close().await;
    let backup = dir.file("backup.jsonl");
    let copy = dir.file("copy.db");
    assert!(
        ok(&["export", path_str(&source), "-o", path_str(&backup)]).contains("exported 5 events")
    );
    assert!(!dir.file("backup.jsonl.partial").exists());
    assert_eq!(std::fs::read_to_string(&backup).unwrap().lines().count(), 5);
    assert!(ok(&["import", path_str(&copy), "-i", path_str(&backup)])
        .contains("imported 5 events (0 stored already"));
    // Again: every event is there already.
    let again = &json_lines(&["import", path_str(&copy), "-i", path_str(&backup), "--json"])[0];
    assert_eq!(
        (again["imported"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(5))
    );
    let without_storage_time = |db: &Path| -> Vec<Value> {
        json_lines(&["events", path_str(db), "--json"])
            .into_iter()
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("stored_at");
                e
            })
            .collect()
    };
    assert_eq!(without_storage_time(&source), without_storage_time(&copy));
    ok(&["verify", path_str(&copy)]);
    // Standard output, piped.
    let exported = ok(&["export", path_str(&source)]);
    assert_eq!(exported, std::fs::read_to_string(&backup).unwrap());
    // A bad line is refused with its number.
    let broken = dir.file("broken.jsonl");
    std::fs::write(&broken, "{\"event_id\": 1}\n").unwrap();
    fails(
        &["import", path_str(&copy), "-i", path_str(&broken)],
        2,
        "line 1: not an exported event",
    );
}
