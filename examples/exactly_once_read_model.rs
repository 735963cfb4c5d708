//! A read model in the event store's own SQLite file, updated exactly once: the
//! projection's writes and its checkpoint commit in one transaction, so a crash at any
//! point never loses or doubles an event (tests/exactly_once.rs kills a process with
//! SIGKILL to prove it).
//!
//! Run with: `cargo run --example exactly_once_read_model`

use std::error::Error;
use std::io::Write;
use std::path::Path;

use eventsource::prelude::*;
use eventsource::{BoxError, SqliteProjectionRunner};
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
struct OrderPlaced {
    customer: String,
    total: f64,
}

/// Revenue per customer, in the table `customer_revenue` of the same database.
#[derive(Debug)]
struct CustomerRevenue;

#[eventsource::async_trait]
impl eventsource::TransactionalProjection<sqlx::SqliteConnection> for CustomerRevenue {
    fn name(&self) -> &str {
        "customer_revenue"
    }

    fn handled_event_types(&self) -> &'static [&'static str] {
        &["OrderPlaced"]
    }

    async fn handle(
        &mut self,
        event: &StoredEvent,
        conn: &mut SqliteConnection,
    ) -> Result<(), BoxError> {
        let order: &OrderPlaced = event.event()?;
        sqlx::query(
            "INSERT INTO customer_revenue (customer, orders, revenue) VALUES (?, 1, ?) \
             ON CONFLICT (customer) DO UPDATE SET orders = orders + 1, revenue = revenue + excluded.revenue",
        )
        .bind(&order.customer)
        .bind(order.total)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

async fn run(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS customer_revenue (customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, revenue REAL NOT NULL)",
    )
    .execute(store.pool())
    .await?;

    for (customer, total) in [("ada", 12.5), ("grace", 30.0), ("ada", 7.5)] {
        let placed = NewEvent::new(OrderPlaced {
            customer: customer.into(),
            total,
        });
        store
            .append_events(
                Uuid::new_v4(),
                "Order",
                vec![placed],
                ExpectedVersion::NoStream,
            )
            .await?;
    }

    let mut runner =
        SqliteProjectionRunner::new(store.clone(), CustomerRevenue, "customer_revenue");
    let applied = runner.catch_up().await?;
    writeln!(out, "Applied {applied} events")?;
    // Running again applies nothing: the checkpoint moved with the read model.
    writeln!(out, "Applied again: {}", runner.catch_up().await?)?;

    let rows: Vec<(String, i64, f64)> =
        sqlx::query_as("SELECT customer, orders, revenue FROM customer_revenue ORDER BY customer")
            .fetch_all(store.pool())
            .await?;
    for (customer, orders, revenue) in rows {
        writeln!(out, "{customer}: {orders} orders, {revenue:.2}")?;
    }
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("eventsource-exactly-once-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir.join("app.db"), &mut std::io::stdout()).await;
    std::fs::remove_dir_all(&dir)?;
    result
}

#[cfg(test)]
mod tests {

    /// The example's event types match its lock (`examples/locks/exactly_once_read_model.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "exactly_once_read_model",
            env!("CARGO_CRATE_NAME"),
        );
    }
    #[tokio::test]
    async fn applies_each_event_once() {
        let dir = eventsource_tests::example_support::TempDir::new();
        let mut out = Vec::new();
        super::run(&dir.file("app.db"), &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Applied 3 events\nApplied again: 0\nada: 2 orders, 20.00\ngrace: 1 orders, 30.00\n"
        );
    }
}
