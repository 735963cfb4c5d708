#![doc = include_str!("../README.md")]

/// The throwaway PostgreSQL server of the tests and the PostgreSQL examples' own tests.
/// Not part of any API.
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub mod postgres_harness;

/// Helpers shared by the examples' own tests. Not part of any API.
#[doc(hidden)]
pub mod example_support {
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
