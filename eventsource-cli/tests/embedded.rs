//! The CLI built into an application's own binary (`eventsource_cli::App`), run in this
//! process: its durable read model listed, rebuilt and replayed into (`projections`,
//! `dlq retry`), its event types checked against `events.lock` (`schema check`) and
//! against the store by `verify` and `info`.
//! The standalone binary refuses what only an application's binary can do.

mod common;

use std::sync::{Arc, Mutex};

use clap::Parser;
use common::known::{known_store, path_str};
use eventsource::prelude::*;
use eventsource::sqlx::{self, SqliteConnection};
use eventsource::testing::TempDir;
use eventsource::{
    BoxError, DeadLetterStatus, DeadLetterStore, RetryPolicy, SqliteProjectionRunner,
};
use eventsource_cli::{App, CliError, Outcome};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, serde::Serialize, serde::Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
struct Deposited {
    amount: i64,
}

/// The amounts the handler refuses.
type Refused = Arc<Mutex<Vec<i64>>>;

fn refuse(refused: &Refused, amounts: &[i64]) {
    *refused.lock().unwrap() = amounts.to_vec();
}

/// Balances per account, in the store's own database; refuses the amounts in `refused`.
#[derive(Debug)]
struct Balances {
    refused: Refused,
}

#[projection(name = "balances")]
impl Balances {
    #[handles]
    async fn deposited(
        &mut self,
        e: &Deposited,
        ctx: &EventContext<'_>,
        conn: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        if self.refused.lock().unwrap().contains(&e.amount) {
            return Err(format!("refused {}", e.amount).into());
        }
        sqlx::query(
            "INSERT INTO balances (account, total) VALUES (?, ?) \
             ON CONFLICT (account) DO UPDATE SET total = total + excluded.total",
        )
        .bind(ctx.aggregate_id().to_string())
        .bind(e.amount)
        .execute(conn)
        .await?;
        Ok(())
    }

