//! `checkpoints list | rewind | reset`.

use std::io::Write;

use eventsource::lag_metrics;
use serde_json::json;

use super::confirm;
use crate::args::{CheckpointAction, StoreArgs};
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
        // Behind by every event after it: the CLI does not know which types it handles.
        let lag = lag_metrics(target.checkpoints(), target.events(), name, None).await?;
        let (behind, seconds) = lag.map_or((0, 0.0), |l| (l.events_behind, l.lag_seconds));
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
    let question = match to {
        Some(to) => format!(
            "Move checkpoint `{name}` from {current} to {to}? Its projection then handles the events after {to} again \
             (a read model that is not idempotent applies them twice: rebuild it instead)"
        ),
        None => format!(
            "Reset checkpoint `{name}` (at {current})? Its projection then starts from the first event"
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
