//! How `PostgresEventStore` appends: one call of the schema's append function (created
//! by `initialize()`), statement by statement on a schema without it, and inside a READ
//! COMMITTED transaction of its own where the server defaults to a stricter isolation.
#![cfg(feature = "postgres")]

mod support;

use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::testing::conformance as conformance_writers;
use eventsource::PostgresEventStore;
use support::postgres::server;
use support::{collect, created};
use uuid::Uuid;

async fn function_exists(store: &PostgresEventStore) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = $1 AND p.proname = 'eventsource_append_v2'",
    )
    .bind(store.schema())
    .fetch_one(store.pool())
    .await
    .unwrap()
        == 1
}

/// Appends on a schema whose append function is gone (as on a schema initialized by an
/// older version) still keep every rule; `initialize()` brings the function back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_without_the_append_function_appends_statement_by_statement() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    assert!(
        function_exists(&store).await,
        "initialize() creates the append function"
    );
    sqlx::query(&format!(
        "DROP FUNCTION \"{}\".eventsource_append_v2",
        store.schema()
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let store = Arc::new(store);
    conformance_writers::stale_appends_fail_alone(store.clone()).await;
    let id = Uuid::new_v4();
    let event = created("retried");
    store
        .append_events(id, "Task", vec![event.clone()], ExpectedVersion::NoStream)
        .await
        .unwrap();
    let again = store
        .append_events(id, "Task", vec![event], ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert_eq!(again.new_version, 1);
    assert!(again.already_stored);
    store.initialize().await.unwrap();
    assert!(function_exists(&store).await);
    store
        .append_events(
            id,
            "Task",
            vec![created("after")],
            ExpectedVersion::Exact(1),
        )
        .await
        .unwrap();
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 2);
}

/// A database whose default isolation is REPEATABLE READ: the append function refuses to
/// run in it (its reads must follow the append lock), and the store then calls it in a
/// READ COMMITTED transaction of its own, with the same outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stricter_default_isolation_is_handled() {
    let Some(server) = server() else { return };
    let admin = server.store().await;
    let database = format!("iso_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(admin.pool())
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {database} SET default_transaction_isolation = 'repeatable read'"
    ))
    .execute(admin.pool())
    .await
    .unwrap();
    let (base, _) = server.url().rsplit_once('/').unwrap();
    let url = format!("{base}/{database}");
    let store = PostgresEventStore::options(&url)
        .max_connections(8)
        .connect()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let store = Arc::new(store);
    conformance_writers::stale_appends_fail_alone(store.clone()).await;
    let all = collect(store.read_all(ReadOptions::new())).await;
    assert!(!all.is_empty());
    store.close().await;
    let second = PostgresEventStore::options(&url)
        .schema("second")
        .connect()
        .await
        .unwrap();
    second.initialize().await.unwrap();
    let second = Arc::new(second);
    conformance_writers::same_event_at_once_is_stored_once(second.clone()).await;
    second.close().await;
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(admin.pool())
        .await
        .unwrap();
}
