//! `events.lock`: the event types and versions a build reads, with their payload shapes,
//! committed beside the code and checked in CI, so that a change a stored row could no
//! longer be read with is caught before it ships.
//!
//! ```text
//! # events.lock ...
//! event BookAdded v2 {authors: Vec<String>, title: String} from BookCreated v1
//! event BookAdded v3 {authors: Vec<String>, isbn?: Option<String>, title: String} from BookAdded v2
//! event BookCreated v1 {author: String, title: String}
//! aggregate Book snapshot v1
//! ```
//!
//! Shapes are what [`DomainEvent::SHAPE`](crate::DomainEvent::SHAPE) describes: the
//! derive reads them from the type and its serde attributes (no extra dependency, no
//! derive for users to add, and it sees `rename`, `default` and `flatten` the way serde
//! reads JSON). The check ([`compare`]) fails when
//! - a locked (type, version) is gone: its stored rows no longer read;
//! - a locked version's shape changed in a way its stored rows cannot be read with: a
//!   field added that is not optional, a field's type changed, an optional field made
//!   required, a field removed under `deny_unknown_fields`, or any change of a shape that
//!   is not a struct with named fields;
//! - a type or version is not in the lock yet, or a shape changed compatibly (a field
//!   added as optional, or removed, or a version now read by a JSON-level or split
//!   upcaster, locked as `(json)` or `(split -> A, B)`): the lock is out of date;
//! - an aggregate's snapshot version changed or is new;
//! - two Rust types claim one name and version.
//!
//! After an intended change, run the check with `EVENTSOURCE_UPDATE_LOCK=1` to rewrite
//! the lock, and review its diff like code.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::aggregate::AggregateRegistration;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;

/// The environment variable that makes [`assert_lock_matches`] rewrite the lock.
pub const UPDATE_LOCK_VAR: &str = "EVENTSOURCE_UPDATE_LOCK";

/// One locked event type version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedEvent {
    /// The payload shape.
    pub shape: String,
    /// The name and version it is upcast from, when it names a previous version.
    pub previous: Option<(String, u32)>,
}

/// The contents of an `events.lock`: event types by (name, version), and aggregates'
/// snapshot versions by aggregate type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// Event type versions.
    pub events: BTreeMap<(String, u32), LockedEvent>,
    /// Snapshot versions of aggregate types.
    pub aggregates: BTreeMap<String, u32>,
}

const HEADER: &str = "\
# events.lock: the event types and versions this code reads, with their payload shapes,
# and the snapshot versions of its aggregates. Checked by eventsource::schema; after an
# intended change, run the check with EVENTSOURCE_UPDATE_LOCK=1 and review the diff.
";

impl Lock {
    /// What `registry` and the `#[aggregate]` types registered through `inventory`
    /// hold, limited to Rust types whose path starts with `module_prefix` (`""` for
    /// all; the test kit's own events, `eventsource::testing::*`, never count). Two Rust
    /// types claiming one name and version is an error.
    ///
    /// # Errors
    /// [`Error::DuplicateEventType`].
    pub fn of_code(registry: &EventRegistry, module_prefix: &str) -> Result<Self> {
        registry.validate()?;
        let mut lock = Lock::default();
        for registration in registry.registered_types() {
            // The test kit's own events (feature `testing`) are no program's.
            if !registration.type_name().starts_with(module_prefix) || registration.is_test_kit() {
                continue;
            }
            lock.events.insert(
                (registration.name().to_owned(), registration.version()),
                LockedEvent {
                    shape: registration.shape().to_owned(),
                    previous: registration
                        .previous_name()
                        .zip(registration.previous_version())
                        .map(|(name, version)| (name.to_owned(), version)),
                },
            );
        }
        for upcaster in registry.split_upcasters() {
            if !upcaster.path().starts_with(module_prefix) {
                continue;
            }
            lock.events.insert(
                (upcaster.name().to_owned(), upcaster.version()),
                LockedEvent {
                    shape: format!("(split -> {})", upcaster.produces().join(", ")),
                    previous: None,
                },
            );
        }
        for aggregate in inventory::iter::<AggregateRegistration> {
            if aggregate.type_name.starts_with(module_prefix) {
                lock.aggregates
                    .insert(aggregate.name.to_owned(), aggregate.snapshot_version);
            }
        }
        Ok(lock)
    }

