//! `projections list | rebuild`: the binary's durable read models, through their own
//! runners.

use std::io::Write;
use std::time::Instant;

use serde_json::json;

use super::confirm;
use crate::app::App;
use crate::args::{ProjectionAction, StoreArgs};
use crate::error::CliError;
use crate::output::{progress_bar, Out};
use crate::target::{Access, Target};
use crate::Outcome;

pub(super) async fn run(
    app: &App,
    action: ProjectionAction,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    match action {
        ProjectionAction::List(store) => list(app, &store, out).await,
        ProjectionAction::Rebuild { store, name, yes } => {
            rebuild(app, &store, &name, yes, out).await
        }
    }
}

async fn list(app: &App, args: &StoreArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let target = Target::open(args, Access::Read).await?;
    let mut out = Out::new(out, args.json);
    let names = app.projection_names(&target);
    if names.is_empty() && !out.json {
        out.line(
            "no durable read models in this binary (an application's own binary registers them with eventsource_cli::App)",
        )?;
    }
    for name in names {
        let mut runner = app.runner(&target, &name)?;
        let position = runner.checkpoint().await?;
        let lag = runner.lag().await?;
        let (behind, seconds) = lag.map_or((0, 0.0), |l| (l.events_behind, l.lag_seconds));
        let handled = runner.handled_event_types().join(", ");
        out.either(
            &json!({
                "name": name,
                "position": position,
                "events_behind": behind,
                "seconds_behind": seconds,
                "handles": runner.handled_event_types(),
            }),
            || format!("{name:<30} at {position:>10}  {behind:>8} events / {seconds:.1} s behind  handles {handled}"),
        )?;
    }
    target.close().await;
    Ok(Outcome::Ok)
}

async fn rebuild(
    app: &App,
    args: &StoreArgs,
    name: &str,
    yes: bool,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    let target = Target::open(args, Access::Write).await?;
    let mut out = Out::new(out, args.json);
    let mut runner = match app.runner(&target, name) {
        Ok(runner) => runner,
        Err(error) => {
            target.close().await;
            return Err(error);
        }
    };
    let question = format!(
        "Rebuild `{name}`? Its read model is cleared and every event applied again (stop the \
         application's own runner of it first)"
    );
    if let Err(error) = confirm(&question, yes) {
        target.close().await;
        return Err(error);
    }
    let head = target.events().get_global_position().await?;
    let bar = progress_bar(head, "rebuilding");
    let started = Instant::now();
    let mut last = None;
    let rebuilt = runner
        .rebuild(&mut |progress| {
            bar.set_length(progress.head.max(1));
            bar.set_position(progress.position);
            last = Some(progress);
        })
        .await;
    bar.finish_and_clear();
    target.close().await;
    let applied = rebuilt?;
    let seconds = started.elapsed().as_secs_f64();
    let dead_lettered = last.map_or(0, |p| p.dead_lettered);
    let position = last.map_or(0, |p| p.position);
    out.either(
        &json!({
            "name": name,
            "applied": applied,
            "dead_lettered": dead_lettered,
            "position": position,
            "seconds": seconds,
        }),
        || {
            format!(
                "rebuilt `{name}`: {applied} events applied, {dead_lettered} dead-lettered, at position {position}, in {seconds:.1} s ({:.0} events/s)",
                applied as f64 / seconds.max(1e-9)
            )
        },
    )?;
    Ok(Outcome::Ok)
}
