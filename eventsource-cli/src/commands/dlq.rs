//! `dlq list | show | stats | resolve`.

use std::collections::hash_map::{Entry, HashMap};
use std::io::Write;

use eventsource::{DeadLetter, DeadLetterStatus, DurableRunner};
use serde_json::{json, Value};

use super::confirm;
use crate::app::App;
use crate::args::{DlqAction, LetterStatus, StoreArgs};
use crate::error::CliError;
use crate::output::Out;
use crate::target::{Access, Target};
use crate::Outcome;

fn letter_json(letter: &DeadLetter) -> Value {
    json!({
        "id": letter.id,
        "projection": letter.failed.projection_name,
        "event_id": letter.failed.event_id,
        "event_type": letter.failed.event_type,
        "global_position": letter.failed.global_position,
        "error": letter.failed.error,
        "retry_count": letter.failed.retry_count,
        "status": letter.status.as_str(),
        "first_failed_at": letter.first_failed_at,
        "last_failed_at": letter.last_failed_at,
        "resolved_at": letter.resolved_at,
        "resolution": letter.resolution,
        "event_data": letter.failed.event_data,
    })
}

pub(super) async fn run(
    app: &App,
    action: DlqAction,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    match action {
        DlqAction::Retry {
            store,
            ids,
            projection,
            stop_at,
            yes,
        } => retry(app, &store, &ids, projection.as_deref(), stop_at, yes, out).await,
        DlqAction::List {
            store,
            projection,
            status,
            limit,
        } => {
            let target = Target::open(&store, Access::Read).await?;
            let mut out = Out::new(out, store.json);
            let status = status.map(|s| match s {
                LetterStatus::Failed => DeadLetterStatus::Failed,
                LetterStatus::Resolved => DeadLetterStatus::Resolved,
            });
            let letters = target
                .dead_letters()
                .get_failed_events(projection.as_deref(), status, limit)
                .await?;
            target.close().await;
            if letters.is_empty() && !out.json {
                out.line("no dead letters")?;
            }
            for letter in &letters {
                let mut summary = letter_json(letter);
                if let Some(object) = summary.as_object_mut() {
                    object.remove("event_data");
                }
                out.either(&summary, || {
                    format!(
                        "{:>6}  {:<8}  {:<24} #{:<8} {:<24} {} attempts  {}",
                        letter.id,
                        letter.status.as_str(),
                        letter.failed.projection_name,
                        letter.failed.global_position,
                        letter.failed.event_type,
                        letter.failed.retry_count,
                        letter.failed.error.lines().next().unwrap_or(""),
                    )
                })?;
            }
            Ok(Outcome::Ok)
        }
        DlqAction::Show { store, id } => {
            let target = Target::open(&store, Access::Read).await?;
            let mut out = Out::new(out, store.json);
            let letter = target.dead_letters().get_failed_event(id).await?;
            target.close().await;
            let letter = letter.ok_or(eventsource::Error::DeadLetterNotFound { id })?;
            if out.json {
                out.record(&letter_json(&letter))?;
                return Ok(Outcome::Ok);
            }
            let f = &letter.failed;
            out.line(format!(
                "dead letter {}  ({})",
                letter.id,
                letter.status.as_str()
            ))?;
            out.line(format!("projection   {}", f.projection_name))?;
            out.line(format!(
                "event        {} {} at position {}",
                f.event_type, f.event_id, f.global_position
            ))?;
            out.line(format!("attempts     {}", f.retry_count))?;
            out.line(format!(
                "first failed {}",
                letter.first_failed_at.to_rfc3339()
            ))?;
            out.line(format!(
                "last failed  {}",
                letter.last_failed_at.to_rfc3339()
            ))?;
            if let Some(at) = letter.resolved_at {
                out.line(format!(
                    "resolved     {} ({})",
                    at.to_rfc3339(),
                    letter.resolution.as_deref().unwrap_or("")
                ))?;
            }
            out.line("error")?;
            for line in f.error.lines() {
                out.line(format!("    {line}"))?;
            }
            out.line("event data")?;
            let data = serde_json::to_string_pretty(&f.event_data).unwrap_or_default();
            for line in data.lines() {
                out.line(format!("    {line}"))?;
            }
            Ok(Outcome::Ok)
        }
        DlqAction::Stats(store) => {
            let target = Target::open(&store, Access::Read).await?;
            let mut out = Out::new(out, store.json);
            let stats = target.dead_letters().get_statistics().await?;
            target.close().await;
            if out.json {
                out.record(&json!({
                    "total": stats.total,
                    "failed": stats.failed,
                    "resolved": stats.resolved,
                    "failed_by_projection": stats.failed_by_projection,
                }))?;
                return Ok(Outcome::Ok);
            }
            out.line(format!("total     {}", stats.total))?;
            out.line(format!("failed    {}", stats.failed))?;
            out.line(format!("resolved  {}", stats.resolved))?;
            for (projection, failed) in &stats.failed_by_projection {
                out.line(format!("  {projection:<30} {failed:>8} failed"))?;
            }
            Ok(Outcome::Ok)
        }
        DlqAction::Resolve { store, id, note } => {
            let target = Target::open(&store, Access::Write).await?;
            let mut out = Out::new(out, store.json);
            let resolved = target.dead_letters().mark_resolved(id, &note).await;
            target.close().await;
            resolved?;
            out.either(&json!({ "id": id, "resolved": true, "note": note }), || {
                format!("dead letter {id} resolved: {note}")
            })?;
            Ok(Outcome::Ok)
        }
    }
}

