//! The real `eventsource` binary reading real SQLite files: each inspection command's
//! output on a known database, `--json` parsed back, `--follow` seeing an event appended
//! by another process, a read-only inspection leaving the file unchanged, and bad stores
//! giving exit 2 and one clear line. (Repairs, `verify` and transfers: `cli_repair.rs`.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::known::{known_store, path_str, CORRELATION, ORDER};
use common::{eventsource, fails, json_lines, ok};
use eventsource::prelude::*;
use eventsource::testing::TempDir;
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_events_stream_and_trace_show_a_known_database() {
    let dir = TempDir::new().unwrap();
    let db = dir.file("known.db");
    known_store(&db).await.close().await;
    let db = path_str(&db);

    let info = ok(&["info", db]);
    for line in [
        "events         5",
        "head position  5",
        "streams        2",
        "tenants        1",
        "first event    2026-01-31T12:00:01.000Z",
        "last event     2026-01-31T12:00:05.000Z",
        "outbox         on",
        "OrderShipped v2",
        "no event types registered in this binary",
    ] {
        assert!(info.contains(line), "info lacks `{line}`:\n{info}");
    }
    let info = &json_lines(&["info", db, "--json"])[0];
    assert_eq!(info["events"], 5);
    assert_eq!(info["streams"], 2);
    assert_eq!(
        info["aggregate_types"],
        json!([{"aggregate_type": "Customer", "events": 2}, {"aggregate_type": "Order", "events": 3}])
    );
    assert_eq!(info["outbox_enabled"], true);
    assert_eq!(info["checkpoints"], 1);

    let all = json_lines(&["events", db, "--json"]);
    let positions: Vec<u64> = all
        .iter()
        .map(|e| e["global_position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert_eq!(all[3]["event_type"], "OrderShipped");
    assert_eq!(all[3]["event_version"], 2);
    assert_eq!(all[3]["payload"], json!({ "carrier": "post" }));
    let orders = json_lines(&[
        "events",
        db,
        "--json",
        "--aggregate-type",
        "Order",
        "--direction",
        "backward",
        "--limit",
        "2",
    ]);
    let types: Vec<&str> = orders
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["OrderShipped", "OrderPaid"]);
    let renamed = json_lines(&[
        "events",
        db,
        "--json",
        "--type",
        "CustomerRenamed",
        "--type",
        "OrderPlaced",
    ]);
    assert_eq!(renamed.len(), 2);
    let tenant = json_lines(&[
        "events",
        db,
        "--json",
        "--tenant",
        &Uuid::from_u128(7).to_string(),
    ]);
    assert_eq!(tenant.len(), 1);
    let window = json_lines(&[
        "events",
        db,
        "--json",
        "--since",
        "2026-01-31T12:00:02Z",
        "--until",
        "2026-01-31T12:00:04Z",
    ]);
    assert_eq!(window.len(), 3);
    let positions_of = |args: &[&str]| -> Vec<u64> {
        json_lines(args)
            .iter()
            .map(|e| e["global_position"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        positions_of(&["events", db, "--json", "--until-position", "2"]),
        [1, 2]
    );
    let back = [
        "events",
        db,
        "--json",
        "--until-position",
        "4",
        "--direction",
        "backward",
        "--limit",
        "2",
    ];
    assert_eq!(positions_of(&back), [4, 3]);
    // Following, it stops at the end position instead of waiting for more.
    let follow = ["events", db, "--json", "--follow", "--until-position", "3"];
    assert_eq!(positions_of(&follow), [1, 2, 3]);
    let text = ok(&["events", db, "--from", "3", "--limit", "1"]);
    assert!(
        text.starts_with(&format!(
            "#4  2026-01-31T12:00:04.000Z  Order {ORDER} v3  OrderShipped (v2)"
        )),
        "{text}"
    );
    assert!(
        text.contains("\"carrier\": \"post\""),
        "payload pretty-printed: {text}"
    );

    let stream = ok(&["stream", db, &ORDER.to_string()]);
    assert!(
        stream.starts_with(&format!("stream {ORDER}:Order at version 3")),
        "{stream}"
    );
    let versions: Vec<u64> = json_lines(&[
        "stream",
        db,
        &ORDER.to_string(),
        "--type",
        "Order",
        "--json",
    ])
    .iter()
    .map(|e| e["aggregate_version"].as_u64().unwrap())
    .collect();
    assert_eq!(versions, [1, 2, 3]);
    fails(
        &["stream", db, &Uuid::from_u128(5).to_string()],
        2,
        "no stream of aggregate",
    );

    let trace = ok(&["trace", db, &CORRELATION.to_string()]);
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines[0], format!("correlation {CORRELATION}: 4 events"));
    assert!(lines[1].starts_with("#1 OrderPlaced Order"), "{trace}");
    assert!(lines[2].starts_with("└─ #2 OrderPaid Order"), "{trace}");
    assert!(
        lines[3].starts_with("   └─ #4 OrderShipped Order"),
        "{trace}"
    );
    assert!(
        lines[4].starts_with("#3 CustomerRegistered Customer")
            && lines[4].contains("outside this correlation"),
        "{trace}"
    );
    assert_eq!(
        json_lines(&["trace", db, &CORRELATION.to_string(), "--json"]).len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_an_event_another_process_appends() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("live.db");
    let store = known_store(&path).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args([
            "events",
            path_str(&path),
            "--json",
            "--follow",
            "--poll-ms",
            "50",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..5 {
        lines.next().unwrap().unwrap();
    }
    let appended = store
        .append_events(
            Uuid::new_v4(),
            "Order",
            vec![NewEvent::raw("OrderPlaced", 1, json!({ "total": 1.5 }))],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let started = Instant::now();
    let line = lines.next().unwrap().unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["global_position"], appended.global_position);
    assert_eq!(event["payload"], json!({ "total": 1.5 }));
    assert!(started.elapsed() < Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
    store.close().await;
}

#[test]
fn bad_stores_and_arguments_exit_2_with_one_line() {
    fails(
        &["info", "/nonexistent/events.db"],
        2,
        "no SQLite database at /nonexistent/events.db",
    );
    fails(
        &["info", "postgres://nobody:pw@127.0.0.1:1/none"],
        2,
        "eventsource: could not open database `postgres://nobody:***@127.0.0.1:1/none`",
    );
    fails(
        &["info", "/etc/hostname", "--schema", "x"],
        2,
        "--schema applies to postgres:// stores",
    );
    let dir = TempDir::new().unwrap();
    let junk = dir.file("junk.db");
    std::fs::write(&junk, "this is not a database, it only has the name of one").unwrap();
    fails(&["info", path_str(&junk)], 2, "file is not a database");
    let output = eventsource(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(ok(&["--help"]).contains("verify"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_inspection_never_writes() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("ro.db");
    known_store(&path).await.close().await;
    let before = std::fs::read(&path).unwrap();
    let order = ORDER.to_string();
    let correlation = CORRELATION.to_string();
    for args in [
        vec!["info"],
        vec!["events"],
        vec!["verify"],
        vec!["export"],
        vec!["checkpoints", "list"],
        vec!["dlq", "list"],
        vec!["dlq", "stats"],
        vec!["outbox", "status"],
        vec!["outbox", "list"],
    ] {
        let mut args = args.clone();
        args.push(path_str(&path));
        ok(&args);
    }
    ok(&["stream", path_str(&path), &order]);
    ok(&["trace", path_str(&path), &correlation]);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