    #[reset]
    async fn clear(&mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM balances")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

fn runner(store: SqliteEventStore, refused: &Refused) -> SqliteProjectionRunner<Balances> {
    let balances = Balances {
        refused: refused.clone(),
    };
    SqliteProjectionRunner::new(store, balances, "balances").retry(RetryPolicy::no_retry())
}

fn app(refused: &Refused) -> App {
    let refused = refused.clone();
    App::new().sqlite_projection("balances", move |store| runner(store, &refused))
}

async fn run(app: &App, args: &[&str]) -> (Result<Outcome, CliError>, String) {
    let mut argv = vec!["eventsource"];
    argv.extend_from_slice(args);
    let mut out = Vec::new();
    let outcome = app
        .run(eventsource_cli::Cli::parse_from(argv), &mut out)
        .await;
    (outcome, String::from_utf8(out).unwrap())
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Ten deposits of 1..=10 on two accounts, applied by the runner; its store.
async fn deposits(path: &std::path::Path, refused: &Refused) -> SqliteEventStore {
    let store = SqliteEventStore::open(path).await.unwrap();
    store.initialize().await.unwrap();
    sqlx::query("CREATE TABLE balances (account TEXT PRIMARY KEY, total INTEGER NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    let accounts = [Uuid::from_u128(1), Uuid::from_u128(2)];
    for amount in 1..=10i64 {
        store
            .append_events(
                accounts[amount as usize % 2],
                "Account",
                vec![NewEvent::new(Deposited { amount })],
                ExpectedVersion::Any,
            )
            .await
            .unwrap();
    }
    runner(store.clone(), refused).catch_up().await.unwrap();
    store
}

async fn totals(store: &SqliteEventStore) -> Vec<i64> {
    sqlx::query_scalar("SELECT total FROM balances ORDER BY account")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applications_binary_lists_and_rebuilds_its_read_model() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("app.db");
    let refused = Refused::default();
    let store = deposits(&path, &refused).await;
    let app = app(&refused);
    let db = path.to_str().unwrap();
    assert_eq!(
        totals(&store).await,
        [2 + 4 + 6 + 8 + 10, 1 + 3 + 5 + 7 + 9]
    );

    let (outcome, listed) = run(&app, &["projections", "list", db, "--json"]).await;
    assert_eq!(outcome.unwrap(), Outcome::Ok);
    let listed = lines(&listed);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["name"].as_str(), listed[0]["position"].as_u64()),
        (Some("balances"), Some(10))
    );
    assert_eq!(listed[0]["events_behind"], 0);

    // The read model drifts (a bad hand edit); a rebuild puts it right.
    sqlx::query("UPDATE balances SET total = 0")
        .execute(store.pool())
        .await
        .unwrap();
    // (Without --yes it would ask: `the_standalone_binary_...` runs the binary for that.)
    let (outcome, said) = run(&app, &["projections", "rebuild", db, "balances", "--yes"]).await;
    assert_eq!(outcome.unwrap(), Outcome::Ok);
    assert!(
        said.starts_with("rebuilt `balances`: 10 events applied, 0 dead-lettered, at position 10"),
        "{said}"
    );
    assert_eq!(totals(&store).await, [30, 25]);
    let (outcome, _) = run(&app, &["projections", "rebuild", db, "nothing", "--yes"]).await;
    assert!(
        matches!(outcome, Err(CliError::Usage(ref m)) if m.contains("no durable read model `nothing`")),
        "{outcome:?}"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_retry_replays_through_the_fixed_handler_in_order() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("dlq.db");
    let refused = Refused::default();
    refuse(&refused, &[3, 8]);
    let store = deposits(&path, &refused).await;
    let failed = store
        .get_failed_events(Some("balances"), Some(DeadLetterStatus::Failed), 10)
        .await
        .unwrap();
    assert_eq!(
        failed
            .iter()
            .map(|l| l.failed.global_position)
            .collect::<Vec<_>>(),
        [3, 8]
    );
    let app = app(&refused);
    let db = path.to_str().unwrap();
    refuse(&refused, &[8]);

    // Still failing on 8: the first (3) goes in, the retry stops at 8, loudly.
    let (outcome, said) = run(&app, &["dlq", "retry", db, "--yes"]).await;
    assert!(
        matches!(outcome, Err(CliError::Usage(ref m)) if m.contains("stopped at dead letter") && m.contains("after 1 replayed")),
        "{outcome:?}"
    );
    assert!(
        said.contains("replayed into balances") && said.contains("failed again"),
        "{said}"
    );
    let letters = store
        .get_failed_events(Some("balances"), None, 10)
        .await
        .unwrap();
    assert_eq!(letters[0].status, DeadLetterStatus::Resolved);
    assert_eq!(letters[1].status, DeadLetterStatus::Failed);
    assert_eq!(
        letters[1].failed.retry_count,
        failed[1].failed.retry_count + 1
    );

    // Fixed: --stop-at before it replays nothing more; then all.
    refuse(&refused, &[]);
    let (outcome, said) = run(&app, &["dlq", "retry", db, "--yes", "--stop-at", "7"]).await;
    assert_eq!(outcome.unwrap(), Outcome::Ok);
    assert_eq!(said.trim(), "no dead letters to retry");
    let (outcome, said) = run(&app, &["dlq", "retry", db, "--yes", "--json"]).await;
    assert_eq!(outcome.unwrap(), Outcome::Ok);
    let said = lines(&said);
    assert_eq!(
        (
            said[0]["global_position"].as_u64(),
            said[0]["replayed"].as_bool()
        ),
        (Some(8), Some(true))
    );
    assert_eq!(
        totals(&store).await,
        [30, 25],
        "every deposit applied exactly once"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_check_compares_the_code_and_the_store_with_the_lock() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("schema.db");
    let store = deposits(&path, &Refused::default()).await;
    store
        .append_events(
            Uuid::new_v4(),
            "Legacy",
            vec![NewEvent::raw("LegacyThing", 3, serde_json::json!({}))],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    store.close().await;
    let lock = dir.file("events.lock");
    let code =
        eventsource::schema::Lock::of_code(&eventsource::EventRegistry::global(), "embedded::")
            .unwrap();
    std::fs::write(&lock, code.render()).unwrap();
    let app = App::new();
    let lock_path = lock.to_str().unwrap();
    let (outcome, said) = run(
        &app,
        &["schema", "check", lock_path, "--prefix", "embedded::"],
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Ok, "{said}");
    assert!(said.starts_with("ok: the code matches"), "{said}");
    // The store holds a type version the lock does not guard.
    let (outcome, said) = run(
        &app,
        &[
            "schema",
            "check",
            lock_path,
            "--prefix",
            "embedded::",
            "--store",
            path.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::CheckFailed);
    let said = lines(&said);
    assert_eq!(said[0]["kind"], "stored_not_locked");
    assert!(said[0]["detail"]
        .as_str()
        .unwrap()
        .starts_with("LegacyThing v3 is stored (1 events)"));
    // A locked type the code no longer has.
    std::fs::write(
        &lock,
        format!("{}event Gone v1 {{x: i64}}\n", code.render()),
    )
    .unwrap();
    let (outcome, said) = run(
        &app,
        &["schema", "check", lock_path, "--prefix", "embedded::"],
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::CheckFailed);
    assert!(
        said.contains("removed") && said.contains("Gone v1"),
        "{said}"
    );
}

#[test]
fn the_standalone_binary_refuses_what_needs_an_applications_code() {
    let dir = TempDir::new().unwrap();
    let db = dir.file("empty.db");
    common::ok(&["import", db.to_str().unwrap(), "-i", "/dev/null"]);
    let db = db.to_str().unwrap();
    common::fails(&["dlq", "retry", db, "--yes"], 2, "this binary has none");
    common::fails(
        &["projections", "rebuild", db, "x", "--yes"],
        2,
        "no read models of its own",
    );
    common::fails(
        &["schema", "check", "events.lock"],
        2,
        "the standalone binary has none",
    );
    assert!(
        common::ok(&["projections", "list", db]).contains("no durable read models in this binary")
    );
}

/// An event type this test binary registers, as an application embedding the CLI does
/// (its registry has `OrderPlaced` and `Deposited`).
#[derive(Debug, serde::Serialize, serde::Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
struct OrderPlaced {
    total: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_in_an_application_it_checks_types_against_its_registry() {
    let dir = TempDir::new().unwrap();
    let path = dir.file("app.db");
    let store = known_store(&path).await;
    store.close().await;
    let db = path_str(&path);
    // The known store's other types are not this application's: verify says which.
    let (outcome, report) = run(&App::new(), &["verify", db, "--json"]).await;
    assert_eq!(outcome.unwrap(), eventsource_cli::Outcome::CheckFailed);
    let problems: Vec<Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let unknown: Vec<u64> = problems
        .iter()
        .filter(|p| p["kind"] == "unknown_type")
        .map(|p| p["global_position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        unknown,
        [2, 3, 4, 5],
        "every type but OrderPlaced: {report}"
    );
    let (_, info) = run(&App::new(), &["info", db]).await;
    assert!(
        info.contains("stored but not registered: CustomerRegistered"),
        "{info}"
    );
    // The standalone binary has no registry: it does not check types at all.
    assert!(common::ok(&["verify", db]).contains("types not checked"));
}