/// Replays failed dead letters through their read models' runners, in position order,
/// stopping at the first that fails again.
async fn retry(
    app: &App,
    args: &StoreArgs,
    ids: &[i64],
    projection: Option<&str>,
    stop_at: Option<u64>,
    yes: bool,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    let target = Target::open(args, Access::Write).await?;
    let mut out = Out::new(out, args.json);
    let outcome = retry_on(app, &target, ids, projection, stop_at, yes, &mut out).await;
    target.close().await;
    outcome
}

async fn retry_on(
    app: &App,
    target: &Target,
    ids: &[i64],
    projection: Option<&str>,
    stop_at: Option<u64>,
    yes: bool,
    out: &mut Out<'_>,
) -> Result<Outcome, CliError> {
    let names = app.projection_names(target);
    if names.is_empty() {
        return Err(CliError::Usage(
            "dlq retry hands events to their read model's handlers, and this binary has none: \
             run it from your application's binary (eventsource_cli::App), or resolve by hand with dlq resolve"
                .into(),
        ));
    }
    let mut letters = Vec::new();
    if ids.is_empty() {
        for name in names
            .iter()
            .filter(|n| projection.is_none_or(|p| p == n.as_str()))
        {
            letters.extend(
                target
                    .dead_letters()
                    .get_failed_events(Some(name), Some(DeadLetterStatus::Failed), u64::MAX)
                    .await?,
            );
        }
    } else {
        for id in ids {
            let letter = target.dead_letters().get_failed_event(*id).await?;
            letters.push(letter.ok_or(eventsource::Error::DeadLetterNotFound { id: *id })?);
        }
    }
    letters.retain(|l| {
        stop_at.is_none_or(|p| l.failed.global_position <= p)
            && projection.is_none_or(|p| l.failed.projection_name == p)
    });
    letters.sort_by_key(|l| (l.failed.global_position, l.id));
    if letters.is_empty() {
        out.either(&json!({ "replayed": 0 }), || {
            "no dead letters to retry".to_owned()
        })?;
        return Ok(Outcome::Ok);
    }
    confirm(
        &format!(
            "Hand {} dead-lettered events to their read models again (each in one transaction with its resolution)?",
            letters.len()
        ),
        yes,
    )?;
    let mut runners: HashMap<String, Box<dyn DurableRunner>> = HashMap::new();
    let mut replayed = 0u64;
    for letter in &letters {
        let name = &letter.failed.projection_name;
        let runner = match runners.entry(name.clone()) {
            Entry::Occupied(found) => found.into_mut(),
            Entry::Vacant(slot) => slot.insert(app.runner(target, name)?),
        };
        let at = letter.failed.global_position;
        if let Err(error) = runner.replay_dead_letter(letter.id).await {
            out.either(
                &json!({ "id": letter.id, "projection": name, "global_position": at, "replayed": false, "error": error.to_string() }),
                || format!("dead letter {} ({} at {at}, {name}) failed again: {error}", letter.id, letter.failed.event_type),
            )?;
            return Err(CliError::Usage(format!(
                "dlq retry stopped at dead letter {} after {replayed} replayed: {error}",
                letter.id
            )));
        }
        replayed += 1;
        out.either(
            &json!({ "id": letter.id, "projection": name, "global_position": at, "replayed": true }),
            || format!("dead letter {} ({} at {at}) replayed into {name}", letter.id, letter.failed.event_type),
        )?;
    }
    if !out.json {
        out.line(format!("{replayed} dead letters replayed and resolved"))?;
    }
    Ok(Outcome::Ok)
}
