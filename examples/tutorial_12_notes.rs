//! Tutorial 12 of the seeds, second version: a notes app on SQLite — an in-memory
//! database, a file that survives a reopen, the configuration options, and the pattern
//! the pytest fixtures use (here `eventsource::testing`'s fixtures, see the test below).
//!
//! Run with: `cargo run --example tutorial_12_notes [DIRECTORY]`
//! (default: the system temp directory; the database files are removed at the end).

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// Events
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Note")]
struct NoteCreated {
    title: String,
    content: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Note")]
struct NoteUpdated {
    content: String,
}

// Aggregate
#[derive(Debug)]
struct NoteState {
    note_id: Uuid,
    title: String,
    content: String,
}

#[aggregate(name = "Note")]
impl NoteState {
    #[init]
    fn new(note_id: Uuid) -> Self {
        NoteState {
            note_id,
            title: String::new(),
            content: String::new(),
        }
    }

    #[apply]
    fn created(&mut self, event: &NoteCreated) {
        self.title.clone_from(&event.title);
        self.content.clone_from(&event.content);
    }

    #[apply]
    fn updated(&mut self, event: &NoteUpdated) {
        self.content.clone_from(&event.content);
    }
}

// Commands: decide the event from the state.
impl NoteState {
    fn create(&self, title: &str, content: &str) -> Result<NoteCreated, String> {
        if !self.title.is_empty() {
            return Err(format!("note {} exists already", self.note_id));
        }
        Ok(NoteCreated {
            title: title.into(),
            content: content.into(),
        })
    }

    fn update(&self, content: &str) -> Result<NoteUpdated, String> {
        if self.title.is_empty() {
            return Err(format!("note {} does not exist", self.note_id));
        }
        Ok(NoteUpdated {
            content: content.into(),
        })
    }
}

fn notes(store: Arc<dyn EventStore>) -> AggregateRepository<NoteState> {
    AggregateRepository::new(store)
}

async fn in_memory_demo(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    writeln!(out, "=== In-Memory SQLite Demo ===\n")?;
    let store = Arc::new(SqliteEventStore::open(":memory:").await?);
    store.initialize().await?;
    let repo = notes(store.clone());

    let note_id = Uuid::new_v4();
    let mut note = repo.create_new(note_id);
    note.execute(|n| n.create("Meeting Notes", "Discuss Q4 roadmap"))?;
    repo.save(&mut note).await?;
    writeln!(out, "Created note: {}", note.state().title)?;

    let mut loaded = repo.load(note_id).await?;
    loaded.execute(|n| n.update("Updated: Discuss Q4 roadmap and budget"))?;
    repo.save(&mut loaded).await?;
    writeln!(out, "Updated note: {}", loaded.state().content)?;
    writeln!(out, "Version: {}", loaded.version())?;
    store.close().await;
    writeln!(out, "Database cleaned up automatically\n")?;
    Ok(())
}

async fn file_based_demo(dir: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    writeln!(out, "=== File-Based SQLite Demo ===\n")?;
    let db_path = dir.join("tutorial_notes.db");
    let note_id = Uuid::new_v4();
    {
        let store = Arc::new(
            SqliteEventStore::options(&db_path)
                .wal_mode(true)
                .open()
                .await?,
        );
        store.initialize().await?;
        let repo = notes(store.clone());
        let mut note = repo.create_new(note_id);
        note.execute(|n| n.create("Development Notes", "Testing SQLite storage"))?;
        repo.save(&mut note).await?;
        writeln!(out, "Note saved to {}", db_path.display())?;
        writeln!(out, "Note ID: {note_id}")?;
        store.close().await;
    }
    writeln!(out, "Database file exists: {}", db_path.exists())?;
    {
        let store = Arc::new(SqliteEventStore::open(&db_path).await?);
        store.initialize().await?;
        let loaded = notes(store.clone()).load(note_id).await?;
        writeln!(out, "Reopened and loaded: {}", loaded.state().title)?;
        store.close().await;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db_path.clone().into_os_string();
        path.push(suffix);
        if Path::new(&path).exists() {
            std::fs::remove_file(&path)?;
        }
    }
    writeln!(out, "Cleaned up database files\n")?;
    Ok(())
}

async fn configuration_demo(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    writeln!(out, "=== Configuration Options Demo ===\n")?;
    let store = SqliteEventStore::open(":memory:").await?;
    store.initialize().await?;
    writeln!(out, "Database: {}", store.database().display())?;
    writeln!(out, "WAL mode: {}", store.wal_mode())?;
    writeln!(out, "Busy timeout: {}ms", store.busy_timeout().as_millis())?;
    writeln!(out, "Connected: {}", store.is_connected())?;
    store.close().await;
    writeln!(out)?;

    let store = SqliteEventStore::options(":memory:")
        .wal_mode(false)
        .busy_timeout(Duration::from_millis(10_000))
        .open()
        .await?;
    store.initialize().await?;
    writeln!(out, "Custom WAL mode: {}", store.wal_mode())?;
    writeln!(
        out,
        "Custom busy timeout: {}ms",
        store.busy_timeout().as_millis()
    )?;
    store.close().await;
    writeln!(out)?;
    Ok(())
}

async fn pytest_fixture_pattern(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    writeln!(out, "=== Pytest Fixture Pattern ===\n")?;
    // The seed's fixture: a fresh `:memory:` store and a repository over it
    // (`eventsource::testing::sqlite_memory_store` in a test, see below).
    let store = Arc::new(SqliteEventStore::open(":memory:").await?);
    store.initialize().await?;
    let repo = notes(store.clone());
    let note = repo
        .execute(Uuid::new_v4(), |n| n.create("Test Note", "Test content"))
        .await?;
    writeln!(out, "Test infrastructure created successfully")?;
    writeln!(out, "Note created with version: {}", note.version())?;
    store.close().await;
    writeln!(out, "Test cleanup complete\n")?;
    Ok(())
}

async fn run(dir: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    in_memory_demo(out).await?;
    file_based_demo(dir, out).await?;
    configuration_demo(out).await?;
    pytest_fixture_pattern(out).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(std::env::temp_dir, Into::into);
    run(&dir, &mut std::io::stdout()).await
}

#[cfg(test)]
mod tests {
    use eventsource::testing::{sqlite_memory_store, AggregateTest};
    use eventsource_tests::example_support::{mask_uuids, TempDir};

