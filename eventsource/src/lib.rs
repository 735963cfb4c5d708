//! Event sourcing for Rust.
//!
//! Annotate plain domain types with `#[derive(DomainEvent)]`; append them to an
//! [`EventStore`] with optimistic concurrency; read them back, decoded to their Rust
//! types through the compile-time [`EventRegistry`], with no manual registration.
//!
//! Stores: [`InMemoryEventStore`] for tests, `SqliteEventStore` (feature `sqlite`, on by
//! default) as the embedded default.
//!
//! ```
//! use eventsource::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use uuid::Uuid;
//!
//! #[derive(Debug, Serialize, Deserialize, DomainEvent)]
//! #[event(aggregate = "Task")]
//! struct TaskCreated {
//!     title: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> eventsource::Result<()> {
//! let store = InMemoryEventStore::new();
//! let task_id = Uuid::new_v4();
//! let created = NewEvent::new(TaskCreated { title: "Learn event stores".into() });
//! let result = store
//!     .append_events(task_id, "Task", vec![created], ExpectedVersion::NoStream)
//!     .await?;
//! assert_eq!(result.new_version, 1);
//!
//! let stream = store.get_events(task_id, "Task", GetEventsOptions::default()).await?;
//! let event: &TaskCreated = stream.events[0].event()?;
//! assert_eq!(event.title, "Learn event stores");
//! # Ok(())
//! # }
//! ```

// Lets the derives' absolute `::eventsource::...` paths resolve inside this crate too.
#[allow(unused_extern_crates)]
extern crate self as eventsource;

#[doc(hidden)]
pub mod __private;
mod envelope;
mod error;
mod event;
pub mod prelude;
pub mod registry;
pub mod store;
mod stored;

pub use envelope::{EventEnvelope, NewEvent};
pub use error::{BoxError, Error, Result};
pub use event::{AnyEvent, DomainEvent, EventPayload, RawEvent};
pub use registry::{EventRegistration, EventRegistry};
#[cfg(feature = "sqlite")]
pub use store::sqlite::{SqliteEventStore, SqliteStoreOptions};
pub use store::{
    AppendResult, EventStore, EventTypeCount, ExpectedVersion, GetEventsOptions,
    InMemoryEventStore, ReadDirection, ReadOptions, StoredEventStream, StreamId,
};
pub use stored::{EventStream, StoredEvent};

/// Derives [`DomainEvent`] and registers the type in the [`EventRegistry`].
///
/// ```
/// use eventsource::DomainEvent;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(name = "account.deposited", aggregate = "Account", version = 2)]
/// struct MoneyDeposited {
///     amount: f64,
///     #[serde(default, skip_serializing_if = "Option::is_none")]
///     note: Option<String>,
/// }
///
/// assert_eq!(MoneyDeposited::EVENT_TYPE, "account.deposited");
/// assert!(eventsource::EventRegistry::global().is_registered("account.deposited", 2));
/// ```
///
/// | key | type | default | meaning |
/// |---|---|---|---|
/// | `name` | string | the type's name | the stored event type name; keep it stable |
/// | `aggregate` | string | none | the aggregate type the event belongs to |
/// | `version` | integer ≥ 1 | `1` | the payload's schema version |
/// | `crate` | string path | `::eventsource` | where `eventsource` is, when re-exported |
///
/// The type must be a struct or enum without generic parameters (the registry needs one
/// concrete type per name) that implements `Serialize`, `Deserialize` and `Debug`.
#[cfg(feature = "macros")]
pub use eventsource_macros::DomainEvent;
