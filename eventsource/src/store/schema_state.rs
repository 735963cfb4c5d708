//! What a SQL store knows of its database's schema: which tables exist and which
//! columns `events` has, so that an operation on a database without the schema fails
//! with [`Error::SchemaNotInitialized`] or [`Error::SchemaMismatch`] instead of a raw
//! "no such table" from the driver.
//!
//! The backend reads the schema at open and after `initialize`; a check that fails reads
//! it again once (another process may have initialized the database meanwhile), so a
//! store that is ready never pays for the check beyond a lock read.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::store::StoredEventStream;

/// The stream `read` makes once `check` has passed; the check's error as the only item
/// otherwise. (Reads are streams made synchronously; their schema check is async.)
pub(crate) fn after_check<'a>(
    check: impl std::future::Future<Output = Result<()>> + Send + 'a,
    read: impl FnOnce() -> StoredEventStream<'a> + Send + 'a,
) -> StoredEventStream<'a> {
    let mut read = Some(read);
    futures::stream::once(check)
        .flat_map(move |checked| match (checked, read.take()) {
            (Ok(()), Some(read)) => read(),
            (Err(error), _) => futures::stream::once(async move { Err(error) }).boxed(),
            (Ok(()), None) => futures::stream::empty().boxed(),
        })
        .boxed()
}

/// The tables and `events` columns present in the database.
#[derive(Debug, Default, Clone)]
pub(crate) struct SchemaSnapshot {
    pub(crate) tables: HashSet<String>,
    pub(crate) event_columns: HashSet<String>,
    /// `table.column` for the columns of the other tables that are checked.
    pub(crate) table_columns: HashSet<String>,
}

/// What an operation needs of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Reading events: the `events` table with the columns every event store has.
    ReadEvents,
    /// Appending: also the columns `initialize` adds.
    WriteEvents,
    /// Another table of the store (checkpoints, dead letters, outbox, snapshots).
    Table(&'static str),
}

/// The schema a store last read, and the rules it is checked by.
#[derive(Debug)]
pub(crate) struct SchemaState {
    /// Named in errors: the database path or the PostgreSQL schema.
    database: String,
    /// Columns without which no event can be read.
    read_columns: &'static [&'static str],
    /// Columns appends write, which `initialize` adds where they are missing.
    write_columns: &'static [&'static str],
    /// `(table, column)`: columns of the other tables that `initialize` adds.
    table_columns: &'static [(&'static str, &'static str)],
    snapshot: RwLock<Arc<SchemaSnapshot>>,
}

impl SchemaState {
    pub(crate) fn new(
        database: String,
        read_columns: &'static [&'static str],
        write_columns: &'static [&'static str],
        table_columns: &'static [(&'static str, &'static str)],
    ) -> Self {
        SchemaState {
            database,
            read_columns,
            write_columns,
            table_columns,
            snapshot: RwLock::new(Arc::new(SchemaSnapshot::default())),
        }
    }

    /// The schema as last read.
    pub(crate) fn snapshot(&self) -> Arc<SchemaSnapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the schema just read.
    pub(crate) fn set(&self, snapshot: SchemaSnapshot) {
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }

    /// Whether the schema as last read serves `need`.
    ///
    /// # Errors
    /// [`Error::SchemaNotInitialized`] for a missing table or columns `initialize` adds;
    /// [`Error::SchemaMismatch`] for an `events` table that is not an event store's.
    pub(crate) fn check(&self, need: Need) -> Result<()> {
        let snapshot = self.snapshot();
        let not_initialized = |detail: String| Error::SchemaNotInitialized {
            database: self.database.clone(),
            detail,
        };
        let missing = |columns: &[&str]| -> Vec<String> {
            columns
                .iter()
                .filter(|c| !snapshot.event_columns.contains(**c))
                .map(|c| (*c).to_owned())
                .collect()
        };
        match need {
            Need::Table(table) if !snapshot.tables.contains(table) => {
                Err(not_initialized(format!("there is no `{table}` table")))
            }
            Need::Table(table) => {
                let absent: Vec<&str> = self
                    .table_columns
                    .iter()
                    .filter(|(t, c)| {
                        *t == table && !snapshot.table_columns.contains(&format!("{t}.{c}"))
                    })
                    .map(|(_, c)| *c)
                    .collect();
                if absent.is_empty() {
                    Ok(())
                } else {
                    Err(not_initialized(format!(
                        "table `{table}` lacks the columns {} that initialize() adds (a database of eventsource-py not upgraded yet)",
                        absent.join(", ")
                    )))
                }
            }
            Need::ReadEvents | Need::WriteEvents => {
                if !snapshot.tables.contains("events") {
                    return Err(not_initialized("there is no `events` table".into()));
                }
                let absent = missing(self.read_columns);
                if !absent.is_empty() {
                    return Err(Error::SchemaMismatch {
                        table: "events".into(),
                        detail: format!(
                            "missing columns {}; this table was not made by an event store",
                            absent.join(", ")
                        ),
                    });
                }
                let absent = missing(self.write_columns);
                if need == Need::WriteEvents && !absent.is_empty() {
                    return Err(not_initialized(format!(
                        "table `events` lacks the columns {} that initialize() adds (a database of eventsource-py not upgraded yet)",
                        absent.join(", ")
                    )));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(tables: &[&str], columns: &[&str]) -> SchemaState {
        let state = SchemaState::new(
            "db".into(),
            &["global_position", "payload"],
            &["metadata"],
            &[("snapshots", "version")],
        );
        state.set(SchemaSnapshot {
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            event_columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            table_columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        });
        state
    }

    #[test]
    fn each_gap_has_its_error() {
        let empty = state(&[], &[]);
        assert!(matches!(
            empty.check(Need::ReadEvents),
            Err(Error::SchemaNotInitialized { .. })
        ));
        assert!(matches!(
            empty.check(Need::Table("snapshots")),
            Err(Error::SchemaNotInitialized { detail, .. }) if detail.contains("snapshots")
        ));
        let foreign = state(&["events"], &["id", "payload"]);
        assert!(matches!(
            foreign.check(Need::ReadEvents),
            Err(Error::SchemaMismatch { detail, .. }) if detail.contains("global_position")
        ));
        let old = state(&["events"], &["global_position", "payload"]);
        assert!(old.check(Need::ReadEvents).is_ok());
        assert!(matches!(
            old.check(Need::WriteEvents),
            Err(Error::SchemaNotInitialized { detail, .. }) if detail.contains("metadata")
        ));
        let ready = state(&["events"], &["global_position", "payload", "metadata"]);
        assert!(ready.check(Need::WriteEvents).is_ok());
        let side = state(&["snapshots"], &[]);
        assert!(matches!(
            side.check(Need::Table("snapshots")),
            Err(Error::SchemaNotInitialized { detail, .. }) if detail.contains("version")
        ));
        let side = state(&["snapshots"], &["snapshots.version"]);
        assert!(side.check(Need::Table("snapshots")).is_ok());
    }
}
