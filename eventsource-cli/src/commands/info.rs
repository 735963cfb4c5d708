//! `info`: what a store holds.

use std::io::Write;

use eventsource::{EventRegistry, ReadOptions};
use serde_json::json;

use crate::args::StoreArgs;
use crate::backend;
use crate::error::CliError;
use crate::output::Out;
use crate::target::{Access, Target};
use crate::Outcome;

pub(super) async fn run(args: &StoreArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let target = Target::open(args, Access::Read).await?;
    let mut out = Out::new(out, args.json);
    let store = target.events();
    let head = store.get_global_position().await?;
    let counts = backend::counts(&target).await?;
    let types = store.event_type_counts().await?;
    let first = super::first_timestamp(store, ReadOptions::new()).await?;
    let last = super::first_timestamp(store, ReadOptions::new().backward()).await?;
    // The registry of this binary: empty in the standalone one, yours when embedded.
    let registry = EventRegistry::global();
    let registered = super::application_types();
    let unregistered: Vec<&str> = if registered == 0 {
        Vec::new()
    } else {
        let mut names: Vec<&str> = types
            .iter()
            .filter(|t| registry.versions(&t.event_type).is_empty())
            .map(|t| t.event_type.as_str())
            .collect();
        names.dedup();
        names
    };
    let checkpoints = target
        .checkpoints()
        .get_all_checkpoints()
        .await
        .map(|c| c.len())
        .ok();
    target.close().await;

    if out.json {
        out.record(&json!({
            "store": target.describe(),
            "events": counts.events,
            "head_position": head,
            "streams": counts.streams,
            "tenants": counts.tenants,
            "first_event_at": first,
            "last_event_at": last,
            "aggregate_types": counts.aggregate_types.iter().map(|(t, n)| json!({"aggregate_type": t, "events": n})).collect::<Vec<_>>(),
            "event_types": types.iter().map(|t| json!({"event_type": t.event_type, "event_version": t.event_version, "events": t.count})).collect::<Vec<_>>(),
            "tables": counts.tables,
            "database_bytes": counts.database_bytes,
            "outbox_enabled": counts.outbox_enabled,
            "checkpoints": checkpoints,
            "registered_types": registered,
            "unregistered_types": unregistered,
        }))?;
        return Ok(Outcome::Ok);
    }
    out.line(format!("store          {}", target.describe()))?;
    out.line(format!("events         {}", counts.events))?;
    out.line(format!("head position  {head}"))?;
    out.line(format!("streams        {}", counts.streams))?;
    out.line(format!("tenants        {}", counts.tenants))?;
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    };
    out.line(format!("first event    {}", at(first)))?;
    out.line(format!("last event     {}", at(last)))?;
    out.line(format!(
        "outbox         {}",
        if counts.outbox_enabled { "on" } else { "off" }
    ))?;
    if let Some(bytes) = counts.database_bytes {
        out.line(format!("size           {}", human_bytes(bytes)))?;
    }
    out.line("aggregate types")?;
    for (aggregate_type, events) in &counts.aggregate_types {
        out.line(format!("  {aggregate_type:<30} {events:>10}"))?;
    }
    out.line("event types")?;
    for t in &types {
        let name = format!("{} v{}", t.event_type, t.event_version);
        out.line(format!("  {name:<30} {:>10}", t.count))?;
    }
    out.line("tables")?;
    for table in &counts.tables {
        let bytes = table
            .bytes
            .map(|b| format!("  {}", human_bytes(b)))
            .unwrap_or_default();
        out.line(format!(
            "  {:<30} {:>10} rows{bytes}",
            table.table, table.rows
        ))?;
    }
    if registered == 0 {
        out.line("registry       no event types registered in this binary: payloads are raw JSON, types not checked")?;
    } else if unregistered.is_empty() {
        out.line(format!(
            "registry       {registered} types registered; every stored type is one of them"
        ))?;
    } else {
        out.line(format!(
            "registry       {registered} types registered; stored but not registered: {}",
            unregistered.join(", ")
        ))?;
    }
    Ok(Outcome::Ok)
}

/// Bytes for people.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
