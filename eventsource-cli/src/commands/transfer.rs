//! `export` and `import`: whole events with their envelopes as JSON lines, streamed both
//! ways (memory stays flat however many events there are).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use eventsource::{Error, EventEnvelope, ExpectedVersion, NewEvent, ReadOptions};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::args::{ExportArgs, ImportArgs};
use crate::error::CliError;
use crate::output::{progress_bar, Out};
use crate::target::{Access, Target};
use crate::Outcome;

/// Events appended per call (one transaction) while importing.
const IMPORT_BATCH: usize = 500;

pub(super) async fn export(args: &ExportArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let opened = Target::open(&args.store, Access::Read).await?;
    // The rows as stored: nothing upcast or split by this binary's registry, so that an
    // import writes them back as they were.
    let target = opened.without_registry();
    let head = target.events().get_global_position().await?;
    // A file is written whole or not at all: to `<file>.partial`, renamed at the end.
    let partial = args.output.as_ref().map(|path| partial_path(path));
    let mut file = match &partial {
        Some(path) => Some(BufWriter::new(
            File::create(path).map_err(CliError::io(format!("creating {}", path.display())))?,
        )),
        None => None,
    };
    let bar = progress_bar(head, "exporting");
    let mut exported = 0u64;
    let written: Result<(), CliError> = async {
        let mut events = target.events().read_all(ReadOptions::new());
        while let Some(item) = events.next().await {
            let event = match item {
                Ok(event) => event,
                // A row that does not read cannot be exported faithfully: stop, loudly.
                Err(error @ Error::CorruptEvent { .. }) => {
                    return Err(CliError::Usage(format!(
                        "the export stops: {error} (`eventsource verify` lists every such row)"
                    )))
                }
                Err(error) => return Err(error.into()),
            };
            let mut line = serde_json::to_vec(&event).map_err(|e| CliError::Io {
                context: format!("encoding the event at position {}", event.global_position),
                source: std::io::Error::other(e),
            })?;
            line.push(b'\n');
            match file.as_mut() {
                Some(file) => file.write_all(&line),
                None => out.write_all(&line),
            }
            .map_err(CliError::io("writing the export"))?;
            exported += 1;
            bar.set_position(event.global_position);
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    opened.close().await;
    if let Err(error) = written {
        if let Some(path) = &partial {
            let _ = std::fs::remove_file(path);
        }
        return Err(error);
    }
    if let (Some(mut file), Some(partial), Some(path)) = (file, partial, args.output.as_ref()) {
        file.flush()
            .map_err(CliError::io(format!("writing {}", partial.display())))?;
        // On disk before it takes the final name: a crash leaves the old file or the
        // whole new one.
        file.get_ref()
            .sync_all()
            .map_err(CliError::io(format!("writing {}", partial.display())))?;
        drop(file);
        std::fs::rename(&partial, path).map_err(CliError::io(format!(
            "renaming {} to {}",
            partial.display(),
            path.display()
        )))?;
        let mut out = Out::new(out, args.store.json);
        out.either(&json!({ "exported": exported, "file": path }), || {
            format!("exported {exported} events to {}", path.display())
        })?;
    }
    Ok(Outcome::Ok)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A line of an export: the envelope's fields and the payload (positions and the
/// storage time are the old store's, not kept).
#[derive(Debug, Deserialize)]
struct ExportedEvent {
    #[serde(flatten)]
    envelope: EventEnvelope,
    payload: serde_json::Value,
}

impl ExportedEvent {
    fn into_new_event(self) -> NewEvent {
        let e = self.envelope;
        let mut event = NewEvent::raw(e.event_type, e.event_version, self.payload)
            .with_event_id(e.event_id)
            .with_timestamp(e.timestamp);
        if let Some(tenant) = e.tenant_id {
            event = event.with_tenant_id(tenant);
        }
        if let Some(actor) = e.actor_id {
            event = event.with_actor_id(actor);
        }
        if let Some(correlation) = e.correlation_id {
            event = event.with_correlation_id(correlation);
        }
        if let Some(causation) = e.causation_id {
            event = event.with_causation_id(causation);
        }
        for (key, value) in e.metadata {
            event = event.with_metadata(key, value);
        }
        event
    }
}

/// Consecutive events of one stream, in version order: one append.
struct Batch {
    aggregate_id: Uuid,
    aggregate_type: String,
    first_version: u64,
    /// The line of the first event (for errors).
    line: u64,
    events: Vec<NewEvent>,
}

#[derive(Debug, Default)]
struct Tally {
    imported: u64,
    skipped: u64,
}

pub(super) async fn import(args: &ImportArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let (reader, length): (Box<dyn Read>, Option<u64>) = if args.input == Path::new("-") {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = File::open(&args.input)
            .map_err(CliError::io(format!("opening {}", args.input.display())))?;
        let length = file.metadata().ok().map(|m| m.len());
        (Box::new(file), length)
    };
    let target = Target::open(&args.store, Access::Create).await?;
    let bar = progress_bar(length.unwrap_or(0), "importing");
    let mut tally = Tally::default();
    let result = import_lines(&target, BufReader::new(reader), &bar, &mut tally).await;
    bar.finish_and_clear();
    target.close().await;
    result?;
    let mut out = Out::new(out, args.store.json);
    out.either(
        &json!({ "imported": tally.imported, "skipped": tally.skipped }),
        || {
            format!(
                "imported {} events ({} stored already, skipped)",
                tally.imported, tally.skipped
            )
        },
    )?;
    Ok(Outcome::Ok)
}

async fn import_lines(
    target: &Target,
    reader: impl BufRead,
    bar: &indicatif::ProgressBar,
    tally: &mut Tally,
) -> Result<(), CliError> {
    let mut batch: Option<Batch> = None;
    let mut bytes = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let number = n as u64 + 1;
        let line = line.map_err(CliError::io(format!("reading line {number}")))?;
        bytes += line.len() as u64 + 1;
        bar.set_position(bytes);
        if line.trim().is_empty() {
            continue;
        }
        let exported: ExportedEvent = serde_json::from_str(&line)
            .map_err(|e| CliError::Usage(format!("line {number}: not an exported event: {e}")))?;
        let envelope = &exported.envelope;
        let follows = batch.as_ref().is_some_and(|b| {
            b.aggregate_id == envelope.aggregate_id
                && b.aggregate_type == envelope.aggregate_type
                && b.first_version + b.events.len() as u64 == envelope.aggregate_version
                && b.events.len() < IMPORT_BATCH
        });
        if !follows {
            if let Some(full) = batch.take() {
                append(target, full, tally).await?;
            }
            batch = Some(Batch {
                aggregate_id: envelope.aggregate_id,
                aggregate_type: envelope.aggregate_type.clone(),
                first_version: envelope.aggregate_version,
                line: number,
                events: Vec::new(),
            });
        }
        if let Some(batch) = batch.as_mut() {
            batch.events.push(exported.into_new_event());
        }
    }
    if let Some(last) = batch {
        append(target, last, tally).await?;
    }
    Ok(())
}

/// Appends a batch at its versions; when the stream holds part of it already (an
/// interrupted import), event by event, each stored one skipped.
async fn append(target: &Target, batch: Batch, tally: &mut Tally) -> Result<(), CliError> {
    let store = target.events();
    let count = batch.events.len() as u64;
    let expected = ExpectedVersion::Exact(batch.first_version.saturating_sub(1));
    let whole = store
        .append_events(
            batch.aggregate_id,
            &batch.aggregate_type,
            batch.events.clone(),
            expected,
        )
        .await;
    match whole {
        Ok(result) if result.already_stored => {
            tally.skipped += count;
            return Ok(());
        }
        Ok(_) => {
            tally.imported += count;
            return Ok(());
        }
        Err(Error::OptimisticLock { .. }) => {}
        Err(error) => return Err(at_line(batch.line, error)),
    }
    for (i, event) in batch.events.into_iter().enumerate() {
        let version = batch.first_version + i as u64;
        let result = store
            .append_events(
                batch.aggregate_id,
                &batch.aggregate_type,
                vec![event],
                ExpectedVersion::Exact(version.saturating_sub(1)),
            )
            .await
            .map_err(|error| at_line(batch.line + i as u64, error))?;
        if result.already_stored {
            tally.skipped += 1;
        } else {
            tally.imported += 1;
        }
    }
    Ok(())
}

/// The store's refusal of the event on `line`, as one line saying where.
fn at_line(line: u64, error: Error) -> CliError {
    CliError::Usage(format!("line {line}: {error}"))
}
