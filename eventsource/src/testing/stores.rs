//! Throwaway stores for tests: in memory, SQLite `:memory:`, and a SQLite file in a temp
//! dir removed on drop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::store::InMemoryEventStore;

/// A directory under the system temp dir, removed (with everything in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory.
    ///
    /// # Errors
    /// When the system temp dir is not writable.
    pub fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("eventsource-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new in-memory store (the fastest fixture; no SQL).
pub fn memory_store() -> Arc<InMemoryEventStore> {
    Arc::new(InMemoryEventStore::new())
}

#[cfg(feature = "sqlite")]
pub use sqlite::{sqlite_memory_store, TempSqliteStore};

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::ops::Deref;
    use std::path::Path;
    use std::sync::Arc;

    use super::TempDir;
    use crate::error::{Error, Result};
    use crate::store::sqlite::{SqliteEventStore, SqliteStoreOptions};

    /// A SQLite store in `:memory:`, initialized: the twin of eventsource-py's
    /// `sqlite_store` pytest fixture. Its database lives as long as the store.
    ///
    /// # Errors
    /// Opening or initializing the store.
    pub async fn sqlite_memory_store() -> Result<Arc<SqliteEventStore>> {
        let store = SqliteEventStore::open(":memory:").await?;
        store.initialize().await?;
        Ok(Arc::new(store))
    }

    /// A SQLite store in a file of a fresh temp dir, initialized; the dir is removed when
    /// this is dropped. A file (unlike `:memory:`) has the store's full behaviour: WAL,
    /// several connections, other processes, [`reopen`](Self::reopen).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> eventsource::Result<()> {
    /// use eventsource::prelude::*;
    /// use eventsource::testing::TempSqliteStore;
    ///
    /// let store = TempSqliteStore::new().await?;
    /// assert_eq!(store.get_global_position().await?, 0); // derefs to SqliteEventStore
    /// let again = store.reopen().await?; // a second handle on the same file
    /// assert!(store.path().exists());
    /// # drop(again);
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct TempSqliteStore {
        store: Arc<SqliteEventStore>,
        file: std::path::PathBuf,
        // Dropped last: the store's connections close before the files go.
        _dir: TempDir,
    }

    impl TempSqliteStore {
        /// A store with the default options.
        ///
        /// # Errors
        /// The temp dir, opening or initializing the store.
        pub async fn new() -> Result<Self> {
            Self::with_options(|options| options).await
        }

        /// A store with options of your choosing (`|o| o.group_commit(true)`).
        ///
        /// # Errors
        /// The temp dir, an invalid option, opening or initializing the store.
        pub async fn with_options(
            configure: impl FnOnce(SqliteStoreOptions) -> SqliteStoreOptions,
        ) -> Result<Self> {
            let dir = TempDir::new().map_err(|e| Error::InvalidConfiguration {
                message: format!("cannot create a temp dir for a test store: {e}"),
            })?;
            let file = dir.file("events.db");
            let store = configure(SqliteEventStore::options(&file)).open().await?;
            store.initialize().await?;
            Ok(TempSqliteStore {
                store: Arc::new(store),
                file,
                _dir: dir,
            })
        }

        /// The store, to share (`Arc<dyn EventStore>`, checkpoints, dead letters, ...).
        pub fn store(&self) -> &Arc<SqliteEventStore> {
            &self.store
        }

        /// The database file.
        pub fn path(&self) -> &Path {
            &self.file
        }

        /// Another store on the same file, as a second process would open it.
        ///
        /// # Errors
        /// Opening the store.
        pub async fn reopen(&self) -> Result<SqliteEventStore> {
            SqliteEventStore::open(&self.file).await
        }
    }

    impl Deref for TempSqliteStore {
        type Target = SqliteEventStore;

        fn deref(&self) -> &SqliteEventStore {
            &self.store
        }
    }
}
