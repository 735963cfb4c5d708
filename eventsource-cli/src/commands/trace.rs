//! `trace`: one correlation's events, in order, causation links drawn as a tree.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use eventsource::{ReadOptions, StoredEvent};
use futures::StreamExt;
use uuid::Uuid;

use super::is_unreadable_row;
use crate::args::TraceArgs;
use crate::error::CliError;
use crate::output::{progress_bar, Out};
use crate::target::{Access, Target};
use crate::Outcome;

pub(super) async fn run(args: &TraceArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let target = Target::open(&args.store, Access::Read).await?;
    let mut out = Out::new(out, args.store.json);
    let store = target.events();
    // Scanned, not queried: eventsource-py keeps correlation ids inside the payload, so
    // only the decoded envelope has them for every row.
    let bar = progress_bar(store.get_global_position().await?, "scanning");
    let mut found: Vec<StoredEvent> = Vec::new();
    let mut unreadable = 0u64;
    {
        let mut events = store.read_all(ReadOptions::new());
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => {
                    bar.set_position(event.global_position);
                    if event.envelope.correlation_id == Some(args.correlation_id) {
                        found.push(event);
                    }
                }
                Err(error) if is_unreadable_row(&error) => unreadable += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }
    bar.finish_and_clear();
    target.close().await;
    if found.is_empty() {
        return Err(CliError::Usage(format!(
            "no event of correlation {} in {}",
            args.correlation_id,
            target.describe()
        )));
    }
    if out.json {
        for event in &found {
            out.record(event)?;
        }
        return Ok(Outcome::Ok);
    }
    out.line(format!(
        "correlation {}: {} events",
        args.correlation_id,
        found.len()
    ))?;
    let ids: HashSet<Uuid> = found.iter().map(StoredEvent::event_id).collect();
    let mut children: HashMap<Uuid, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, event) in found.iter().enumerate() {
        match event
            .envelope
            .causation_id
            .filter(|c| ids.contains(c) && *c != event.event_id())
        {
            Some(cause) => children.entry(cause).or_default().push(i),
            None => roots.push(i),
        }
    }
    let mut drawn = vec![false; found.len()];
    for root in &roots {
        draw(&mut out, &found, &children, *root, &mut drawn)?;
    }
    // Events only in causation cycles (hand-written data) have no root: drawn from the
    // first of each, so that every event of the correlation is shown.
    while let Some(first) = drawn.iter().position(|d| !d) {
        draw(&mut out, &found, &children, first, &mut drawn)?;
    }
    if unreadable > 0 {
        out.line(format!(
            "({unreadable} unreadable rows were passed over; `eventsource verify` lists them)"
        ))?;
    }
    Ok(Outcome::Ok)
}

/// Draws `root` and, under it, the events it caused (an explicit stack, so a chain of
/// any depth draws without deep recursion); each event once.
fn draw(
    out: &mut Out<'_>,
    events: &[StoredEvent],
    children: &HashMap<Uuid, Vec<usize>>,
    root: usize,
    drawn: &mut [bool],
) -> Result<(), CliError> {
    // (event, the prefix of its line, whether it is its parent's last child, depth)
    let mut stack = vec![(root, String::new(), true, 0usize)];
    while let Some((at, prefix, last, depth)) = stack.pop() {
        if std::mem::replace(&mut drawn[at], true) {
            continue;
        }
        let event = &events[at];
        let branch = match (depth, last) {
            (0, _) => "",
            (_, true) => "└─ ",
            (_, false) => "├─ ",
        };
        let cause = match (depth, event.envelope.causation_id) {
            (0, Some(cause)) if cause != event.event_id() => {
                format!("  (caused by {cause}, outside this correlation)")
            }
            _ => String::new(),
        };
        out.line(format!(
            "{prefix}{branch}#{} {} {} {} v{}  [{}]{cause}",
            event.global_position,
            event.envelope.event_type,
            event.envelope.aggregate_type,
            event.envelope.aggregate_id,
            event.envelope.aggregate_version,
            event
                .envelope
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ))?;
        let below = match (depth, last) {
            (0, _) => prefix.clone(),
            (_, true) => format!("{prefix}   "),
            (_, false) => format!("{prefix}│  "),
        };
        if let Some(kids) = children.get(&event.event_id()) {
            let kids: Vec<usize> = kids.iter().copied().filter(|k| !drawn[*k]).collect();
            // Pushed last first, so that they are drawn in position order.
            for (n, kid) in kids.iter().enumerate().rev() {
                stack.push((*kid, below.clone(), n + 1 == kids.len(), depth + 1));
            }
        }
    }
    Ok(())
}
