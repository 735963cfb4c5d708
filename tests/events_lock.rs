//! `events.lock`: the shapes the derive reads from types and their serde attributes, and
//! the check that fails on a change stored rows could not be read with.
#![allow(dead_code)] // the event types are here for their shapes

mod support;

use std::collections::HashMap;

use eventsource::schema::{self, compare, Lock, LockProblem};
use eventsource::{DomainEvent, EventRegistry};
use serde::{Deserialize, Serialize};
use support::TempDir;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "LockedShapes", version = 1)]
#[serde(rename_all = "camelCase")]
struct Shapes {
    first_name: String,
    #[serde(rename = "isbn13")]
    isbn: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(skip)]
    cache: u32,
    #[serde(flatten)]
    extra: HashMap<String, serde_json::Value>,
    r#type: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[serde(deny_unknown_fields)]
struct Strict {
    a: u8,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Wrapper(Strict);

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Marker {}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "Change")]
#[serde(tag = "kind")]
enum Change {
    Renamed { to: String },
    Cleared,
}

#[test]
fn shapes_are_what_serde_reads() {
    assert_eq!(
        Shapes::SHAPE,
        "{..HashMap<String,serde_json::Value>, firstName: String, isbn13?: Option<String>, \
         tags?: Vec<String>, type: String}"
    );
    assert_eq!(Strict::SHAPE, "strict {a: u8}");
    assert_eq!(Wrapper::SHAPE, "(Strict)");
    assert_eq!(Marker::SHAPE, "{}");
    assert_eq!(Change::SHAPE, "enum {Renamed{to: String}, Cleared}");
}

fn lock(lines: &str) -> Lock {
    Lock::parse(lines).unwrap()
}

#[test]
fn incompatible_changes_fail_and_compatible_ones_ask_for_an_update() {
    let locked = lock(
        "event Book v1 {isbn?: Option<String>, pages: u32, title: String}\n\
         event Gone v1 {}\n\
         event Strict v1 strict {a: u8, b: u8}\n",
    );
    let code = lock(
        "event Book v1 {author: String, isbn: Option<String>, pages: u64, title: String}\n\
         event Book v2 {title: String} from Book v1\n\
         event Strict v1 strict {a: u8}\n",
    );
    let problems = compare(&locked, &code);
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        matches!(
            &problems[0],
            LockProblem::Incompatible { name, version: 1, changes }
                if name == "Book" && changes.len() == 3
        ),
        "{text:#?}"
    );
    assert!(
        text[0].contains("`isbn` was optional, is required"),
        "{}",
        text[0]
    );
    assert!(
        text[0].contains("`author` is new and required"),
        "{}",
        text[0]
    );
    assert!(
        text[0].contains("`pages` was `u32`, is `u64`"),
        "{}",
        text[0]
    );
    assert!(matches!(&problems[1], LockProblem::Removed { name, .. } if name == "Gone"));
    assert!(
        text[2].contains("`b` was removed under deny_unknown_fields"),
        "{}",
        text[2]
    );
    assert!(
        text[3].contains("Book: v2 is not in the lock"),
        "{}",
        text[3]
    );
    assert_eq!(problems.len(), 4, "{text:#?}");

    // An optional field added, a field removed: compatible, but the lock is out of date.
    let code =
        lock("event Book v1 {isbn?: Option<String>, note?: Option<String>, title: String}\n");
    let locked = lock("event Book v1 {isbn?: Option<String>, pages: u32, title: String}\n");
    let problems = compare(&locked, &code);
    assert!(
        matches!(&problems[..], [LockProblem::OutOfDate { detail, .. }] if detail.contains("compatibly")),
        "{problems:?}"
    );
    assert!(compare(&code, &code).is_empty());
}

#[test]
fn the_lock_renders_parses_and_checks_the_code() {
    let dir = TempDir::new();
    let path = dir.file("events.lock");
    let code = Lock::of_code(&EventRegistry::global(), "events_lock::").unwrap();
    assert!(code.events.contains_key(&("LockedShapes".to_owned(), 1)));
    // Only the types under the prefix.
    let support = Lock::of_code(&EventRegistry::global(), "events_lock::support::").unwrap();
    assert!(support.events.contains_key(&("TaskCreated".to_owned(), 1)));
    assert!(!support.events.contains_key(&("LockedShapes".to_owned(), 1)));
    std::fs::write(&path, code.render()).unwrap();
    assert_eq!(Lock::parse(&code.render()).unwrap(), code);
    assert!(schema::check_lock(&path, "events_lock::")
        .unwrap()
        .is_empty());
    schema::assert_lock_matches_in(&path, "events_lock::");

    // Someone made `first_name` an integer without a new version.
    let edited = code.render().replace("firstName: String", "firstName: u64");
    std::fs::write(&path, edited).unwrap();
    let problems = schema::check_lock(&path, "events_lock::").unwrap();
    assert!(
        matches!(&problems[..], [LockProblem::Incompatible { name, .. }] if name == "LockedShapes"),
        "{problems:?}"
    );
    let panicked =
        std::panic::catch_unwind(|| schema::assert_lock_matches_in(&path, "events_lock::"));
    assert!(panicked.is_err());
    assert!(matches!(
        Lock::parse("event Nope"),
        Err(eventsource::Error::InvalidInput { .. })
    ));
}
