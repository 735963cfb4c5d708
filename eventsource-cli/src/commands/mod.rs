//! One module per command; `run` dispatches, and the event printing they share.

mod checkpoints;
mod dlq;
mod events;
mod info;
mod migrate;
mod outbox;
mod projections;
mod schema;
mod stream;
mod trace;
mod transfer;
mod verify;

use std::io::{BufRead, IsTerminal, Write};

use eventsource::StoredEvent;
use serde_json::json;

use crate::app::App;
use crate::args::Command;
use crate::error::CliError;
use crate::output::Out;
use crate::Outcome;

/// Runs `command`, with the read models `app` registers.
pub(crate) async fn run(
    app: &App,
    command: Command,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    match command {
        Command::Info(args) => info::run(&args, out).await,
        Command::Events(args) => events::run(&args, out).await,
        Command::Stream(args) => stream::run(&args, out).await,
        Command::Trace(args) => trace::run(&args, out).await,
        Command::Checkpoints { action } => checkpoints::run(action, out).await,
        Command::Dlq { action } => dlq::run(app, action, out).await,
        Command::Projections { action } => projections::run(app, action, out).await,
        Command::Schema { action } => schema::run(action, out).await,
        Command::Outbox { action } => outbox::run(action, out).await,
        Command::Verify(args) => verify::run(&args, out).await,
        Command::Migrate(args) => migrate::run(&args, out).await,
        Command::Export(args) => transfer::export(&args, out).await,
        Command::Import(args) => transfer::import(&args, out).await,
    }
}

/// How many event types this binary's application registers: the global registry
/// without the test kit's own (`eventsource::testing::*`, linked wherever a build turns
/// on eventsource's `testing` feature). Zero in the standalone binary.
pub(crate) fn application_types() -> usize {
    eventsource::EventRegistry::global()
        .registered_types()
        .iter()
        .filter(|r| !r.is_test_kit())
        .count()
}

/// The timestamp of the first readable event `options` reads (unreadable rows passed
/// over), or none.
pub(crate) async fn first_timestamp(
    store: &dyn eventsource::EventStore,
    options: eventsource::ReadOptions,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, CliError> {
    use futures::StreamExt;
    let mut events = store.read_all(options.limit(64));
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => return Ok(Some(event.envelope.timestamp)),
            Err(error) if is_unreadable_row(&error) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(None)
}

/// Prints one event: a JSON object, or a header line, its links and its payload
/// pretty-printed, indented by `indent`.
pub(crate) fn print_event(
    out: &mut Out<'_>,
    event: &StoredEvent,
    indent: &str,
) -> Result<(), CliError> {
    if out.json {
        return out.record(event);
    }
    let envelope = &event.envelope;
    out.line(format!(
        "{indent}#{position}  {at}  {aggregate_type} {aggregate_id} v{version}  {event_type} (v{type_version})",
        position = event.global_position,
        at = envelope.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        aggregate_type = envelope.aggregate_type,
        aggregate_id = envelope.aggregate_id,
        version = envelope.aggregate_version,
        event_type = envelope.event_type,
        type_version = envelope.event_version,
    ))?;
    let mut links = Vec::new();
    if let Some(tenant) = envelope.tenant_id {
        links.push(format!("tenant {tenant}"));
    }
    if let Some(actor) = &envelope.actor_id {
        links.push(format!("actor {actor}"));
    }
    if let Some(correlation) = envelope.correlation_id {
        links.push(format!("correlation {correlation}"));
    }
    if let Some(causation) = envelope.causation_id {
        links.push(format!("causation {causation}"));
    }
    if !envelope.metadata.is_empty() {
        links.push(format!(
            "metadata {}",
            serde_json::Value::Object(envelope.metadata.clone())
        ));
    }
    if !links.is_empty() {
        out.line(format!("{indent}    {}", links.join(", ")))?;
    }
    let payload = match event.payload_json() {
        Ok(payload) => serde_json::to_string_pretty(&payload).unwrap_or_default(),
        Err(error) => format!("(payload not shown: {error})"),
    };
    for line in payload.lines() {
        out.line(format!("{indent}    {line}"))?;
    }
    Ok(())
}

/// Prints a row that could not be read (it stays in the store; the listing goes on).
pub(crate) fn print_unreadable(
    out: &mut Out<'_>,
    error: &eventsource::Error,
) -> Result<(), CliError> {
    let position = match error {
        eventsource::Error::CorruptEvent {
            global_position, ..
        } => Some(*global_position),
        _ => None,
    };
    out.either(
        &json!({ "global_position": position, "unreadable": error.to_string() }),
        || format!("#{}  UNREADABLE: {error}", position.unwrap_or(0)),
    )
}

/// `true` when the error is a row that did not read (the stream goes on after it).
pub(crate) fn is_unreadable_row(error: &eventsource::Error) -> bool {
    matches!(error, eventsource::Error::CorruptEvent { .. })
}

/// Asks `question` on the terminal unless `yes`; a refusal, or no terminal to ask on,
/// is a usage error that says how to go on.
pub(crate) fn confirm(question: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(format!(
            "{question}: not confirmed (no terminal to ask on; pass --yes)"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::io("reading the answer"))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(CliError::Usage(format!("{question}: not confirmed")))
    }
}
