//! `events`: a filtered listing, and `--follow` to tail new events.

use std::io::Write;
use std::time::Duration;

use eventsource::{ReadOptions, StoredEvent};
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

pub(super) async fn run(args: &EventsArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    if args.follow && args.direction == Direction::Backward {
        return Err(CliError::Usage(
            "--follow reads forward: it cannot be used with --direction backward".into(),
        ));
    }
    let target = Target::open(&args.store, Access::Read).await?;
    let mut out = Out::new(out, args.store.json);
    let store = target.events();
    let backward = args.direction == Direction::Backward;
    // Backward, 0 is the end.
    let start = args.from.unwrap_or(0);
    let mut printed = 0u64;
    let mut position = start;
    let limit = args.limit.unwrap_or(u64::MAX);
    {
        let mut events = store.read_all(options(args, start));
        while let Some(item) = events.next().await {
            if printed >= limit {
                break;
            }
            match item {
                Ok(event) => {
                    if !backward {
                        position = position.max(event.global_position);
                    }
                    if wanted(args, &event) {
                        print_event(&mut out, &event, "")?;
                        printed += 1;
                    }
                }
                Err(error) if is_unreadable_row(&error) => {
                    print_unreadable(&mut out, &error)?;
                    if let eventsource::Error::CorruptEvent {
                        global_position, ..
                    } = error
                    {
                        position = position.max(global_position);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    out.flush()?;
    if !args.follow || printed >= limit {
        target.close().await;
        return Ok(Outcome::Ok);
    }
    // Tail: read what was appended after the last position, again and again, until the
    // process is stopped (Ctrl-C).
    let pause = Duration::from_millis(args.poll_ms.max(10));
    loop {
        tokio::time::sleep(pause).await;
        let mut events = store.read_all(options(args, position));
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => {
                    position = position.max(event.global_position);
                    if wanted(args, &event) {
                        print_event(&mut out, &event, "")?;
                        printed += 1;
                    }
                }
                Err(error) if is_unreadable_row(&error) => {
                    print_unreadable(&mut out, &error)?;
                    if let eventsource::Error::CorruptEvent {
                        global_position, ..
                    } = error
                    {
                        position = position.max(global_position);
                    }
                }
                Err(error) => return Err(error.into()),
            }
            if printed >= limit {
                return Ok(Outcome::Ok);
            }
        }
        out.flush()?;
    }
}