    use super::*;

    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "tutorial_12_notes",
            env!("CARGO_CRATE_NAME"),
        );
    }

    /// The seed's Exercise 1: each test gets a fresh database.
    #[tokio::test]
    async fn each_fixture_is_a_fresh_database() {
        let first = notes(sqlite_memory_store().await.unwrap());
        let id = Uuid::new_v4();
        first
            .execute(id, |n| n.create("Only here", ""))
            .await
            .unwrap();
        let second = notes(sqlite_memory_store().await.unwrap());
        assert!(first.exists(id).await.unwrap());
        assert!(!second.exists(id).await.unwrap());
    }

    #[test]
    fn commands_decide_from_the_state() {
        AggregateTest::<NoteState>::given_no_events()
            .when(|n| n.create("Meeting Notes", "Discuss Q4 roadmap"))
            .then_expect(NoteCreated {
                title: "Meeting Notes".into(),
                content: "Discuss Q4 roadmap".into(),
            });
        AggregateTest::<NoteState>::given_no_events()
            .when(|n| n.update("nothing to update"))
            .then_refused();
    }

    const EXPECTED: &str = "=== In-Memory SQLite Demo ===

Created note: Meeting Notes
Updated note: Updated: Discuss Q4 roadmap and budget
Version: 2
Database cleaned up automatically

=== File-Based SQLite Demo ===

Note saved to ./tutorial_notes.db
Note ID: [UUID]
Database file exists: true
Reopened and loaded: Development Notes
Cleaned up database files

=== Configuration Options Demo ===

Database: :memory:
WAL mode: false
Busy timeout: 5000ms
Connected: true

Custom WAL mode: false
Custom busy timeout: 10000ms

=== Pytest Fixture Pattern ===

Test infrastructure created successfully
Note created with version: 1
Test cleanup complete

";

    /// The output of the seed's `main()`, line for line (the seed prints `True` where
    /// Rust prints `true`; an in-memory database has no WAL).
    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir = TempDir::new();
        let mut out = Vec::new();
        super::run(dir.path(), &mut out).await.unwrap();
        let text = String::from_utf8(out)
            .unwrap()
            .replace(&dir.path().display().to_string(), ".");
        let leftover: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            leftover.is_empty(),
            "the demo removes its files: {leftover:?}"
        );
        assert_eq!(mask_uuids(&text), EXPECTED);
    }
}
