//! The test PostgreSQL server: see `eventsource_tests::postgres_harness`.
pub use eventsource_tests::postgres_harness::*;
