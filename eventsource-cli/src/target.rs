//! The store a command works on: a SQLite file or a PostgreSQL schema, opened from what
//! the command line names, and seen through the library's traits.

use std::path::Path;
use std::time::Duration;

use eventsource::{
    CheckpointStore, DeadLetterStore, EventStore, OutboxStore, PostgresEventStore, SqliteEventStore,
};

use crate::args::StoreArgs;
use crate::error::CliError;

/// How a command uses its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads only: a SQLite file is opened read-only (every write refused).
    Read,
    /// Writes to a store that must exist.
    Write,
    /// Writes, creating a SQLite file (and the schema) when there is none.
    Create,
}

/// An opened store.
#[derive(Debug)]
pub(crate) enum Target {
    Sqlite(Box<SqliteEventStore>),
    Postgres(PostgresEventStore),
}

/// Opens the SQLite database at `path`: read-only for [`Access::Read`], created (with
/// its schema) for [`Access::Create`].
///
/// # Errors
/// [`CliError::Usage`] for a file that is not there (unless `Create`); the library's
/// error for one that is not a database.
pub(crate) async fn open_sqlite(path: &Path, access: Access) -> Result<SqliteEventStore, CliError> {
    if access != Access::Create && !path.is_file() {
        return Err(CliError::Usage(format!(
            "no SQLite database at {} (give a database file or a postgres:// URL)",
            path.display()
        )));
    }
    let store = SqliteEventStore::options(path)
        .read_only(access == Access::Read)
        .open()
        .await?;
    if access == Access::Create {
        store.initialize().await?;
    }
    // A file that is not a SQLite database fails here, not halfway through a command.
    store.get_global_position().await?;
    Ok(store)
}

/// Connects to `url` (in `schema`), checking the connection at once; creates the
/// schema for [`Access::Create`].
///
/// # Errors
/// The library's error when the server cannot be reached or the schema not read.
pub(crate) async fn open_postgres(
    url: &str,
    schema: Option<&str>,
    access: Access,
) -> Result<PostgresEventStore, CliError> {
    let mut options = PostgresEventStore::options(url)
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5));
    if let Some(schema) = schema {
        options = options.schema(schema);
    }
    let store = options.connect().await?;
    if access == Access::Create {
        store.initialize().await?;
    }
    store.get_global_position().await?;
    Ok(store)
}

/// `true` for a PostgreSQL URL.
pub(crate) fn is_postgres_url(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

impl Target {
    /// Opens the store `args` names.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a SQLite file that is not there (unless `Create`) or
    /// `--schema` on a SQLite store; the library's error when it cannot be opened.
    pub(crate) async fn open(args: &StoreArgs, access: Access) -> Result<Target, CliError> {
        let spec = args.store.as_str();
        if is_postgres_url(spec) {
            return Ok(Target::Postgres(
                open_postgres(spec, args.schema.as_deref(), access).await?,
            ));
        }
        if args.schema.is_some() {
            return Err(CliError::Usage(format!(
                "--schema applies to postgres:// stores, not to the SQLite file {spec}"
            )));
        }
        Ok(Target::Sqlite(Box::new(
            open_sqlite(Path::new(spec), access).await?,
        )))
    }

    /// The same store read without any registry: every payload as the stored JSON,
    /// nothing upcast or split (what a faithful copy of the rows needs).
    pub(crate) fn without_registry(&self) -> Target {
        let none = std::sync::Arc::new(eventsource::EventRegistry::new());
        match self {
            Target::Sqlite(store) => Target::Sqlite(Box::new(store.with_registry(none))),
            Target::Postgres(store) => Target::Postgres(store.with_registry(none)),
        }
    }

    /// The event store.
    pub(crate) fn events(&self) -> &dyn EventStore {
        match self {
            Target::Sqlite(store) => &**store,
            Target::Postgres(store) => store,
        }
    }

    /// Its checkpoints.
    pub(crate) fn checkpoints(&self) -> &dyn CheckpointStore {
        match self {
            Target::Sqlite(store) => &**store,
            Target::Postgres(store) => store,
        }
    }

    /// Its dead letters.
    pub(crate) fn dead_letters(&self) -> &dyn DeadLetterStore {
        match self {
            Target::Sqlite(store) => &**store,
            Target::Postgres(store) => store,
        }
    }

    /// Its outbox.
    pub(crate) fn outbox(&self) -> &dyn OutboxStore {
        match self {
            Target::Sqlite(store) => &**store,
            Target::Postgres(store) => store,
        }
    }

    /// What it is, for people: the file, or the server and schema.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Sqlite(store) => format!("SQLite {}", store.database().display()),
            Target::Postgres(store) => {
                format!(
                    "PostgreSQL {} (schema {})",
                    redact(store.url()),
                    store.schema()
                )
            }
        }
    }

    /// Closes the connections.
    pub(crate) async fn close(&self) {
        match self {
            Target::Sqlite(store) => store.close().await,
            Target::Postgres(store) => store.close().await,
        }
    }
}

/// A URL without its password (in the user part, or as a `password=` parameter).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (address, query) = match rest.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (rest, None),
    };
    let address = match address.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => address.to_owned(),
    };
    let query = query.map(|query| {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(query) => format!("{scheme}://{address}?{query}"),
        None => format!("{scheme}://{address}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/app"),
            "postgres://app@db:5432/app"
        );
        assert_eq!(
            redact("postgres://db/app?user=app&password=secret&sslmode=require"),
            "postgres://db/app?user=app&password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
    }
}
