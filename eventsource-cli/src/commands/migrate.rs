//! `migrate`: SQLite into PostgreSQL, resumable, verified, with a progress bar.

use std::io::Write;

use eventsource::{migrate_sqlite_to_postgres, MigrationOptions};
use serde_json::json;

use crate::args::MigrateArgs;
use crate::error::CliError;
use crate::output::{progress_bar, Out};
use crate::target::{is_postgres_url, open_postgres, open_sqlite, Access};
use crate::Outcome;

pub(super) async fn run(args: &MigrateArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    if !is_postgres_url(&args.postgres_url) {
        return Err(CliError::Usage(format!(
            "the target must be a postgres:// URL, not {}",
            args.postgres_url
        )));
    }
    let source = open_sqlite(&args.sqlite, Access::Read).await?;
    // The target's schema is created when new (initialize is idempotent).
    let target = open_postgres(&args.postgres_url, args.schema.as_deref(), Access::Create).await?;
    let total = eventsource::EventStore::get_global_position(&source).await?;
    let bar = progress_bar(total, "migrating");
    let progress = bar.clone();
    let options = MigrationOptions::new()
        .batch_size(args.batch_size)
        .on_progress(move |p| {
            progress.set_length(p.total);
            progress.set_position(p.read);
        });
    let report = migrate_sqlite_to_postgres(&source, &target, options).await;
    bar.finish_and_clear();
    source.close().await;
    target.close().await;
    let report = report?;
    let mut out = Out::new(out, args.json);
    out.either(
        &json!({
            "source_events": report.source_events,
            "target_events": report.target_events,
            "copied": report.copied,
            "skipped": report.skipped,
            "checkpoints": report.checkpoints,
            "checksum": report.checksum,
            "verified": true,
        }),
        || {
            format!(
                "migrated and verified: {} events ({} copied now, {} there already), {} checkpoints, checksum {}",
                report.target_events, report.copied, report.skipped, report.checkpoints, report.checksum
            )
        },
    )?;
    Ok(Outcome::Ok)
}
