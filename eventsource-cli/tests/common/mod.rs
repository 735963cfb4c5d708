//! Running the real `eventsource` binary from the tests.

#![allow(dead_code)]

pub(crate) mod known;

use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Runs the binary with `args`, standard input closed (no terminal to confirm on).
pub(crate) fn eventsource(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the eventsource binary runs")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed; its standard output.
pub(crate) fn ok(args: &[&str]) -> String {
    let output = eventsource(args);
    assert!(
        output.status.success(),
        "eventsource {args:?} exited {:?}: {}",
        output.status.code(),
        stderr(&output)
    );
    stdout(&output)
}

/// The JSON lines of a command that must succeed.
pub(crate) fn json_lines(args: &[&str]) -> Vec<Value> {
    ok(args)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// A command that must fail with `code` and one line on standard error containing
/// `says`.
pub(crate) fn fails(args: &[&str], code: i32, says: &str) {
    let output = eventsource(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "eventsource {args:?}: {}",
        stderr(&output)
    );
    let err = stderr(&output);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(says), "eventsource {args:?} said: {err}");
}
