//! The test kit (feature `testing`; add it to your `[dev-dependencies]`):
//!
//! - [`AggregateTest`]: given past events, when a command runs, then these new events
//!   (compared by type, version and JSON payload, with a readable diff) or this error. No
//!   store is needed.
//! - [`ProjectionTest`] and [`TestEvents`]: events with envelopes and positions built for
//!   you, handled by a read model, then checks on it.
//! - Store fixtures: [`memory_store`], [`sqlite_memory_store`], [`TempSqliteStore`] (a
//!   SQLite file removed on drop), [`FullStack`] (store, bus, repository and a started
//!   [`SubscriptionManager`](crate::SubscriptionManager) with your projection), and
//!   [`postgres`]: a throwaway PostgreSQL cluster for tests, started where the binaries
//!   are installed and skipped loudly where they are not.
//! - `conformance` (feature `conformance`): the event store conformance suite every store
//!   of this crate passes, stamped into your tests for your own `EventStore` with one
//!   `eventsource::conformance_suite!` call.
//!
//! These are the Rust twins of the pytest fixtures of eventsource-py's testing guide
//! (`sqlite_store`, `order_repo`, `full_stack`); the README's "Testing" section shows
//! each. Failures are panics with a message, as `assert!` is.

mod aggregate;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
#[cfg(all(feature = "postgres", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "postgres", unix))))]
pub mod postgres;
mod projection;
pub mod python;
#[cfg(feature = "sqlite")]
mod stack;
mod stores;

pub use aggregate::{AggregateOutcome, AggregateTest};
pub use projection::{HandlerFailure, ProjectionTest, TestEvents, UNDECLARED_AGGREGATE_TYPE};
#[cfg(feature = "sqlite")]
pub use stack::{FullStack, SETTLE_TIMEOUT};
pub use stores::{memory_store, TempDir};
#[cfg(feature = "sqlite")]
pub use stores::{sqlite_memory_store, TempSqliteStore};

use crate::envelope::NewEvent;
use crate::registry::EventRegistry;

/// `event` as a store would give it back: its payload written as JSON and decoded through
/// the registry (upcasters included), so that a type whose `Serialize` and `Deserialize`
/// disagree fails in the test.
///
/// # Panics
/// When the payload does not serialize or does not decode.
#[track_caller]
fn round_trip(mut event: NewEvent, position: u64) -> NewEvent {
    let text = match event.payload.to_json() {
        Ok(text) => text,
        Err(error) => panic!(
            "a given `{}` does not serialize: {error}",
            event.event_type()
        ),
    };
    let decoded = EventRegistry::global().decode_str(
        position,
        event.event_type(),
        event.event_version(),
        &text,
    );
    match decoded {
        Ok(payload) => event.payload = payload,
        Err(error) => panic!("a given event would not read back from a store: {error}"),
    }
    event
}
