//! The real `eventsource` binary on a database eventsource-py created (the real package,
//! installed by the test kit's `testing::python`), opened read-only: what it shows, what
//! `verify` says, and the one clear line where a table eventsource-py wrote lacks the
//! columns `initialize()` adds.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fails, json_lines, ok};
use eventsource::testing::TempDir;

/// The task eventsource-py appends (tests/python/eventsource_py_interop.py).
const PYTHON_TASK: &str = "00000000-0000-4000-8000-000000000001";

#[test]
fn the_cli_reads_an_eventsource_py_database_without_writing_it() {
    let Some(python) =
        eventsource::testing::python::eventsource_py(Path::new(env!("CARGO_TARGET_TMPDIR")))
    else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let db = dir.file("python.db");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/eventsource_py_interop.py");
    let created = Command::new(&python)
        .arg(&script)
        .arg("create")
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let before = std::fs::read(&db).unwrap();
    let db = db.to_str().unwrap();

    let info = &json_lines(&["info", db, "--json"])[0];
    assert_eq!(
        (info["events"].as_u64(), info["streams"].as_u64()),
        (Some(1), Some(1))
    );
    let events = json_lines(&["events", db, "--json"]);
    assert_eq!(events[0]["event_type"], "TaskCreated");
    assert_eq!(events[0]["aggregate_id"], PYTHON_TASK);
    assert_eq!(events[0]["payload"]["title"], "written by python");
    assert!(ok(&["stream", db, PYTHON_TASK]).contains("TaskCreated"));
    assert!(ok(&["verify", db]).contains("ok: 1 events in 1 streams, no problem"));
    assert!(ok(&["checkpoints", "list", db]).contains("no checkpoints"));
    // eventsource-py's dead-letter table lacks a column this library adds: said in one
    // line, with what to do, and nothing written.
    fails(&["dlq", "list", db], 2, "call initialize() once");
    assert_eq!(std::fs::read(db).unwrap(), before);
    // A copy, exported and imported, reads the same.
    let backup = dir.file("python.jsonl");
    ok(&["export", db, "-o", backup.to_str().unwrap()]);
    let copy = dir.file("copy.db");
    ok(&[
        "import",
        copy.to_str().unwrap(),
        "-i",
        backup.to_str().unwrap(),
    ]);
    let copied = json_lines(&["events", copy.to_str().unwrap(), "--json"]);
    assert_eq!(copied[0]["event_id"], events[0]["event_id"]);
    assert_eq!(copied[0]["payload"]["title"], "written by python");
}
