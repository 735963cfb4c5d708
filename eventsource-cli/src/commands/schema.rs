//! `schema check`: the binary's event types against `events.lock`, and a store's stored
//! type versions against it.

use std::io::Write;

use eventsource::schema::Lock;
use eventsource::EventRegistry;
use serde_json::json;

use crate::args::{SchemaAction, StoreArgs};
use crate::error::CliError;
use crate::output::Out;
use crate::target::{Access, Target};
use crate::Outcome;

pub(super) async fn run(action: SchemaAction, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let SchemaAction::Check {
        lock,
        prefix,
        store,
        schema,
        json: as_json,
    } = action;
    let mut out = Out::new(out, as_json);
    let registry = EventRegistry::global();
    if super::application_types() == 0 {
        return Err(CliError::Usage(
            "schema check compares this binary's event types with the lock, and the standalone binary has none: \
             run it from your application's binary (eventsource_cli::main())"
                .into(),
        ));
    }
    let text = std::fs::read_to_string(&lock)
        .map_err(CliError::io(format!("reading {}", lock.display())))?;
    let locked = Lock::parse(&text)?;
    let code = Lock::of_code(&registry, &prefix)?;
    let mut problems: Vec<(String, String)> = eventsource::schema::compare(&locked, &code)
        .into_iter()
        .map(|problem| {
            let kind = match problem {
                eventsource::schema::LockProblem::Removed { .. } => "removed",
                eventsource::schema::LockProblem::Incompatible { .. } => "incompatible",
                _ => "out_of_date",
            };
            (kind.to_owned(), problem.to_string())
        })
        .collect();
    if let Some(store) = store {
        let args = StoreArgs {
            store,
            schema,
            json: as_json,
        };
        let target = Target::open(&args, Access::Read).await?;
        let stored = target.events().event_type_counts().await;
        target.close().await;
        for count in stored? {
            if !locked
                .events
                .contains_key(&(count.event_type.clone(), count.event_version))
            {
                problems.push((
                    "stored_not_locked".into(),
                    format!(
                        "{} v{} is stored ({} events) but not in {}: no locked shape guards its rows",
                        count.event_type,
                        count.event_version,
                        count.count,
                        lock.display()
                    ),
                ));
            }
        }
    }
    for (kind, detail) in &problems {
        out.either(&json!({ "kind": kind, "detail": detail }), || {
            format!("{kind:<18} {detail}")
        })?;
    }
    out.either(
        &json!({ "lock": lock, "problems": problems.len(), "ok": problems.is_empty() }),
        || {
            if problems.is_empty() {
                format!("ok: the code matches {}", lock.display())
            } else {
                format!("{} problems against {}", problems.len(), lock.display())
            }
        },
    )?;
    Ok(if problems.is_empty() {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}
