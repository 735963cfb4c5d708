//! The seeds' "Migration to PostgreSQL": move an application's events from its SQLite
//! file to PostgreSQL, in batches, with progress, resumable, verified at the end.
//!
//! Run with:
//! `DATABASE_URL=postgres://user:pass@localhost/mydb cargo run --example migrate_to_postgres [EVENTS_DB]`
//!
//! Without `EVENTS_DB`, it first writes a demo SQLite file of 2,500 events to migrate.
//! The checklist of the seeds holds: stop writes to SQLite, migrate, check the counts
//! (done here, with a checksum), switch the configuration, keep the SQLite file for a while.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use eventsource::prelude::*;
use eventsource::{migrate_sqlite_to_postgres, MigrationOptions, PostgresEventStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "AccountOpened", aggregate = "BankAccount")]
struct AccountOpened {
    owner_name: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "MoneyDeposited", aggregate = "BankAccount")]
struct MoneyDeposited {
    amount: f64,
}

/// A demo SQLite store: 500 accounts with an opening and 4 deposits each.
async fn demo_source(path: &Path) -> eventsource::Result<SqliteEventStore> {
    let store = SqliteEventStore::open(path).await?;
    store.initialize().await?;
    for i in 0..500 {
        let mut events = vec![NewEvent::new(AccountOpened {
            owner_name: format!("owner {i}"),
        })];
        events.extend((1..=4).map(|d| {
            NewEvent::new(MoneyDeposited {
                amount: f64::from(d) * 10.0,
            })
        }));
        store
            .append_events(
                Uuid::new_v4(),
                "BankAccount",
                events,
                ExpectedVersion::NoStream,
            )
            .await?;
    }
    Ok(store)
}

async fn run<W: Write + Send + 'static>(
    sqlite_path: &Path,
    postgres_url: &str,
    schema: &str,
    out: Arc<Mutex<W>>,
) -> Result<(), Box<dyn Error>> {
    let print = move |line: String| {
        let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(out, "{line}");
    };
    print(format!(
        "Starting migration from {} to PostgreSQL...",
        sqlite_path.display()
    ));
    let source = if sqlite_path.exists() {
        SqliteEventStore::open(sqlite_path).await?
    } else {
        demo_source(sqlite_path).await?
    };
    let target = PostgresEventStore::options(postgres_url)
        .schema(schema)
        .connect()
        .await?;
    target.initialize().await?;

    let progress = print.clone();
    let report = migrate_sqlite_to_postgres(
        &source,
        &target,
        MigrationOptions::new()
            .batch_size(1000)
            .on_progress(move |p| {
                progress(format!("Migrated {} of {} events...", p.read, p.total));
            }),
    )
    .await?;
    print(format!(
        "Migration complete: {} events transferred ({} already there)",
        report.copied, report.skipped
    ));
    print(format!(
        "Verified: {} events on both sides, checksum {}",
        report.target_events, report.checksum
    ));
    source.close().await;
    target.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("Set DATABASE_URL to the PostgreSQL database to migrate into, e.g.");
        eprintln!("  DATABASE_URL=postgres://user:pass@localhost/mydb cargo run --example migrate_to_postgres");
        std::process::exit(2);
    };
    let path = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => std::env::temp_dir().join(format!("migrate-demo-{}.db", Uuid::new_v4())),
    };
    let schema = std::env::var("EVENTSOURCE_SCHEMA").unwrap_or_else(|_| "public".into());
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    run(&path, &url, &schema, stdout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's event types match its lock (`examples/locks/migrate_to_postgres.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "migrate_to_postgres",
            env!("CARGO_CRATE_NAME"),
        );
    }

    const EXPECTED: &str = "Starting migration from ./events.db to PostgreSQL...
Migrated 1000 of 2500 events...
Migrated 2000 of 2500 events...
Migrated 2500 of 2500 events...
Migration complete: 2500 events transferred (0 already there)
Verified: 2500 events on both sides, checksum [HEX]
";

    /// The checksum depends on the random ids: mask it.
    fn mask_checksum(text: &str) -> String {
        match text.split_once("checksum ") {
            Some((head, tail)) if tail.len() >= 16 => {
                format!("{head}checksum [HEX]{}", &tail[16..])
            }
            _ => text.to_owned(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrates_the_demo_store() {
        let Some(server) = eventsource_tests::postgres_harness::server() else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("eventsource-migrate-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let schema = format!("m_{}", Uuid::new_v4().simple());
        let out = Arc::new(Mutex::new(Vec::new()));
        run(&dir.join("events.db"), server.url(), &schema, out.clone())
            .await
            .unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone())
            .unwrap()
            .replace(&dir.display().to_string(), ".");
        assert_eq!(mask_checksum(&text), EXPECTED);
        // Run again: resumable, so everything is skipped and verified once more.
        let out = Arc::new(Mutex::new(Vec::new()));
        run(&dir.join("events.db"), server.url(), &schema, out.clone())
            .await
            .unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("0 events transferred (2500 already there)"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