    /// Reads a lock from its text.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the line that does not read.
    pub fn parse(text: &str) -> Result<Self> {
        let mut lock = Lock::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || Error::InvalidInput {
                message: format!("events.lock line {}: `{line}` does not read", n + 1),
            };
            if let Some(rest) = line.strip_prefix("aggregate ") {
                let (name, version) = rest.split_once(" snapshot v").ok_or_else(bad)?;
                let version = version.parse().map_err(|_| bad())?;
                lock.aggregates.insert(name.to_owned(), version);
                continue;
            }
            let rest = line.strip_prefix("event ").ok_or_else(bad)?;
            let (name, rest) = rest.split_once(" v").ok_or_else(bad)?;
            let (version, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let version: u32 = version.parse().map_err(|_| bad())?;
            let (shape, previous) = match rest.rsplit_once(" from ") {
                Some((shape, from)) => {
                    let (from_name, from_version) = from.rsplit_once(" v").ok_or_else(bad)?;
                    let from_version = from_version.parse().map_err(|_| bad())?;
                    (shape, Some((from_name.to_owned(), from_version)))
                }
                None => (rest, None),
            };
            lock.events.insert(
                (name.to_owned(), version),
                LockedEvent {
                    shape: shape.to_owned(),
                    previous,
                },
            );
        }
        Ok(lock)
    }

    /// The lock as text, one line per event type version and aggregate, sorted.
    pub fn render(&self) -> String {
        let mut text = HEADER.to_owned();
        for ((name, version), event) in &self.events {
            text.push_str(&format!("event {name} v{version} {}", event.shape));
            if let Some((from, from_version)) = &event.previous {
                text.push_str(&format!(" from {from} v{from_version}"));
            }
            text.push('\n');
        }
        for (name, version) in &self.aggregates {
            text.push_str(&format!("aggregate {name} snapshot v{version}\n"));
        }
        text
    }
}

/// A difference between a lock and the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockProblem {
    /// A locked version is no longer registered: its stored rows do not read.
    Removed {
        /// The event type name.
        name: String,
        /// Its version.
        version: u32,
    },
    /// A locked version's shape changed so that its stored rows may not read.
    Incompatible {
        /// The event type name.
        name: String,
        /// Its version.
        version: u32,
        /// What changed.
        changes: Vec<String>,
    },
    /// A version, or a compatible change of one, that the lock does not have yet.
    OutOfDate {
        /// The event type name (or aggregate type).
        name: String,
        /// What the lock lacks.
        detail: String,
    },
}

impl fmt::Display for LockProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockProblem::Removed { name, version } => write!(
                f,
                "{name} v{version} is in events.lock but no longer registered: rows stored at \
                 it would not read; keep its type (an upcaster chain can take it to the \
                 current version)"
            ),
            LockProblem::Incompatible {
                name,
                version,
                changes,
            } => write!(
                f,
                "{name} v{version} changed incompatibly ({}): rows stored at v{version} may \
                 not read; give the new shape a new version with `previous` naming the old one",
                changes.join("; ")
            ),
            LockProblem::OutOfDate { name, detail } => write!(
                f,
                "{name}: {detail}; update events.lock ({UPDATE_LOCK_VAR}=1)"
            ),
        }
    }
}

/// One field of a named-fields shape: its type, and whether stored JSON may lack it.
#[derive(Debug, PartialEq, Eq)]
struct Field {
    ty: String,
    optional: bool,
}

/// A named-fields shape: its fields by name (flattened ones under `..Type`), and
/// whether it refuses unknown fields; `None` for any other shape.
fn named_fields(shape: &str) -> Option<(BTreeMap<String, Field>, bool)> {
    let (strict, body) = match shape.strip_prefix("strict ") {
        Some(rest) => (true, rest),
        None => (false, shape),
    };
    let inner = body.strip_prefix('{')?.strip_suffix('}')?;
    let mut fields = BTreeMap::new();
    for part in split_top_level(inner) {
        if let Some(ty) = part.strip_prefix("..") {
            fields.insert(
                format!("..{ty}"),
                Field {
                    ty: ty.to_owned(),
                    optional: false,
                },
            );
            continue;
        }
        let (name, ty) = part.split_once(": ")?;
        let (name, optional) = match name.strip_suffix('?') {
            Some(name) => (name, true),
            None => (name, false),
        };
        fields.insert(
            name.to_owned(),
            Field {
                ty: ty.to_owned(),
                optional,
            },
        );
    }
    Some((fields, strict))
}

/// `text` split at the commas outside `<>`, `()`, `[]` and `{}`.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' | '[' | '{' => depth += 1,
            '>' | ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() {
        parts.push(text[start..].trim());
    }
    parts
}

