//! Copy-transform: a store rewritten through its upcasters into a new store holds current
//! versions only, reads back what the source reads, and resumes after an interruption.

mod support;

use std::sync::{Arc, Mutex};

use eventsource::prelude::*;
use eventsource::{
    copy_transform, split_upcaster, CheckpointStore, Error, InMemoryCheckpointStore, RawEvent,
    SqliteEventStore, TransformOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::TempDir;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookCreated", aggregate = "Book", version = 1)]
struct BookCreated {
    title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(
    name = "BookAdded",
    aggregate = "Book",
    version = 2,
    previous = BookCreated,
    renamed_from = "BookCreated"
)]
struct BookAdded {
    title: String,
    copies: u32,
}

impl From<BookCreated> for BookAdded {
    fn from(v1: BookCreated) -> Self {
        BookAdded {
            title: v1.title,
            copies: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Book")]
struct CopyAdded {
    shelf: String,
}

/// `BookShelved` v1 listed its shelves; each is a `CopyAdded` now.
fn split_shelved(v1: Value) -> Result<Vec<RawEvent>, String> {
    let shelves = v1["shelves"].as_array().ok_or("shelves is not a list")?;
    shelves
        .iter()
        .map(|shelf| {
            let shelf = shelf.as_str().ok_or("a shelf is not text")?.to_owned();
            RawEvent::of(&CopyAdded { shelf }).map_err(|e| e.to_string())
        })
        .collect()
}

split_upcaster!(
    name = "BookShelved",
    version = 1,
    produces = ["CopyAdded"],
    split_shelved
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Book {
    title: String,
    copies: u32,
    shelves: Vec<String>,
}

#[aggregate(name = "Book")]
impl Book {
    #[init]
    fn new(_id: Uuid) -> Self {
        Book::default()
    }

    #[apply]
    fn added(&mut self, e: &BookAdded) {
        self.title = e.title.clone();
        self.copies = e.copies;
    }

    #[apply]
    fn copy(&mut self, e: &CopyAdded) {
        self.shelves.push(e.shelf.clone());
    }
}

async fn sqlite(dir: &TempDir, name: &str) -> SqliteEventStore {
    let store = SqliteEventStore::open(dir.file(name)).await.unwrap();
    store.initialize().await.unwrap();
    store
}

/// A book per title: created at v1 (renamed since), shelved at v1 (split since), a
/// current event; and a note of a type nobody registered.
async fn library(store: &dyn EventStore, titles: &[&str]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for title in titles {
        let id = Uuid::new_v4();
        let tenant = Uuid::new_v4();
        store
            .append_events(
                id,
                "Book",
                vec![
                    NewEvent::new(BookCreated {
                        title: (*title).into(),
                    })
                    .with_tenant_id(tenant)
                    .with_actor_id("librarian")
                    .with_metadata("source", "import"),
                    NewEvent::raw("BookShelved", 1, json!({"shelves": ["a", "b"]})),
                    NewEvent::new(CopyAdded { shelf: "c".into() }),
                ],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        store
            .append_events(
                Uuid::new_v4(),
                "Note",
                vec![NewEvent::raw("LegacyNote", 4, json!({"text": title}))],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn a_copy_holds_current_versions_only_and_reads_back_what_the_source_reads() {
    let dir = TempDir::new();
    let source = sqlite(&dir, "source.db").await;
    let target = sqlite(&dir, "target.db").await;
    let ids = library(&source, &["Dune", "Emma"]).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let options = TransformOptions::new()
        .batch_size(3)
        .on_progress(move |p| log.lock().unwrap().push((p.read, p.position)));
    let report = copy_transform(&source, &target, &target, options)
        .await
        .unwrap();
    // Per book: BookAdded (renamed), two CopyAdded (split), CopyAdded, LegacyNote.
    assert_eq!((report.source_events, report.target_events), (10, 10));
    assert_eq!((report.written, report.skipped), (10, 0));
    assert_eq!((report.upcast_rows, report.kept_raw), (4, 2), "{report:?}");
    let versions: Vec<(String, u32, u64)> = report
        .target_versions
        .iter()
        .map(|t| (t.event_type.clone(), t.event_version, t.count))
        .collect();
    assert_eq!(
        versions,
        [
            ("BookAdded".to_owned(), 2, 2),
            ("CopyAdded".to_owned(), 1, 6),
            ("LegacyNote".to_owned(), 4, 2)
        ],
        "no BookCreated v1 or BookShelved v1 row is left"
    );
    // Batches of 3, never cutting a split row apart; the position is the source's.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.last(), Some(&(10, 8)), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "{seen:?}");

    for id in ids {
        let from_source = AggregateRepository::<Book>::new(Arc::new(source.clone()))
            .load(id)
            .await
            .unwrap();
        let from_target = AggregateRepository::<Book>::new(Arc::new(target.clone()))
            .load(id)
            .await
            .unwrap();
        assert_eq!(from_source.state(), from_target.state());
        assert_eq!(from_target.state().shelves, ["a", "b", "c"]);
        assert_eq!(
            (from_source.version(), from_target.version()),
            (3, 4),
            "the target numbers its own versions"
        );
        let copied = target
            .get_events(id, "Book", GetEventsOptions::default())
            .await
            .unwrap();
        let first = &copied.events[0].envelope;
        assert_eq!(
            (first.event_type.as_str(), first.event_version),
            ("BookAdded", 2)
        );
        assert_eq!(first.actor_id.as_deref(), Some("librarian"));
        assert_eq!(first.metadata["source"], "import");
        assert!(first.tenant_id.is_some());
    }
    // Done: the checkpoint is at the source's head.
    assert_eq!(
        target
            .get_position(eventsource::transform::DEFAULT_CHECKPOINT)
            .await
            .unwrap(),
        Some(8)
    );
}

#[tokio::test]
async fn an_interrupted_copy_resumes_and_skips_what_reached_the_target() {
    let dir = TempDir::new();
    let source = sqlite(&dir, "source.db").await;
    let target = sqlite(&dir, "target.db").await;
    library(&source, &["Dune", "Emma", "Ulysses"]).await;
    let first = copy_transform(
        &source,
        &target,
        &target,
        TransformOptions::new().batch_size(4),
    )
    .await
    .unwrap();
    assert_eq!(first.written, 15);
    // As if the copy had stopped after writing its last batches but before saving them.
    let name = eventsource::transform::DEFAULT_CHECKPOINT;
    target.reset(name).await.unwrap();
    target.save_progress(name, 6, None, 0).await.unwrap();
    library(&source, &["Walden"]).await;
    let again = copy_transform(
        &source,
        &target,
        &target,
        TransformOptions::new().batch_size(4),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.skipped, again.written, again.target_events),
        (7, 5, 20),
        "{again:?}"
    );

    // A target holding other events, without the copy's checkpoint, is refused.
    let other = sqlite(&dir, "other.db").await;
    library(&other, &["Emma"]).await;
    let error = copy_transform(&source, &other, &other, TransformOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Migration { .. }), "{error}");

    // Something written to the target behind the copy's back fails the verification.
    library(&target, &["Intruder"]).await;
    let error = copy_transform(&source, &target, &target, TransformOptions::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("verification failed"), "{error}");
}

#[tokio::test]
async fn a_row_that_does_not_read_stops_the_copy_and_loses_nothing() {
    let dir = TempDir::new();
    let source = sqlite(&dir, "source.db").await;
    library(&source, &["Dune"]).await;
    source
        .append_events(
            Uuid::new_v4(),
            "Book",
            vec![NewEvent::raw("BookShelved", 1, json!({"shelves": "oops"}))],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let target = InMemoryEventStore::new();
    let progress = InMemoryCheckpointStore::new();
    let error = copy_transform(
        &source,
        &target,
        &progress,
        TransformOptions::new().batch_size(2),
    )
    .await
    .unwrap_err();
    let Error::CorruptEvent {
        global_position,
        reason,
        ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(*global_position, 5);
    assert!(reason.contains("split_shelved"), "{reason}");
    // What was read before the bad row is in the target, and the checkpoint says so.
    assert_eq!(
        progress
            .get_position(eventsource::transform::DEFAULT_CHECKPOINT)
            .await
            .unwrap(),
        Some(4)
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_sqlite_store_copies_into_postgres_through_its_upcasters() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let dir = TempDir::new();
    let source = sqlite(&dir, "source.db").await;
    let ids = library(&source, &["Dune", "Emma"]).await;
    let target = server.store().await;
    let report = copy_transform(&source, &target, &target, TransformOptions::new())
        .await
        .unwrap();
    assert_eq!((report.target_events, report.upcast_rows), (10, 4));
    let book = AggregateRepository::<Book>::new(Arc::new(target.clone()))
        .load(ids[1])
        .await
        .unwrap();
    assert_eq!(
        (book.state().title.as_str(), book.state().copies),
        ("Emma", 1)
    );
    assert_eq!(book.state().shelves, ["a", "b", "c"]);
}
