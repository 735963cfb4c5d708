#![doc = include_str!("../README.md")]

/// The throwaway PostgreSQL server of the tests and the PostgreSQL examples' own tests:
/// the test kit's. Not part of any API.
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub use eventsource::testing::postgres as postgres_harness;

/// Helpers shared by the examples' own tests. Not part of any API.
#[doc(hidden)]
pub mod example_support {
    use std::path::{Path, PathBuf};

    /// A directory under the system temp dir, removed on drop (the test kit's, which
    /// this panics on instead of returning an error).
    #[derive(Debug)]
    pub struct TempDir(eventsource::testing::TempDir);

    impl TempDir {
        /// A fresh, empty directory.
        ///
        /// # Panics
        /// When the system temp dir is not writable (tests only).
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            TempDir(eventsource::testing::TempDir::new().expect("create temp dir"))
        }

        /// The directory.
        pub fn path(&self) -> &Path {
            self.0.path()
        }

        /// A path inside it.
        pub fn file(&self, name: &str) -> PathBuf {
            self.0.file(name)
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
