//! The real `eventsource` binary against real SQLite files: each command's output on a
//! known database, `--json` parsed back, `verify` finding each kind of damage planted in
//! a copy, `--follow` seeing an event appended by another process, export then import,
//! and bad stores giving exit 2 and one clear line.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventsource, fails, json_lines, ok, stderr, stdout};
use eventsource::prelude::*;
use eventsource::sqlx;
use eventsource::testing::TempDir;
use eventsource::{CheckpointStore, DeadLetterStore, FailedEvent, OutboxStore};
use serde_json::{json, Value};
use uuid::Uuid;

const ORDER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);
const CUSTOMER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0002);
const CORRELATION: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_00c0);

/// A store of five events in two streams (an order placed, paid and shipped by a chain
/// of causes in one correlation; a customer registered and renamed), a checkpoint, a
/// dead letter and outbox entries.
async fn known_store(path: &Path) -> SqliteEventStore {
    let store = SqliteEventStore::options(path)
        .outbox(true)
        .open()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let at = |s: u32| {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-01-31T12:00:{s:02}Z"))
            .unwrap()
            .to_utc()
    };
    let placed = NewEvent::raw("OrderPlaced", 1, json!({ "total": 50.0 }))
        .with_timestamp(at(1))
        .with_correlation_id(CORRELATION);
    let paid = NewEvent::raw("OrderPaid", 1, json!({ "amount": 50.0 }))
        .with_timestamp(at(2))
        .with_correlation_id(CORRELATION)
        .with_causation_id(placed.event_id());
    let shipped = NewEvent::raw("OrderShipped", 2, json!({ "carrier": "post" }))
        .with_timestamp(at(4))
        .with_correlation_id(CORRELATION)
        .with_causation_id(paid.event_id());
    store
        .append_events(
            ORDER,
            "Order",
            vec![placed, paid],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let tenant = Uuid::from_u128(7);
    store
        .append_events(
            CUSTOMER,
            "Customer",
            vec![
                NewEvent::raw("CustomerRegistered", 1, json!({ "name": "Ada" }))
                    .with_timestamp(at(3))
                    .with_tenant_id(tenant)
                    .with_correlation_id(CORRELATION)
                    .with_causation_id(Uuid::from_u128(99)),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store
        .append_events(ORDER, "Order", vec![shipped], ExpectedVersion::Exact(2))
        .await
        .unwrap();
    store
        .append_events(
            CUSTOMER,
            "Customer",
            vec![
                NewEvent::raw("CustomerRenamed", 1, json!({ "name": "Ada L." }))
                    .with_timestamp(at(5)),
            ],
            ExpectedVersion::Exact(1),
        )
        .await
        .unwrap();
    store.save_progress("order-list", 3, None, 3).await.unwrap();
    let paid = {
        use futures::StreamExt;
        let events: Vec<StoredEvent> = store
            .read_all(ReadOptions::new().event_types(["OrderPaid"]))
            .map(Result::unwrap)
            .collect()
            .await;
        events.into_iter().next().unwrap()
    };
    store
        .add_failed_event(FailedEvent::for_event(
            "order-list",
            &paid,
            "boom: no such customer",
            3,
        ))
        .await
        .unwrap();
    let entries = store.get_pending_events(10).await.unwrap();
    store.mark_published(entries[0].id).await.unwrap();
    store.mark_failed(entries[1].id).await.unwrap();
    store
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

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

/// An event type this test binary registers, as an application embedding the CLI does.
#[derive(Debug, serde::Serialize, serde::Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
struct OrderPlaced {
    total: f64,
}

/// Runs the commands in this process, as a binary of the application's own would: its
/// registry has `OrderPlaced`.
async fn embedded(
    args: &[&str],
) -> (
    Result<eventsource_cli::Outcome, eventsource_cli::CliError>,
    String,
) {
    use clap::Parser;
    let mut argv = vec!["eventsource"];
    argv.extend_from_slice(args);
    let cli = eventsource_cli::Cli::parse_from(argv);
    let mut out = Vec::new();
    let outcome = eventsource_cli::run(cli, &mut out).await;
    (outcome, String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_in_an_application_it_checks_types_against_its_registry() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("app.db");
    let store = known_store(&path).await;
    store.close().await;
    let db = path_str(&path);
    // The known store's other types are not this application's: verify says which.
    let (outcome, report) = embedded(&["verify", db, "--json"]).await;
    assert_eq!(outcome.unwrap(), eventsource_cli::Outcome::CheckFailed);
    let problems: Vec<Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let unknown: Vec<u64> = problems
        .iter()
        .filter(|p| p["kind"] == "unknown_type")
        .map(|p| p["global_position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        unknown,
        [2, 3, 4, 5],
        "every type but OrderPlaced: {report}"
    );
    let (_, info) = embedded(&["info", db]).await;
    assert!(
        info.contains("stored but not registered: CustomerRegistered"),
        "{info}"
    );
    // The standalone binary has no registry: it does not check types at all.
    assert!(ok(&["verify", db]).contains("types not checked"));
}
