//! `checkpoints list | rewind | reset`.

use std::io::Write;

use eventsource::ReadOptions;
use serde_json::json;

use super::{confirm, first_timestamp};
use crate::args::{CheckpointAction, StoreArgs};
use crate::backend;
use crate::error::CliError;
use crate::output::Out;
use crate::target::{Access, Target};
use crate::Outcome;

pub(super) async fn run(
    action: CheckpointAction,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    match action {
        CheckpointAction::List(store) => list(&store, out).await,
        CheckpointAction::Rewind {
            store,
            name,
            to,
            yes,
        } => rewind(&store, &name, Some(to), yes, out).await,
        CheckpointAction::Reset { store, name, yes } => rewind(&store, &name, None, yes, out).await,
    }
}

async fn list(args: &StoreArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let target = Target::open(args, Access::Read).await?;
    let mut out = Out::new(out, args.json);
    let checkpoints = target.checkpoints().get_all_checkpoints().await?;
    if checkpoints.is_empty() && !out.json {
        out.line("no checkpoints")?;
    }
    for checkpoint in checkpoints {
        let name = &checkpoint.projection_name;
        // Behind by every event after it (the CLI does not know which types it handles),
        // counted by the database; seconds from the checkpoint's event to the newest.
        let position = checkpoint.global_position;
        let behind = backend::events_after(&target, position).await?;
        let seconds = if behind == 0 {
            0.0
        } else {
            let store = target.events();
            let newest = first_timestamp(store, ReadOptions::new().backward()).await?;
            let at = match position {
                0 => first_timestamp(store, ReadOptions::new()).await?,
                p => {
                    first_timestamp(store, ReadOptions::new().backward().from_position(p + 1))
                        .await?
                }
            };
            match (newest, at) {
                (Some(newest), Some(at)) => (newest - at).num_milliseconds().max(0) as f64 / 1000.0,
                _ => 0.0,
            }
        };
        let at = checkpoint
            .last_processed_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        out.either(
            &json!({
                "name": name,
                "position": checkpoint.global_position,
                "events_behind": behind,
                "seconds_behind": seconds,
                "events_processed": checkpoint.events_processed,
                "last_event_type": checkpoint.last_event_type,
                "last_processed_at": at,
            }),
            || {
                format!(
                    "{name:<30} at {:>10}  {behind:>8} events / {seconds:.1} s behind  {} processed  last {}",
                    checkpoint.global_position,
                    checkpoint.events_processed,
                    at.as_deref().unwrap_or("-"),
                )
            },
        )?;
    }
    target.close().await;
    Ok(Outcome::Ok)
}

/// Moves the checkpoint `name` to `to`, or removes it (`None`), once confirmed.
async fn rewind(
    args: &StoreArgs,
    name: &str,
    to: Option<u64>,
    yes: bool,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    let target = Target::open(args, Access::Write).await?;
    let mut out = Out::new(out, args.json);
    let Some(current) = target.checkpoints().get_position(name).await? else {
        target.close().await;
        return Err(CliError::Usage(format!(
            "no checkpoint named `{name}` in {}",
            target.describe()
        )));
    };
    let head = target.events().get_global_position().await?;
    if let Some(to) = to.filter(|to| *to > head) {
        target.close().await;
        return Err(CliError::Usage(format!(
            "position {to} is beyond the store's head {head}"
        )));
    }
    // A running projection saves its own position over this at its next batch.
    const STOP_FIRST: &str = "stop the projection's running subscriptions first";
    let question = match to {
        Some(to) if to < current => format!(
            "Move checkpoint `{name}` back from {current} to {to}? Its projection then handles the events after {to} \
             again (a read model that is not idempotent applies them twice: rebuild it instead); {STOP_FIRST}"
        ),
        Some(to) => format!(
            "Move checkpoint `{name}` forward from {current} to {to}? Its projection then never handles the events \
             up to {to}; {STOP_FIRST}"
        ),
        None => format!(
            "Reset checkpoint `{name}` (at {current})? Its projection then starts from the first event; {STOP_FIRST}"
        ),
    };
    if let Err(error) = confirm(&question, yes) {
        target.close().await;
        return Err(error);
    }
    match to {
        Some(to) => {
            target
                .checkpoints()
                .save_progress(name, to, None, 0)
                .await?
        }
        None => target.checkpoints().reset(name).await?,
    }
    target.close().await;
    out.either(
        &json!({ "name": name, "from": current, "to": to.unwrap_or(0), "reset": to.is_none() }),
        || match to {
            Some(to) => format!("checkpoint `{name}` moved from {current} to {to}"),
            None => format!("checkpoint `{name}` reset (was at {current})"),
        },
    )?;
    Ok(Outcome::Ok)
}
