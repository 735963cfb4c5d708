//! `verify`: a full integrity scan. Every problem is reported, with where it is, as it is
//! found; any problem exits 1.

use std::collections::HashMap;
use std::io::Write;

use eventsource::{EventRegistry, ReadOptions};
use futures::StreamExt;
use serde::Serialize;
use uuid::Uuid;

use crate::args::VerifyArgs;
use crate::backend;
use crate::error::CliError;
use crate::output::{progress_bar, Out};
use crate::target::{Access, Target};
use crate::Outcome;

/// One problem found.
#[derive(Debug, Serialize)]
struct Problem {
    /// What kind: `unreadable`, `version_gap`, `unknown_type`, `snapshot_ahead`,
    /// `outbox_orphan`.
    kind: &'static str,
    /// The global position it is at (0 where none applies).
    global_position: u64,
    /// What is wrong.
    detail: String,
}

/// The problems found so far, printed as they come (memory stays flat however many).
struct Report<'o, 'w> {
    out: &'o mut Out<'w>,
    problems: u64,
}

impl Report<'_, '_> {
    fn problem(&mut self, problem: Problem) -> Result<(), CliError> {
        self.problems += 1;
        self.out.either(&problem, || {
            format!(
                "position {:>8}  {:<15} {}",
                problem.global_position, problem.kind, problem.detail
            )
        })
    }
}

/// The last version seen of every stream, its aggregate type kept once per type.
#[derive(Default)]
struct Streams {
    types: Vec<String>,
    type_ids: HashMap<String, u32>,
    versions: HashMap<(Uuid, u32), u64>,
}

impl Streams {
    /// Records `version` for the stream; returns the version seen before (0 if none).
    fn advance(&mut self, aggregate_id: Uuid, aggregate_type: &str, version: u64) -> u64 {
        let id = match self.type_ids.get(aggregate_type) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
                self.types.push(aggregate_type.to_owned());
                self.type_ids.insert(aggregate_type.to_owned(), id);
                id
            }
        };
        self.versions
            .insert((aggregate_id, id), version)
            .unwrap_or(0)
    }
}

pub(super) async fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let target = Target::open(&args.store, Access::Read).await?;
    let mut out = Out::new(out, args.store.json);
    let result = scan(&target, &mut out).await;
    target.close().await;
    result
}

async fn scan(target: &Target, out: &mut Out<'_>) -> Result<Outcome, CliError> {
    let store = target.events();
    let head = store.get_global_position().await?;
    let registry = EventRegistry::global();
    let check_types = super::application_types() > 0;
    let bar = progress_bar(head, "verifying");
    let mut report = Report { out, problems: 0 };
    let mut streams = Streams::default();
    // Unregistered types: reported once each, with their count and first position.
    let mut unknown: HashMap<String, (u64, u64)> = HashMap::new();
    let mut unreadable = 0u64;
    let mut scanned = 0u64;
    {
        let mut events = store.read_all(ReadOptions::new());
        while let Some(item) = events.next().await {
            scanned += 1;
            let event = match item {
                Ok(event) => event,
                Err(eventsource::Error::CorruptEvent {
                    global_position,
                    reason,
                    ..
                }) => {
                    unreadable += 1;
                    report.problem(Problem {
                        kind: "unreadable",
                        global_position,
                        detail: format!("the row does not read: {reason}"),
                    })?;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            // Rows come in position order (the primary key): positions only increase.
            let position = event.global_position;
            bar.set_position(position);
            let envelope = &event.envelope;
            let version = envelope.aggregate_version;
            let before = streams.advance(envelope.aggregate_id, &envelope.aggregate_type, version);
            // A stream's version is unique in the store, so an equal one is an event an
            // upcaster split the same row into.
            if version != before + 1 && version != before {
                let stream = format!("{}:{}", envelope.aggregate_id, envelope.aggregate_type);
                let mut detail = if version < before {
                    format!("stream {stream} has version {version} after {before}")
                } else {
                    format!(
                        "stream {stream} goes from version {before} to {version} (missing {}..={})",
                        before + 1,
                        version - 1
                    )
                };
                if unreadable > 0 {
                    detail.push_str(" (an unreadable row above may hold the missing version)");
                }
                report.problem(Problem {
                    kind: "version_gap",
                    global_position: position,
                    detail,
                })?;
            }
            if check_types
                && !event.is_typed()
                && registry.versions(&envelope.event_type).is_empty()
            {
                let seen = unknown
                    .entry(envelope.event_type.clone())
                    .or_insert((position, 0));
                seen.1 += 1;
            }
        }
    }
    bar.finish_and_clear();
    let mut unknown: Vec<(String, (u64, u64))> = unknown.into_iter().collect();
    unknown.sort_by_key(|(_, (first, _))| *first);
    for (event_type, (first, count)) in unknown {
        report.problem(Problem {
            kind: "unknown_type",
            global_position: first,
            detail: format!(
                "event type `{event_type}` is not registered in this binary ({count} events, the first at {first})"
            ),
        })?;
    }
    for snapshot in backend::snapshots_ahead(target).await? {
        report.problem(Problem {
            kind: "snapshot_ahead",
            global_position: 0,
            detail: format!(
                "snapshot of {}:{} is at version {}, its stream at {}",
                snapshot.aggregate_id,
                snapshot.aggregate_type,
                snapshot.snapshot_version,
                snapshot.stream_version
            ),
        })?;
    }
    for entry in backend::orphan_outbox_entries(target).await? {
        report.problem(Problem {
            kind: "outbox_orphan",
            global_position: u64::try_from(entry.global_position).unwrap_or(0),
            detail: format!(
                "outbox entry {} names event {}, which the store does not hold",
                entry.id, entry.event_id
            ),
        })?;
    }
    let problems = report.problems;
    let stream_count = streams.versions.len();
    let summary = serde_json::json!({
        "events": scanned,
        "streams": stream_count,
        "problems": problems,
        "types_checked": check_types,
        "ok": problems == 0,
    });
    report.out.either(&summary, || {
        let types = if check_types {
            "types checked against this binary's registry"
        } else {
            "types not checked (no registry in this binary)"
        };
        if problems == 0 {
            format!("ok: {scanned} events in {stream_count} streams, no problem; {types}")
        } else {
            format!("{problems} problems in {scanned} events; {types}")
        }
    })?;
    Ok(if problems == 0 {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}
