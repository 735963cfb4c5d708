//! Set-up mistakes that used to go silent or surface as raw SQL errors: a database whose
//! outbox one handle turned on (every other handle keeps it), a store used before
//! `initialize()` or on a foreign `events` table, and the SQLite paths users type.

mod support;

use eventsource::prelude::*;
use eventsource::{CheckpointStore, Error, OutboxStore, SqliteStoreOptions};
use futures::StreamExt;
use support::{created, TempDir};
use uuid::Uuid;

async fn append(store: &dyn EventStore, title: &str) {
    store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created(title)],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_outbox_is_a_setting_of_the_sqlite_database() {
    let dir = TempDir::new();
    let path = dir.file("events.db");
    let with_outbox = SqliteEventStore::options(&path)
        .outbox(true)
        .open()
        .await
        .unwrap();
    with_outbox.initialize().await.unwrap();
    // Another handle (another process would be the same) opened without the option.
    let plain = SqliteEventStore::open(&path).await.unwrap();
    assert!(plain.outbox_enabled().await.unwrap());
    append(&plain, "from the plain handle").await;
    append(&with_outbox, "from the outbox handle").await;
    let pending = with_outbox.get_pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 2, "every handle writes the outbox");
    assert_eq!(
        (pending[0].global_position, pending[1].global_position),
        (1, 2)
    );
    assert_eq!(
        pending[0].event_data["title"],
        serde_json::json!("from the plain handle")
    );

    // Reopening without the option does not turn it off; disabling does, for everyone.
    plain.close().await;
    let reopened = SqliteEventStore::open(&path).await.unwrap();
    assert!(reopened.outbox_enabled().await.unwrap());
    reopened.disable_outbox().await.unwrap();
    assert!(!with_outbox.outbox_enabled().await.unwrap());
    append(&with_outbox, "after disabling").await;
    assert_eq!(with_outbox.get_pending_events(10).await.unwrap().len(), 2);
    // Turned on again at open, on an initialized database.
    let again = SqliteEventStore::options(&path)
        .outbox(true)
        .open()
        .await
        .unwrap();
    assert!(again.outbox_enabled().await.unwrap());
    append(&reopened, "on again").await;
    assert_eq!(reopened.get_pending_events(10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_store_used_before_initialize_says_so() {
    let dir = TempDir::new();
    let path = dir.file("events.db");
    let store = SqliteEventStore::open(&path).await.unwrap();
    let error = store
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("a")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::SchemaNotInitialized { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("call initialize()"), "{error}");
    let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
    assert!(
        matches!(items.as_slice(), [Err(Error::SchemaNotInitialized { .. })]),
        "{items:?}"
    );
    match store.get_position("projection").await {
        Err(Error::SchemaNotInitialized { detail, .. }) => {
            assert!(detail.contains("projection_checkpoints"), "{detail}")
        }
        other => panic!("expected SchemaNotInitialized, got {other:?}"),
    }
    // Another handle (or process) initializes: this one notices at its next call.
    let other = SqliteEventStore::open(&path).await.unwrap();
    other.initialize().await.unwrap();
    append(&store, "after initialize").await;
    assert_eq!(store.get_global_position().await.unwrap(), 1);
    assert_eq!(store.get_position("projection").await.unwrap(), None);
}

#[tokio::test]
async fn a_foreign_events_table_is_a_schema_mismatch() {
    let dir = TempDir::new();
    let store = SqliteEventStore::open(dir.file("other.db")).await.unwrap();
    sqlx::raw_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)")
        .execute(store.pool())
        .await
        .unwrap();
    for result in [
        store.get_global_position().await.map(|_| ()),
        store
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created("a")],
                ExpectedVersion::Any,
            )
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(Error::SchemaMismatch { table, detail }) => {
                assert_eq!(table, "events");
                assert!(detail.contains("global_position"), "{detail}");
            }
            other => panic!("expected a schema mismatch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn sqlite_urls_and_memory_paths_do_what_they_say() {
    let dir = TempDir::new();
    // `sqlite::memory:` is an in-memory database, not a file of that name.
    let cwd_file = std::path::Path::new("sqlite::memory:");
    let memory = SqliteEventStore::open("sqlite::memory:").await.unwrap();
    assert_eq!(memory.database(), std::path::Path::new(":memory:"));
    memory.initialize().await.unwrap();
    append(&memory, "in memory").await;
    assert!(!cwd_file.exists(), "no file named sqlite::memory: was made");

    // A file URL, then the same file read-only through `?mode=ro`.
    let path = dir.file("events.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteEventStore::open(&url).await.unwrap();
    store.initialize().await.unwrap();
    append(&store, "by url").await;
    assert_eq!(store.database(), path.as_path());
    let reader = SqliteEventStore::open(format!("{url}?mode=ro"))
        .await
        .unwrap();
    assert_eq!(reader.get_global_position().await.unwrap(), 1);
    assert!(matches!(
        reader
            .append_events(
                Uuid::new_v4(),
                "Task",
                vec![created("no")],
                ExpectedVersion::Any
            )
            .await,
        Err(Error::ReadOnly { .. })
    ));

    // What cannot work is refused up front.
    for refused in [
        SqliteStoreOptions::new(":memory:").read_only(true),
        SqliteStoreOptions::new("sqlite::memory:?mode=ro"),
        SqliteStoreOptions::new(format!("{url}?cache=shared")),
    ] {
        assert!(
            matches!(
                refused.clone().open().await,
                Err(Error::InvalidConfiguration { .. })
            ),
            "{refused:?}"
        );
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_outbox_setting_and_reports_a_missing_schema() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let options = server.options();
    // Not initialized yet: a typed error, not "relation does not exist".
    let early = options.clone().connect().await.unwrap();
    let error = early
        .append_events(
            Uuid::new_v4(),
            "Task",
            vec![created("a")],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::SchemaNotInitialized { .. }),
        "{error:?}"
    );
    assert!(matches!(
        early.get_pending_events(1).await,
        Err(Error::SchemaNotInitialized { .. })
    ));

    let with_outbox = options.clone().outbox(true).connect().await.unwrap();
    with_outbox.initialize().await.unwrap();
    // The handle that failed before works now, and keeps the outbox without the option.
    assert!(early.outbox_enabled().await.unwrap());
    append(&early, "plain handle").await;
    append(&with_outbox, "outbox handle").await;
    let pending = with_outbox.get_pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(
        (pending[0].global_position, pending[1].global_position),
        (1, 2)
    );
    early.disable_outbox().await.unwrap();
    assert!(!with_outbox.outbox_enabled().await.unwrap());
    append(&with_outbox, "after disabling").await;
    assert_eq!(with_outbox.get_pending_events(10).await.unwrap().len(), 2);
    with_outbox.enable_outbox().await.unwrap();
    append(&early, "on again").await;
    assert_eq!(with_outbox.get_pending_events(10).await.unwrap().len(), 3);
}
