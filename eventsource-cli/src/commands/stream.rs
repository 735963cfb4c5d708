//! `stream`: one aggregate's events, versions in order.

use std::io::Write;

use eventsource::{ReadOptions, StreamId};
use futures::StreamExt;
use serde_json::json;

use super::{is_unreadable_row, print_event, print_unreadable};
use crate::args::StreamArgs;
use crate::backend;
use crate::error::CliError;
use crate::output::Out;
use crate::target::{Access, Target};
use crate::Outcome;

pub(super) async fn run(args: &StreamArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let target = Target::open(&args.store, Access::Read).await?;
    let mut out = Out::new(out, args.store.json);
    let types = match &args.aggregate_type {
        Some(t) => vec![t.clone()],
        None => backend::aggregate_types_of(&target, args.aggregate_id).await?,
    };
    if types.is_empty() {
        target.close().await;
        return Err(CliError::Usage(format!(
            "no stream of aggregate {} in {}",
            args.aggregate_id,
            target.describe()
        )));
    }
    for aggregate_type in types {
        let stream = StreamId::new(args.aggregate_id, aggregate_type.clone());
        let version = target
            .events()
            .get_stream_version(args.aggregate_id, &aggregate_type)
            .await?;
        if !out.json {
            out.line(format!(
                "stream {}:{aggregate_type} at version {version}",
                args.aggregate_id
            ))?;
        }
        let mut events = target.events().read_stream(&stream, ReadOptions::new());
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => print_event(&mut out, &event, "  ")?,
                Err(error) if is_unreadable_row(&error) => print_unreadable(&mut out, &error)?,
                Err(error) => return Err(error.into()),
            }
        }
        if out.json && version == 0 {
            out.record(&json!({ "aggregate_id": args.aggregate_id, "aggregate_type": aggregate_type, "version": 0 }))?;
        }
    }
    target.close().await;
    Ok(Outcome::Ok)
}
