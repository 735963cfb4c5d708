//! `verify`: a full integrity scan. Every problem is reported with where it is; any
//! problem exits 1.

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
    /// What kind: `unreadable`, `position_order`, `version_gap`, `unknown_type`,
    /// `snapshot_ahead`, `outbox_orphan`.
    kind: &'static str,
    /// The global position it is at (0 where none applies).
    global_position: u64,
    /// What is wrong.
    detail: String,
}

pub(super) async fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let target = Target::open(&args.store, Access::Read).await?;
    let mut out = Out::new(out, args.store.json);
    let store = target.events();
    let head = store.get_global_position().await?;
    let registry = EventRegistry::global();
    let check_types = super::application_types() > 0;
    let bar = progress_bar(head, "verifying");
    let mut problems = Vec::new();
    // The last version seen per stream.
    let mut versions: HashMap<(Uuid, String), u64> = HashMap::new();
    let mut last_position = 0u64;
    let mut scanned = 0u64;
    {
        let mut events = store.read_all(ReadOptions::new());
        while let Some(item) = events.next().await {
            let event = match item {
                Ok(event) => event,
                Err(eventsource::Error::CorruptEvent {
                    global_position,
                    ref reason,
                    ..
                }) => {
                    scanned += 1;
                    problems.push(Problem {
                        kind: "unreadable",
                        global_position,
                        detail: format!("the row does not read: {reason}"),
                    });
                    last_position = last_position.max(global_position);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            scanned += 1;
            let position = event.global_position;
            bar.set_position(position);
            // Equal positions are the events one row was split into by an upcaster.
            if position < last_position {
                problems.push(Problem {
                    kind: "position_order",
                    global_position: position,
                    detail: format!("position {position} comes after {last_position}"),
                });
            }
            last_position = last_position.max(position);
            let envelope = &event.envelope;
            let key = (envelope.aggregate_id, envelope.aggregate_type.clone());
            let version = envelope.aggregate_version;
            let before = versions.insert(key, version).unwrap_or(0);
            if version != before + 1 && !(version == before && position == last_position) {
                let detail = if version <= before {
                    format!(
                        "stream {}:{} has version {version} again after {before}",
                        envelope.aggregate_id, envelope.aggregate_type
                    )
                } else {
                    format!(
                        "stream {}:{} goes from version {before} to {version} (missing {}..={})",
                        envelope.aggregate_id,
                        envelope.aggregate_type,
                        before + 1,
                        version - 1
                    )
                };
                problems.push(Problem {
                    kind: "version_gap",
                    global_position: position,
                    detail,
                });
            }
            if check_types
                && !event.is_typed()
                && registry.versions(&envelope.event_type).is_empty()
            {
                problems.push(Problem {
                    kind: "unknown_type",
                    global_position: position,
                    detail: format!(
                        "event type `{}` is not registered in this binary",
                        envelope.event_type
                    ),
                });
            }
        }
    }
    bar.finish_and_clear();
    for snapshot in backend::snapshots_ahead(&target).await? {
        problems.push(Problem {
            kind: "snapshot_ahead",
            global_position: 0,
            detail: format!(
                "snapshot of {}:{} is at version {}, its stream at {}",
                snapshot.aggregate_id,
                snapshot.aggregate_type,
                snapshot.snapshot_version,
                snapshot.stream_version
            ),
        });
    }
    for entry in backend::orphan_outbox_entries(&target).await? {
        problems.push(Problem {
            kind: "outbox_orphan",
            global_position: u64::try_from(entry.global_position).unwrap_or(0),
            detail: format!(
                "outbox entry {} names event {}, which the store does not hold",
                entry.id, entry.event_id
            ),
        });
    }
    target.close().await;
    for problem in &problems {
        out.either(problem, || {
            format!(
                "position {:>8}  {:<15} {}",
                problem.global_position, problem.kind, problem.detail
            )
        })?;
    }
    let summary = serde_json::json!({
        "events": scanned,
        "streams": versions.len(),
        "problems": problems.len(),
        "types_checked": check_types,
        "ok": problems.is_empty(),
    });
    out.either(&summary, || {
        let types = if check_types {
            "types checked against this binary's registry"
        } else {
            "types not checked (no registry in this binary)"
        };
        if problems.is_empty() {
            format!(
                "ok: {scanned} events in {} streams, no problem; {types}",
                versions.len()
            )
        } else {
            format!("{} problems in {scanned} events; {types}", problems.len())
        }
    })?;
    Ok(if problems.is_empty() {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}
