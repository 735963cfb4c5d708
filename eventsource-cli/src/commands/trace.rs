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
    let mut drawn = HashSet::new();
    for (n, root) in roots.iter().enumerate() {
        draw(
            &mut out,
            &found,
            &children,
            *root,
            "",
            n + 1 == roots.len(),
            true,
            &mut drawn,
        )?;
    }
    if unreadable > 0 {
        out.line(format!(
            "({unreadable} unreadable rows were passed over; `eventsource verify` lists them)"
        ))?;
    }
    Ok(Outcome::Ok)
}

/// Draws `at` and, under it, the events it caused.
#[allow(clippy::too_many_arguments)]
fn draw(
    out: &mut Out<'_>,
    events: &[StoredEvent],
    children: &HashMap<Uuid, Vec<usize>>,
    at: usize,
    prefix: &str,
    last: bool,
    root: bool,
    drawn: &mut HashSet<usize>,
) -> Result<(), CliError> {
    // A causation cycle (hand-written data) is drawn once.
    if !drawn.insert(at) {
        return Ok(());
    }
    let event = &events[at];
    let branch = match (root, last) {
        (true, _) => "",
        (false, true) => "└─ ",
        (false, false) => "├─ ",
    };
    let cause = match (root, event.envelope.causation_id) {
        (true, Some(cause)) => format!("  (caused by {cause}, outside this correlation)"),
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
    let below = match (root, last) {
        (true, _) => prefix.to_owned(),
        (false, true) => format!("{prefix}   "),
        (false, false) => format!("{prefix}│  "),
    };
    if let Some(kids) = children.get(&event.event_id()) {
        for (n, kid) in kids.iter().enumerate() {
            draw(
                out,
                events,
                children,
                *kid,
                &below,
                n + 1 == kids.len(),
                false,
                drawn,
            )?;
        }
    }
    Ok(())
}
