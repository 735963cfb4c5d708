#![doc = include_str!("../README.md")]

/// The throwaway PostgreSQL server of the tests and the PostgreSQL examples' own tests.
/// Not part of any API.
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub mod postgres_harness;

/// Helpers shared by the examples' own tests. Not part of any API.
#[doc(hidden)]
pub mod example_support {
    use std::path::{Path, PathBuf};

    /// A directory under the system temp dir, removed on drop.
    #[derive(Debug)]
    pub struct TempDir(PathBuf);

    impl TempDir {
        /// A fresh, empty directory.
        ///
        /// # Panics
        /// When the system temp dir is not writable (tests only).
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("eventsource-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
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

    /// Checks the event types of the example crate `crate_name` against its lock,
    /// `examples/locks/<example>.lock` (`EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an
    /// intended change).
    pub fn assert_example_lock(example: &str, crate_name: &str) {
        let lock = format!(
            "{}/examples/locks/{example}.lock",
            env!("CARGO_MANIFEST_DIR")
        );
        eventsource::schema::assert_lock_matches_in(lock, &format!("{crate_name}::"));
    }

    /// Replaces every hyphenated UUID in `text` with `[UUID]`, as the seeds' expected
    /// outputs do.
    pub fn mask_uuids(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while !rest.is_empty() {
            if rest.len() >= 36
                && rest.is_char_boundary(36)
                && uuid::Uuid::try_parse(&rest[..36]).is_ok()
            {
                out.push_str("[UUID]");
                rest = &rest[36..];
            } else {
                let c = rest.chars().next().unwrap_or_default();
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }
}