/// How the shape `now` reads rows stored with the shape `locked`: the incompatible
/// changes, and whether anything changed at all.
fn shape_changes(locked: &str, now: &str) -> (Vec<String>, bool) {
    if locked == now {
        return (Vec::new(), false);
    }
    // A version now read as JSON (a JSON-level or split upcaster) reads any stored row
    // its function takes: the function, not a Rust type, decides.
    if now.starts_with("(json)") || now.starts_with("(split") {
        return (Vec::new(), true);
    }
    let (Some((old, _)), Some((new, strict))) = (named_fields(locked), named_fields(now)) else {
        return (vec![format!("`{locked}` became `{now}`")], true);
    };
    let mut changes = Vec::new();
    for (name, field) in &new {
        match old.get(name) {
            None if !field.optional => changes.push(format!("`{name}` is new and required")),
            None => {}
            Some(was) if was.ty != field.ty => {
                changes.push(format!("`{name}` was `{}`, is `{}`", was.ty, field.ty));
            }
            Some(was) if was.optional && !field.optional => {
                changes.push(format!("`{name}` was optional, is required"));
            }
            Some(_) => {}
        }
    }
    if strict {
        for name in old.keys().filter(|name| !new.contains_key(*name)) {
            changes.push(format!(
                "`{name}` was removed under deny_unknown_fields: stored rows have it"
            ));
        }
    }
    (changes, true)
}

/// The differences between `locked` and `code`, in name order.
pub fn compare(locked: &Lock, code: &Lock) -> Vec<LockProblem> {
    let mut problems = Vec::new();
    for ((name, version), event) in &locked.events {
        let Some(now) = code.events.get(&(name.clone(), *version)) else {
            problems.push(LockProblem::Removed {
                name: name.clone(),
                version: *version,
            });
            continue;
        };
        let (changes, changed) = shape_changes(&event.shape, &now.shape);
        if !changes.is_empty() {
            problems.push(LockProblem::Incompatible {
                name: name.clone(),
                version: *version,
                changes,
            });
        } else if changed || event.previous != now.previous {
            problems.push(LockProblem::OutOfDate {
                name: name.clone(),
                detail: format!("v{version} changed compatibly"),
            });
        }
    }
    for (name, version) in code.events.keys() {
        if !locked.events.contains_key(&(name.clone(), *version)) {
            problems.push(LockProblem::OutOfDate {
                name: name.clone(),
                detail: format!("v{version} is not in the lock"),
            });
        }
    }
    for (name, version) in &code.aggregates {
        if locked.aggregates.get(name) != Some(version) {
            problems.push(LockProblem::OutOfDate {
                name: name.clone(),
                detail: format!("aggregate snapshot v{version} is not in the lock"),
            });
        }
    }
    problems
}

/// Compares the lock at `path` with the code's event types (those whose Rust path
/// starts with `module_prefix`), through the global registry.
///
/// # Errors
/// [`Error::InvalidInput`] when the file does not read or parse;
/// [`Error::DuplicateEventType`].
pub fn check_lock(path: impl AsRef<Path>, module_prefix: &str) -> Result<Vec<LockProblem>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::InvalidInput {
        message: format!("{} does not read: {e}", path.display()),
    })?;
    let code = Lock::of_code(&EventRegistry::global(), module_prefix)?;
    Ok(compare(&Lock::parse(&text)?, &code))
}

/// A test helper for users' CI: panics, listing every problem, when the lock at `path`
/// does not match the code's event types; with `EVENTSOURCE_UPDATE_LOCK=1` it writes the
/// lock instead (creating it if missing).
///
/// ```no_run
/// #[test]
/// fn events_lock_matches() {
///     eventsource::schema::assert_lock_matches("events.lock");
/// }
/// ```
///
/// # Panics
/// When the lock does not match, or does not read, or cannot be written.
pub fn assert_lock_matches(path: impl AsRef<Path>) {
    assert_lock_matches_in(path, "");
}

/// As [`assert_lock_matches`], for the event types whose Rust path starts with
/// `module_prefix` (a test binary links the types of every crate it uses).
///
/// # Panics
/// As [`assert_lock_matches`].
pub fn assert_lock_matches_in(path: impl AsRef<Path>, module_prefix: &str) {
    let path = path.as_ref();
    if std::env::var_os(UPDATE_LOCK_VAR).is_some_and(|v| v != "0") {
        let code = Lock::of_code(&EventRegistry::global(), module_prefix)
            .unwrap_or_else(|e| panic!("events.lock: {e}"));
        std::fs::write(path, code.render())
            .unwrap_or_else(|e| panic!("{} cannot be written: {e}", path.display()));
        return;
    }
    let problems = check_lock(path, module_prefix).unwrap_or_else(|e| {
        panic!("{e} (create it with {UPDATE_LOCK_VAR}=1)");
    });
    assert!(
        problems.is_empty(),
        "{} does not match the code:\n{}",
        path.display(),
        problems
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
