//! The seeds' "Development vs Production Configuration": one function picks the event
//! store from the environment, and the application code above it does not change.
//!
//! - `APP_ENV=development` (the default): a SQLite file, `./data/events.db`
//! - `APP_ENV=test`: SQLite `:memory:`
//! - `APP_ENV=production`: PostgreSQL at `DATABASE_URL` (schema `EVENTSOURCE_SCHEMA`,
//!   default `public`)
//!
//! Run with: `cargo run --example environment_config`, or e.g.
//! `APP_ENV=production DATABASE_URL=postgres://app@localhost/app cargo run --example environment_config`

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::PostgresEventStore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "OrderPlaced", aggregate = "Order")]
struct OrderPlaced {
    total: f64,
}

/// Where the events go, as read from the environment.
#[derive(Debug, Clone, PartialEq)]
enum StoreConfig {
    Sqlite { database: String },
    Postgres { url: String, schema: String },
}

/// The seeds' `get_event_store_config`.
fn config_from(
    env: impl Fn(&str) -> Option<String>,
    data_dir: &Path,
) -> Result<StoreConfig, String> {
    match env("APP_ENV").as_deref().unwrap_or("development") {
        "development" => Ok(StoreConfig::Sqlite {
            database: data_dir.join("events.db").display().to_string(),
        }),
        "test" => Ok(StoreConfig::Sqlite {
            database: ":memory:".into(),
        }),
        "production" => Ok(StoreConfig::Postgres {
            url: env("DATABASE_URL").ok_or("APP_ENV=production needs DATABASE_URL")?,
            schema: env("EVENTSOURCE_SCHEMA").unwrap_or_else(|| "public".into()),
        }),
        other => Err(format!(
            "unknown APP_ENV `{other}` (development, test, production)"
        )),
    }
}

/// The seeds' `create_event_store`: connected and initialized.
async fn create_event_store(config: &StoreConfig) -> eventsource::Result<Arc<dyn EventStore>> {
    Ok(match config {
        StoreConfig::Sqlite { database } => {
            if let Some(dir) = Path::new(database)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                // A missing directory is reported by open(); create ./data for development.
                let _ = std::fs::create_dir_all(dir);
            }
            let store = SqliteEventStore::open(database).await?;
            store.initialize().await?;
            Arc::new(store)
        }
        StoreConfig::Postgres { url, schema } => {
            let store = PostgresEventStore::options(url.as_str())
                .schema(schema.as_str())
                .connect()
                .await?;
            store.initialize().await?;
            Arc::new(store)
        }
    })
}

/// The application: the same code on every backend.
async fn place_order(store: &dyn EventStore, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let order = Uuid::new_v4();
    let result = store
        .append_events(
            order,
            "Order",
            vec![NewEvent::new(OrderPlaced { total: 42.5 })],
            ExpectedVersion::NoStream,
        )
        .await?;
    let stream = store
        .get_events(order, "Order", GetEventsOptions::default())
        .await?;
    let placed: &OrderPlaced = stream.events[0].event()?;
    writeln!(
        out,
        "Order placed: version {}, total {}",
        result.new_version, placed.total
    )?;
    Ok(())
}

async fn run(
    env: impl Fn(&str) -> Option<String>,
    data_dir: &Path,
    out: &mut dyn Write,
) -> Result<(), Box<dyn Error>> {
    let config = config_from(env, data_dir)?;
    let backend = match &config {
        StoreConfig::Sqlite { database } if database == ":memory:" => "SQLite in memory".to_owned(),
        StoreConfig::Sqlite { .. } => "SQLite file".to_owned(),
        StoreConfig::Postgres { schema, .. } => format!("PostgreSQL (schema {schema})"),
    };
    writeln!(out, "Backend: {backend}")?;
    let store = create_event_store(&config).await?;
    place_order(store.as_ref(), out).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    run(
        |name| std::env::var(name).ok(),
        Path::new("./data"),
        &mut std::io::stdout(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    /// The example's event types match its lock (`examples/locks/environment_config.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "environment_config",
            env!("CARGO_CRATE_NAME"),
        );
    }

    use super::*;

    async fn run_with(vars: &[(&str, &str)], dir: &Path) -> String {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        run(|name| vars.get(name).cloned(), dir, &mut out)
            .await
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn each_environment_gets_its_backend() {
        let dir = std::env::temp_dir().join(format!("eventsource-env-{}", Uuid::new_v4()));
        let development = run_with(&[], &dir).await;
        assert_eq!(
            development,
            "Backend: SQLite file\nOrder placed: version 1, total 42.5\n"
        );
        assert!(dir.join("events.db").exists());
        let _ = std::fs::remove_dir_all(&dir);

        let test = run_with(&[("APP_ENV", "test")], &dir).await;
        assert_eq!(
            test,
            "Backend: SQLite in memory\nOrder placed: version 1, total 42.5\n"
        );

        let missing = config_from(|n| (n == "APP_ENV").then(|| "production".into()), &dir);
        assert_eq!(missing, Err("APP_ENV=production needs DATABASE_URL".into()));
        assert!(config_from(|_| Some("staging".into()), &dir).is_err());

        let Some(server) = eventsource_tests::postgres_harness::server() else {
            return;
        };
        let schema = format!("env_{}", Uuid::new_v4().simple());
        let production = run_with(
            &[
                ("APP_ENV", "production"),
                ("DATABASE_URL", server.url()),
                ("EVENTSOURCE_SCHEMA", &schema),
            ],
            &dir,
        )
        .await;
        assert_eq!(
            production,
            format!("Backend: PostgreSQL (schema {schema})\nOrder placed: version 1, total 42.5\n")
        );
    }
}
