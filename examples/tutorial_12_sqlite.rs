//! Tutorial 12 of the seeds: SQLite for development and testing — an in-memory database,
//! a file that survives a restart, and the configuration options.
//!
//! Run with: `cargo run --example tutorial_12_sqlite [DIRECTORY]`
//! (default: the system temp directory; the database file is removed at the end).

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{EventRegistry, SqliteEventStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// =============================================================================
// Events
// =============================================================================

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
struct OrderPlaced {
    customer_id: String,
    total: f64,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
struct OrderShipped {
    tracking_number: String,
}

// =============================================================================
// Aggregate
// =============================================================================

#[derive(Debug)]
struct OrderState {
    order_id: Uuid,
    customer_id: String,
    total: f64,
    status: &'static str,
    tracking_number: Option<String>,
}

#[aggregate(name = "Order")]
impl OrderState {
    #[init]
    fn new(order_id: Uuid) -> Self {
        OrderState {
            order_id,
            customer_id: String::new(),
            total: 0.0,
            status: "draft",
            tracking_number: None,
        }
    }

    #[apply]
    fn placed(&mut self, event: &OrderPlaced) {
        self.customer_id.clone_from(&event.customer_id);
        self.total = event.total;
        self.status = "placed";
    }

    #[apply]
    fn shipped(&mut self, event: &OrderShipped) {
        self.status = "shipped";
        self.tracking_number = Some(event.tracking_number.clone());
    }
}

trait OrderCommands {
    fn place(&mut self, customer_id: &str, total: f64) -> Result<(), String>;
    fn ship(&mut self, tracking_number: &str) -> Result<(), String>;
}

impl OrderCommands for AggregateRoot<OrderState> {
    fn place(&mut self, customer_id: &str, total: f64) -> Result<(), String> {
        if self.version() > 0 {
            return Err("Order already placed".into());
        }
        self.apply_event(OrderPlaced {
            customer_id: customer_id.into(),
            total,
        });
        Ok(())
    }

    fn ship(&mut self, tracking_number: &str) -> Result<(), String> {
        if self.state().status != "placed" {
            return Err("Order must be placed to ship".into());
        }
        self.apply_event(OrderShipped {
            tracking_number: tracking_number.into(),
        });
        Ok(())
    }
}

// =============================================================================
// Demo Functions
// =============================================================================

fn banner(out: &mut dyn Write, title: &str) -> std::io::Result<()> {
    writeln!(out, "{}", "=".repeat(70))?;
    writeln!(out, "{title}")?;
    writeln!(out, "{}", "=".repeat(70))
}

/// In-memory SQLite for tests: fast, isolated, gone when the store is dropped.
async fn in_memory_demo(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    banner(out, "In-Memory SQLite Demo")?;
    let store = SqliteEventStore::options(":memory:")
        .wal_mode(false)
        .open()
        .await?;
    store.initialize().await?;
    let repo = AggregateRepository::<OrderState>::new(Arc::new(store.clone()));

    // Create order
    let order_id = Uuid::new_v4();
    let mut order = repo.create_new(order_id);
    order.place("customer-123", 99.99)?;
    repo.save(&mut order).await?;
    writeln!(out, "\n1. Created order: {}", order.state().order_id)?;
    writeln!(out, "   Version: {}", order.version())?;
    writeln!(out, "   Customer: {}", order.state().customer_id)?;
    writeln!(out, "   Total: ${}", order.state().total)?;

    // Load and modify
    let mut loaded = repo.load(order_id).await?;
    loaded.ship("TRACK-ABC123")?;
    repo.save(&mut loaded).await?;
    writeln!(out, "\n2. Shipped order")?;
    writeln!(out, "   Version: {}", loaded.version())?;
    writeln!(out, "   Status: {}", loaded.state().status)?;
    writeln!(
        out,
        "   Tracking: {}",
        loaded.state().tracking_number.as_deref().unwrap_or("-")
    )?;

    // Verify
    let verified = repo.load(order_id).await?;
    writeln!(out, "\n3. Verified order version: {}", verified.version())?;
    store.close().await;
    writeln!(out, "\n4. Database cleaned up automatically (in-memory)")?;
    writeln!(out)?;
    Ok(())
}

/// A file-based database survives a restart.
async fn file_based_demo(dir: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    banner(out, "File-Based SQLite Demo")?;
    let db_path = dir.join("tutorial_orders.db");

    // First session - create
    let order_id = Uuid::new_v4();
    {
        let store = SqliteEventStore::options(&db_path)
            .wal_mode(true)
            .open()
            .await?;
        store.initialize().await?;
        let repo = AggregateRepository::<OrderState>::new(Arc::new(store.clone()));
        let mut order = repo.create_new(order_id);
        order.place("customer-456", 149.99)?;
        repo.save(&mut order).await?;
        writeln!(out, "\n1. Created order: {order_id}")?;
        writeln!(out, "   Saved to: {}", db_path.display())?;
        writeln!(out, "   File exists: {}", db_path.exists())?;
        store.close().await;
    }

    // Second session - load (simulates restart)
    writeln!(out, "\n2. Reopening database (simulating restart)...")?;
    {
        let store = SqliteEventStore::options(&db_path)
            .wal_mode(true)
            .open()
            .await?;
        store.initialize().await?; // Safe to call again (idempotent)
        let repo = AggregateRepository::<OrderState>::new(Arc::new(store.clone()));
        let loaded = repo.load(order_id).await?;
        writeln!(out, "   Loaded order: {}", loaded.state().customer_id)?;
        writeln!(out, "   Total: ${}", loaded.state().total)?;
        writeln!(out, "   Version: {}", loaded.version())?;
        store.close().await;
    }

    // Cleanup
    writeln!(out, "\n3. Cleaning up database files...")?;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db_path.clone().into_os_string();
        path.push(suffix);
        let path = std::path::PathBuf::from(path);
        if path.exists() {
            std::fs::remove_file(&path)?;
            writeln!(out, "   Removed: {}", path.display())?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// The options and what the store reports about them.
async fn configuration_demo(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    banner(out, "Configuration Options Demo")?;

    // Default configuration
    writeln!(out, "\n1. Default configuration:")?;
    let store = SqliteEventStore::open(":memory:").await?;
    store.initialize().await?;
    writeln!(out, "   Database: {}", store.database().display())?;
    writeln!(out, "   WAL mode: {}", store.wal_mode())?;
    writeln!(
        out,
        "   Busy timeout: {}ms",
        store.busy_timeout().as_millis()
    )?;
    writeln!(out, "   Connected: {}", store.is_connected())?;
    store.close().await;

    // Custom configuration
    writeln!(out, "\n2. Custom configuration:")?;
    let store = SqliteEventStore::options(":memory:")
        .wal_mode(false)
        .busy_timeout(Duration::from_millis(10_000))
        .open()
        .await?;
    store.initialize().await?;
    writeln!(out, "   WAL mode: {}", store.wal_mode())?;
    writeln!(
        out,
        "   Busy timeout: {}ms",
        store.busy_timeout().as_millis()
    )?;
    store.close().await;

    // An explicit registry (tests, or targets where inventory cannot collect the derives)
    writeln!(out, "\n3. Explicit event registry:")?;
    let registry = Arc::new(EventRegistry::new());
    registry.register::<OrderPlaced>()?;
    registry.register::<OrderShipped>()?;
    let store = SqliteEventStore::options(":memory:")
        .registry(registry.clone())
        .open()
        .await?;
    store.initialize().await?;
    writeln!(
        out,
        "   Registered event types: {}",
        registry.registered_types().len()
    )?;
    registry.verify_store(&store).await?;
    writeln!(out, "   Every stored event type is registered")?;
    writeln!(out)?;
    Ok(())
}

async fn run(dir: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    in_memory_demo(out).await?;
    file_based_demo(dir, out).await?;
    configuration_demo(out).await?;
    banner(out, "Tutorial Complete!")?;
    writeln!(out, "\nKey Takeaways:")?;
    writeln!(out, "- Use :memory: for tests (fast, isolated)")?;
    writeln!(out, "- Use file-based for development (persistent)")?;
    writeln!(out, "- WAL mode improves concurrency (file-based only)")?;
    writeln!(out, "- Schema created with initialize() (idempotent)")?;
    writeln!(out, "- Migrate to PostgreSQL when scaling up")?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir(),
    };
    run(&dir, &mut std::io::stdout()).await
}

#[cfg(test)]
mod tests {
    use eventsource_tests::example_support::mask_uuids;

    /// The example's event types match its lock (`examples/locks/tutorial_12_sqlite.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "tutorial_12_sqlite",
            env!("CARGO_CRATE_NAME"),
        );
    }

    const EXPECTED: &str = "======================================================================
In-Memory SQLite Demo
======================================================================

1. Created order: [UUID]
   Version: 1
   Customer: customer-123
   Total: $99.99

2. Shipped order
   Version: 2
   Status: shipped
   Tracking: TRACK-ABC123

3. Verified order version: 2

4. Database cleaned up automatically (in-memory)

======================================================================
File-Based SQLite Demo
======================================================================

1. Created order: [UUID]
   Saved to: ./tutorial_orders.db
   File exists: true

2. Reopening database (simulating restart)...
   Loaded order: customer-456
   Total: $149.99
   Version: 1

3. Cleaning up database files...
   Removed: ./tutorial_orders.db

======================================================================
Configuration Options Demo
======================================================================

1. Default configuration:
   Database: :memory:
   WAL mode: false
   Busy timeout: 5000ms
   Connected: true

2. Custom configuration:
   WAL mode: false
   Busy timeout: 10000ms

3. Explicit event registry:
   Registered event types: 2
   Every stored event type is registered

======================================================================
Tutorial Complete!
======================================================================

Key Takeaways:
- Use :memory: for tests (fast, isolated)
- Use file-based for development (persistent)
- WAL mode improves concurrency (file-based only)
- Schema created with initialize() (idempotent)
- Migrate to PostgreSQL when scaling up
";

    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir = eventsource_tests::example_support::TempDir::new();
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
