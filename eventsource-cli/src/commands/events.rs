//! `events`: a filtered listing, and `--follow` to tail new events.

use std::io::Write;
use std::time::Duration;

use eventsource::{BusFilter, EventBus, EventStore, PostgresEventBus, ReadOptions, StoredEvent};
use futures::StreamExt;

use super::{is_unreadable_row, print_event, print_unreadable};
use crate::args::{Direction, EventsArgs};
use crate::error::CliError;
use crate::output::Out;
use crate::target::{Access, Target};
use crate::Outcome;

/// The read options of the filters the store applies itself (from `after` on).
fn options(args: &EventsArgs, after: u64) -> ReadOptions {
    let mut options = ReadOptions::new().from_position(after);
    if args.direction == Direction::Backward {
        options = options.backward();
    }
    if let Some(tenant) = args.tenant {
        options = options.tenant_id(tenant);
    }
    if let Some(since) = args.since {
        options = options.from_timestamp(since);
    }
    if let Some(until) = args.until {
        options = options.to_timestamp(until);
    }
    if !args.event_types.is_empty() {
        options = options.event_types(args.event_types.iter().map(String::as_str));
    }
    options
}

/// The filters applied here.
fn wanted(args: &EventsArgs, event: &StoredEvent) -> bool {
    args.aggregate_type
        .as_deref()
        .is_none_or(|t| event.envelope.aggregate_type == t)
        && args
            .until_position
            .is_none_or(|p| event.global_position <= p)
}

/// `true` once a forward read has passed `--until-position`.
fn past_the_end(args: &EventsArgs, position: u64) -> bool {
    args.direction == Direction::Forward && args.until_position.is_some_and(|p| position > p)
}

/// Where a listing is: the last position read (forward), the events printed.
struct Progress {
    position: u64,
    printed: u64,
    limit: u64,
    /// Past `--until-position`: nothing more to print, following or not.
    done: bool,
}

/// Prints what one read after `progress.position` brings, up to the limit.
async fn print_read(
    store: &dyn EventStore,
    args: &EventsArgs,
    out: &mut Out<'_>,
    progress: &mut Progress,
) -> Result<(), CliError> {
    let backward = args.direction == Direction::Backward;
    let mut events = store.read_all(options(args, progress.position));
    while progress.printed < progress.limit {
        let Some(item) = events.next().await else {
            break;
        };
        let at = match item {
            Ok(event) if past_the_end(args, event.global_position) => {
                progress.done = true;
                break;
            }
            Ok(event) => {
                if wanted(args, &event) {
                    print_event(out, &event, "")?;
                    progress.printed += 1;
                }
                event.global_position
            }
            Err(error) if is_unreadable_row(&error) => {
                print_unreadable(out, &error)?;
                match error {
                    eventsource::Error::CorruptEvent {
                        global_position, ..
                    } => global_position,
                    _ => 0,
                }
            }
            Err(error) => return Err(error.into()),
        };
        if !backward {
            progress.position = progress.position.max(at);
        }
    }
    out.flush()
}

pub(super) async fn run(args: &EventsArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    if args.follow && args.direction == Direction::Backward {
        return Err(CliError::Usage(
            "--follow reads forward: it cannot be used with --direction backward".into(),
        ));
    }
    let target = Target::open(&args.store, Access::Read).await?;
    let mut out = Out::new(out, args.store.json);
    let store = target.events();
    // Backward, 0 is the end; `--until-position` is where a backward read starts.
    let start = match (args.direction, args.from, args.until_position) {
        (Direction::Backward, None, Some(until)) => until.saturating_add(1),
        (_, from, _) => from.unwrap_or(0),
    };
    let mut progress = Progress {
        position: start,
        printed: 0,
        limit: args.limit.unwrap_or(u64::MAX),
        done: false,
    };
    // Listening before the first read: nothing appended after it goes unnoticed.
    let mut wake = match (&target, args.follow) {
        (Target::Postgres(store), true) => match PostgresEventBus::start(store).await {
            // The bus is kept with its subscription: dropped, it stops listening.
            Ok(bus) => Some((bus.subscribe(BusFilter::All), bus)),
            Err(error) => {
                eprintln!("eventsource: no LISTEN/NOTIFY ({error}); following by polling");
                None
            }
        },
        _ => None,
    };
    let listed = print_read(store, args, &mut out, &mut progress).await;
    if listed.is_err() || !args.follow || progress.done || progress.printed >= progress.limit {
        target.close().await;
        return listed.map(|()| Outcome::Ok);
    }
    // Tail: read what was appended after the last position, again and again, until the
    // process is stopped (Ctrl-C) or the limit is reached: on PostgreSQL woken by its
    // LISTEN/NOTIFY bus (and polling as the fallback), elsewhere by polling.
    let pause = Duration::from_millis(args.poll_ms.max(10));
    while progress.printed < progress.limit && !progress.done {
        match wake.as_mut().map(|(subscription, _bus)| subscription) {
            Some(wake) => {
                let _ = tokio::time::timeout(pause, wake.recv()).await;
            }
            None => tokio::time::sleep(pause).await,
        }
        print_read(store, args, &mut out, &mut progress).await?;
    }
    target.close().await;
    Ok(Outcome::Ok)
}
