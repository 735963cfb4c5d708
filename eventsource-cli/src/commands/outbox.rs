//! `outbox status | list | retry`.

use std::io::Write;

use eventsource::{OutboxEntry, OutboxStatus};
use serde_json::json;

use super::confirm;
use crate::args::{EntryStatus, OutboxAction};
use crate::error::CliError;
use crate::output::Out;
use crate::target::{Access, Target};
use crate::Outcome;

pub(super) async fn run(action: OutboxAction, out: &mut dyn Write) -> Result<Outcome, CliError> {
    match action {
        OutboxAction::Status(store) => {
            let target = Target::open(&store, Access::Read).await?;
            let mut out = Out::new(out, store.json);
            let stats = target.outbox().stats().await?;
            target.close().await;
            let age = stats
                .oldest_pending_at
                .map(|at| (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0);
            out.either(
                &json!({
                    "pending": stats.pending,
                    "published": stats.published,
                    "failed": stats.failed,
                    "oldest_pending_at": stats.oldest_pending_at,
                    "oldest_pending_age_seconds": age,
                }),
                || {
                    format!(
                        "pending {}  published {}  failed {}  oldest pending {}",
                        stats.pending,
                        stats.published,
                        stats.failed,
                        age.map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s ago")),
                    )
                },
            )?;
            Ok(Outcome::Ok)
        }
        OutboxAction::List {
            store,
            status,
            limit,
        } => {
            let target = Target::open(&store, Access::Read).await?;
            let mut out = Out::new(out, store.json);
            let status = status.map(|s| match s {
                EntryStatus::Pending => OutboxStatus::Pending,
                EntryStatus::Published => OutboxStatus::Published,
                EntryStatus::Failed => OutboxStatus::Failed,
            });
            let entries = target.outbox().get_entries(status, limit).await?;
            target.close().await;
            if entries.is_empty() && !out.json {
                out.line("no outbox entries")?;
            }
            for entry in &entries {
                out.either(&entry_json(entry), || {
                    format!(
                        "{:>8}  {:<9}  #{:<8} {:<24} {} {}  {} retries{}",
                        entry.id,
                        entry.status.as_str(),
                        entry.global_position,
                        entry.event_type,
                        entry.aggregate_type,
                        entry.aggregate_id,
                        entry.retry_count,
                        entry
                            .last_error
                            .as_deref()
                            .map(|e| format!("  last error: {e}"))
                            .unwrap_or_default(),
                    )
                })?;
            }
            Ok(Outcome::Ok)
        }
        OutboxAction::Retry { store, ids, yes } => {
            let target = Target::open(&store, Access::Write).await?;
            let mut out = Out::new(out, store.json);
            // Named entries must be failed ones: say which are not, before changing any.
            if !ids.is_empty() {
                let failed: Vec<i64> = match target
                    .outbox()
                    .get_entries(Some(OutboxStatus::Failed), u64::MAX)
                    .await
                {
                    Ok(entries) => entries.iter().map(|e| e.id).collect(),
                    Err(error) => {
                        target.close().await;
                        return Err(error.into());
                    }
                };
                let not_failed: Vec<String> = ids
                    .iter()
                    .filter(|id| !failed.contains(id))
                    .map(i64::to_string)
                    .collect();
                if !not_failed.is_empty() {
                    target.close().await;
                    return Err(CliError::Usage(format!(
                        "outbox entries {} are not failed entries (nothing was changed)",
                        not_failed.join(", ")
                    )));
                }
            }
            let which = if ids.is_empty() {
                "every failed outbox entry".to_owned()
            } else {
                format!("outbox entries {ids:?}")
            };
            if let Err(error) = confirm(&format!("Put {which} back to pending?"), yes) {
                target.close().await;
                return Err(error);
            }
            let requeued = target
                .outbox()
                .retry_failed((!ids.is_empty()).then_some(ids.as_slice()))
                .await;
            target.close().await;
            let requeued = requeued?;
            out.either(&json!({ "requeued": requeued }), || {
                format!("{requeued} failed entries back to pending")
            })?;
            Ok(Outcome::Ok)
        }
    }
}

fn entry_json(entry: &OutboxEntry) -> serde_json::Value {
    json!({
        "id": entry.id,
        "status": entry.status.as_str(),
        "event_id": entry.event_id,
        "event_type": entry.event_type,
        "aggregate_id": entry.aggregate_id,
        "aggregate_type": entry.aggregate_type,
        "tenant_id": entry.tenant_id,
        "global_position": entry.global_position,
        "created_at": entry.created_at,
        "published_at": entry.published_at,
        "retry_count": entry.retry_count,
        "last_error": entry.last_error,
    })
}
