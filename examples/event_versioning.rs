//! Changing events: v1 -> v2 (a rename and a field change) -> v3 (a new field), with
//! rows of every version in one SQLite store, read back as v3 by an aggregate that
//! applies v3 only; then the store copied through the chain into a new file that holds v3
//! rows only (`copy_transform`, verified).
//!
//! Run with: `cargo run --example event_versioning`

use std::error::Error;
use std::io::Write;
use std::path::Path;

use eventsource::prelude::*;
use eventsource::{copy_transform, EventRegistry, TransformOptions};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// v1, as the first release stored it: under the name `BookCreated`, one author.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookCreated", aggregate = "Book", version = 1)]
struct BookCreated {
    title: String,
    author: String,
}

/// v2: renamed `BookAdded`, with a list of authors.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[event(
    name = "BookAdded",
    aggregate = "Book",
    version = 2,
    previous = BookCreated,
    renamed_from = "BookCreated"
)]
struct BookAddedV2 {
    title: String,
    authors: Vec<String>,
}

impl From<BookCreated> for BookAddedV2 {
    fn from(v1: BookCreated) -> Self {
        BookAddedV2 {
            title: v1.title,
            authors: vec![v1.author],
        }
    }
}

/// v3, the current version: an ISBN, which old books may not have.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", aggregate = "Book", version = 3, previous = BookAddedV2)]
struct BookAdded {
    title: String,
    authors: Vec<String>,
    isbn: Option<String>,
}

impl From<BookAddedV2> for BookAdded {
    fn from(v2: BookAddedV2) -> Self {
        BookAdded {
            title: v2.title,
            authors: v2.authors,
            isbn: None,
        }
    }
}

/// A catalog whose `#[apply]` knows v3 only (an `#[apply]` of `BookCreated` or
/// `BookAddedV2` would not compile: their rows read back as `BookAdded`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Catalog {
    books: Vec<String>,
}

#[aggregate(name = "Book")]
impl Catalog {
    #[apply]
    fn added(&mut self, e: &BookAdded) {
        let isbn = e.isbn.as_deref().unwrap_or("no ISBN");
        self.books
            .push(format!("{} by {} ({isbn})", e.title, e.authors.join(" & ")));
    }
}

async fn run(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;

    // Rows of every version, as three releases would have stored them.
    let shelf = Uuid::new_v4();
    let rows = vec![
        NewEvent::new(BookCreated {
            title: "Dune".into(),
            author: "Frank Herbert".into(),
        }),
        NewEvent::new(BookAddedV2 {
            title: "Good Omens".into(),
            authors: vec!["Terry Pratchett".into(), "Neil Gaiman".into()],
        }),
        NewEvent::new(BookAdded {
            title: "Piranesi".into(),
            authors: vec!["Susanna Clarke".into()],
            isbn: Some("978-1-63557-563-3".into()),
        }),
    ];
    store
        .append_events(shelf, "Book", rows, ExpectedVersion::NoStream)
        .await?;

    // Stored as written: upcasting happens on read, rows are never rewritten.
    for event in store
        .get_events(shelf, "Book", GetEventsOptions::default())
        .await?
        .events
    {
        let book = event.event::<BookAdded>()?;
        writeln!(
            out,
            "stored {} v{} -> read as BookAdded v3: {}",
            event.event_type(),
            event.envelope.event_version,
            book.title
        )?;
    }

    // The aggregate applies v3 only.
    let repository = AggregateRepository::<Catalog>::new(std::sync::Arc::new(store.clone()));
    let catalog = repository.load(shelf).await?;
    for book in &catalog.state().books {
        writeln!(out, "{book}")?;
    }

    // At start-up: every stored (type, version) has a way to the current types.
    EventRegistry::global().verify_store(&store).await?;
    writeln!(out, "verify_store: every stored version reads")?;

    // Old rows gone: the store copied through the chain into a new file, verified.
    let current = SqliteEventStore::open(db.with_extension("v3.db")).await?;
    current.initialize().await?;
    let report = copy_transform(&store, &current, &current, TransformOptions::new()).await?;
    writeln!(
        out,
        "copy_transform: {} events, {} rows rewritten at their current version",
        report.target_events, report.upcast_rows
    )?;
    for version in &report.target_versions {
        writeln!(
            out,
            "  the copy holds {} v{}: {} events",
            version.event_type, version.event_version, version.count
        )?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("eventsource-versioning-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir.join("library.db"), &mut std::io::stdout()).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {

    /// The example's event types match its lock (`examples/locks/event_versioning.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "event_versioning",
            env!("CARGO_CRATE_NAME"),
        );
    }
    #[tokio::test]
    async fn prints_every_version_read_as_the_current_one() {
        let dir = eventsource_tests::example_support::TempDir::new();
        let mut out = Vec::new();
        super::run(&dir.file("library.db"), &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "stored BookCreated v1 -> read as BookAdded v3: Dune",
                "stored BookAdded v2 -> read as BookAdded v3: Good Omens",
                "stored BookAdded v3 -> read as BookAdded v3: Piranesi",
                "Dune by Frank Herbert (no ISBN)",
                "Good Omens by Terry Pratchett & Neil Gaiman (no ISBN)",
                "Piranesi by Susanna Clarke (978-1-63557-563-3)",
                "verify_store: every stored version reads",
                "copy_transform: 3 events, 2 rows rewritten at their current version",
                "  the copy holds BookAdded v3: 3 events",
            ]
        );
    }
}
