//! `PostgresEventStore` on a real server: the conformance suite, then what is particular
//! to PostgreSQL (schemas, initialization, configuration and connection errors).
#![cfg(feature = "postgres")]

mod support;

mod conformance {
    use crate::support::postgres_fixture;
    eventsource::conformance_suite!(postgres_fixture);
}

use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::{Error, EventRegistry, PostgresEventStore};
use futures::StreamExt;
use support::postgres::server;
use support::{collect, created, TaskCreated};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_is_idempotent_and_safe_to_race() {
    let Some(server) = server() else { return };
    let options = server.options();
    let a = options.clone().connect().await.unwrap();
    let b = options.connect().await.unwrap();
    let (ra, rb) = tokio::join!(a.initialize(), b.initialize());
    ra.unwrap();
    rb.unwrap();
    a.append_events(
        Uuid::new_v4(),
        "Task",
        vec![created("kept")],
        ExpectedVersion::NoStream,
    )
    .await
    .unwrap();
    a.initialize().await.unwrap();
    assert_eq!(
        b.get_global_position().await.unwrap(),
        1,
        "initialize keeps rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_keep_applications_apart() {
    let Some(server) = server() else { return };
    let billing = server.store().await;
    let shipping = server.store().await;
    assert_ne!(billing.schema(), shipping.schema());
    assert_ne!(
        billing.notification_channel(),
        shipping.notification_channel()
    );
    let id = Uuid::new_v4();
    billing
        .append_events(
            id,
            "Task",
            vec![created("billing")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    assert_eq!(shipping.get_global_position().await.unwrap(), 0);
    assert_eq!(shipping.get_stream_version(id, "Task").await.unwrap(), 0);
    let result = shipping
        .append_events(
            id,
            "Task",
            vec![created("shipping")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    assert_eq!(
        result.global_position, 1,
        "each schema has its own positions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_column_types_are_used() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'events' ORDER BY column_name",
    )
    .bind(store.schema())
    .fetch_all(store.pool())
    .await
    .unwrap();
    let type_of = |name: &str| {
        types
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    assert_eq!(type_of("event_id"), "uuid");
    assert_eq!(type_of("payload"), "jsonb");
    assert_eq!(type_of("timestamp"), "timestamp with time zone");
    assert_eq!(type_of("global_position"), "bigint");
    let identity: String = sqlx::query_scalar(
        "SELECT is_identity::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'events' AND column_name = 'global_position'",
    )
    .bind(store.schema())
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(identity, "YES");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_events_table_is_refused() {
    let Some(server) = server() else { return };
    let store = server.options().connect().await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".events (id INT PRIMARY KEY, body TEXT)",
        store.schema()
    ))
    .execute(store.pool())
    .await
    .unwrap();
    match store.initialize().await {
        Err(Error::SchemaMismatch { detail, .. }) => {
            assert!(detail.contains("event_id"), "{detail}")
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_and_unreachable_servers_are_typed_errors() {
    for schema in ["", "1st", "a-b", "x\"; DROP TABLE events; --"] {
        let result = PostgresEventStore::options("postgres://localhost/x")
            .schema(schema)
            .connect()
            .await;
        assert!(
            matches!(result, Err(Error::InvalidConfiguration { .. })),
            "{schema:?}: {result:?}"
        );
    }
    let result = PostgresEventStore::options("mysql://nope").connect().await;
    assert!(
        matches!(result, Err(Error::InvalidConfiguration { .. })),
        "{result:?}"
    );
    let result = PostgresEventStore::options("postgres://u:secret@127.0.0.1:1/x")
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect()
        .await;
    match result {
        Err(Error::Connection { database, .. }) => {
            assert!(
                !database.contains("secret"),
                "the password is masked: {database}"
            )
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_says_so() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    store.close().await;
    assert!(!store.is_connected());
    let result = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("late")],
            ExpectedVersion::Any,
        )
        .await;
    assert!(matches!(result, Err(Error::StoreClosed)), "{result:?}");
    let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
    assert!(
        matches!(items.as_slice(), [Err(Error::StoreClosed)]),
        "{items:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_do_not_decode_are_reported_and_passed_over() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Task",
            vec![created("one"), created("two"), created("three")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    // The second event's payload no longer fits its registered type.
    sqlx::query(&format!(
        "UPDATE \"{}\".events SET payload = '{{\"title\": 42}}'::jsonb WHERE global_position = 2",
        store.schema()
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[2].is_ok());
    match &items[1] {
        Err(Error::CorruptEvent {
            global_position: 2,
            event_id: Some(_),
            event_type,
            ..
        }) => assert_eq!(event_type, "TaskCreated"),
        other => panic!("expected a corrupt event at 2, got {other:?}"),
    }
    assert!(matches!(
        store
            .get_events(id, "Task", GetEventsOptions::default())
            .await,
        Err(Error::CorruptEvent {
            global_position: 2,
            ..
        })
    ));
    // Nothing was lost: with a registry that does not know the type, it reads raw.
    let raw = store.with_registry(Arc::new(EventRegistry::new()));
    let events = collect(raw.read_all(ReadOptions::new())).await;
    assert_eq!(events[1].raw().unwrap().payload["title"], 42);
    assert!(events[0].downcast_ref::<TaskCreated>().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_postgres_cannot_store_is_an_error_not_a_loss() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    let id = Uuid::new_v4();
    // JSONB cannot hold U+0000: refused as input, on every store alike.
    let result = store
        .append_events(
            id,
            "Task",
            vec![created("nul \u{0} inside")],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(
        matches!(&result, Err(Error::InvalidInput { message }) if message.contains("NUL")),
        "{result:?}"
    );
    assert_eq!(store.get_global_position().await.unwrap(), 0);
    store
        .append_events(id, "Task", vec![created("fine")], ExpectedVersion::NoStream)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_read_committed_data_whatever_the_default_isolation() {
    let Some(server) = server() else { return };
    // A server or role whose default is SERIALIZABLE: a snapshot taken before the append
    // lock is granted would miss the previous append, and `Any` would conflict.
    let url = format!(
        "{}?options[default_transaction_isolation]=serializable",
        server.url()
    );
    let schema = server
        .options()
        .connect()
        .await
        .unwrap()
        .schema()
        .to_owned();
    let store = PostgresEventStore::options(url)
        .schema(schema)
        .max_connections(8)
        .connect()
        .await
        .unwrap();
    store.initialize().await.unwrap();
    let level: String = sqlx::query_scalar("SHOW default_transaction_isolation")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(level, "serializable");
    let id = Uuid::new_v4();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..15 {
                    store
                        .append_events(
                            id,
                            "Task",
                            vec![created(&format!("{w}-{i}"))],
                            ExpectedVersion::Any,
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(store.get_stream_version(id, "Task").await.unwrap(), 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_runs_no_ddl_once_the_schema_exists() {
    let Some(server) = server() else { return };
    let store = server.store().await;
    // A role that may use the tables but not create anything.
    let role = format!("app_{}", Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN; \
         GRANT USAGE ON SCHEMA \"{0}\" TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{0}\" TO {role};",
        store.schema()
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let url = server.url().replacen("postgres@", &format!("{role}@"), 1);
    let app = PostgresEventStore::options(url)
        .schema(store.schema())
        .connect()
        .await
        .unwrap();
    app.initialize().await.unwrap();
    app.append_events(
        Uuid::new_v4(),
        "Task",
        vec![created("by the app role")],
        ExpectedVersion::NoStream,
    )
    .await
    .unwrap();
    // Where the schema does not exist, the same role cannot create it: a typed error.
    let denied =
        PostgresEventStore::options(server.url().replacen("postgres@", &format!("{role}@"), 1))
            .schema(format!("{}_new", store.schema()))
            .connect()
            .await
            .unwrap()
            .initialize()
            .await;
    assert!(matches!(denied, Err(Error::Database { .. })), "{denied:?}");
}
