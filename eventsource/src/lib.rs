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

#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets the derives' absolute `::eventsource::...` paths resolve inside this crate too.
#[allow(unused_extern_crates)]
extern crate self as eventsource;

#[doc(hidden)]
pub mod __private;
pub mod aggregate;
pub mod bus;
mod canonical;
pub mod checkpoint;
pub mod command;
pub mod dlq;
mod envelope;
mod error;
mod event;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "sqlite", feature = "postgres"))))]
pub mod migrate;
pub mod outbox;
mod panics;
pub mod prelude;
pub mod projection;
pub mod registry;
pub mod repository;
pub mod schema;
pub mod snapshot;
pub mod store;
mod stored;
pub mod subscription;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod transform;

pub use aggregate::{Aggregate, AggregateRoot, Apply};
/// Re-exported so that implementing [`EventStore`], [`EventPublisher`] or
/// [`SnapshotStore`] needs no extra dependency: `#[eventsource::async_trait]`.
pub use async_trait::async_trait;
pub use bus::{BusFilter, BusRecvError, BusSubscription, EventBus, InMemoryEventBus};
pub use checkpoint::{
    lag_metrics, Checkpoint, CheckpointStore, InMemoryCheckpointStore, LagMetrics,
};
pub use command::Decision;
pub use dlq::{
    replay_dead_letter, DeadLetter, DeadLetterStatistics, DeadLetterStatus, DeadLetterStore,
    FailedEvent, InMemoryDeadLetterStore,
};
pub use envelope::{EventEnvelope, NewEvent};
pub use error::{BoxError, DatabaseErrorKind, Error, Result};
pub use event::{AnyEvent, DomainEvent, EventPayload, RawEvent};
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "sqlite", feature = "postgres"))))]
pub use migrate::{
    migrate_sqlite_to_postgres, MigrationOptions, MigrationProgress, MigrationReport,
};
pub use outbox::{
    BusOutboxPublisher, OutboxEntry, OutboxPublisher, OutboxRelay, OutboxRelayHandle,
    OutboxRetention, OutboxStats, OutboxStatus, OutboxStore, PublishFailure, RelayRound,
};
pub use projection::{
    BatchDeadLetter, BatchReport, EventContext, Projection, RebuildProgress,
    TransactionalProjection,
};
pub use registry::{EventRegistration, EventRegistry};
pub use repository::{AggregateRepository, CommandError, EventPublisher};
pub use snapshot::{InMemorySnapshotStore, Snapshot, SnapshotStore, SnapshotStrategy};
/// The sqlx this crate is built with, so that read-model handlers writing SQL (an
/// exactly-once [`SqliteProjection`], your own queries) need no second, version-matched
/// dependency: `eventsource::sqlx::query(...)`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sqlx;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::postgres::{
    PostgresEventBus, PostgresEventStore, PostgresProjection, PostgresProjectionHandle,
    PostgresProjectionRunner, PostgresStoreOptions,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::sqlite::{
    PayloadFormat, SqliteEventStore, SqliteProjection, SqliteProjectionHandle,
    SqliteProjectionRunner, SqliteStoreOptions,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use store::ProjectionRunnerHandle;
pub use store::{
    AppendResult, EventStore, EventTypeCount, ExpectedVersion, GetEventsOptions,
    InMemoryEventStore, ReadDirection, ReadOptions, ReplayedEvent, StoredEventStream, StreamId,
};
pub use stored::{EventStream, StoredEvent};
pub use subscription::{
    DurableRunner, DurableSubscription, RetryPolicy, StartFrom, Subscription, SubscriptionConfig,
    SubscriptionHealth, SubscriptionManager, SubscriptionState,
};
pub use transform::{copy_transform, TransformOptions, TransformProgress, TransformReport};

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
/// | `previous` | type | none | the previous version's type: its stored rows read back as this type through `From` (see the README's "Changing events") |
/// | `upcast` | `"from"` or `"try_from"` | `"from"` | the hop from `previous`: `From<Previous>`, or `TryFrom<Previous>` whose error makes the row a `CorruptEvent` |
/// | `renamed_from` | string | none | the name `previous` is stored under, when the event was renamed |
/// | `previous_json` | function path | none | for a previous version (N - 1) without a Rust type: `fn(serde_json::Value) -> Result<serde_json::Value, E>` from its JSON to this version's |
/// | `crate` | string path | `::eventsource` | where `eventsource` is, when re-exported |
///
/// The type must be a struct or enum without generic parameters (the registry needs one
/// concrete type per name) that implements `Serialize`, `Deserialize` and `Debug`, and
/// whose payload is a JSON object (a unit or tuple struct does not compile). An enum
/// without a `name` is stored one event type per variant (`#[event(name = "...")]` on a
/// variant names it; the default is the variant's name), with `aggregate` and `version`
/// shared; with a `name`, the enum is stored as one type. See the README's "Enums of
/// events".
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use eventsource_macros::DomainEvent;

/// Implements [`Aggregate`] (and [`Apply<E>`] for each event type) for the state type of
/// an inherent `impl` block.
///
/// ```
/// use eventsource::{aggregate, AggregateRoot, DomainEvent};
/// use serde::{Deserialize, Serialize};
/// use uuid::Uuid;
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Account")]
/// struct MoneyDeposited { amount: f64 }
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct AccountState { account_id: Uuid, balance: f64 }
///
/// #[aggregate(name = "Account", snapshot_version = 2)]
/// impl AccountState {
///     /// The initial state, from the aggregate id (without `#[init]`: `Default`).
///     #[init]
///     fn new(account_id: Uuid) -> Self {
///         AccountState { account_id, balance: 0.0 }
///     }
///
///     #[apply]
///     fn deposited(&mut self, event: &MoneyDeposited) {
///         self.balance += event.amount;
///     }
/// }
///
/// let id = Uuid::new_v4();
/// let mut account = AggregateRoot::<AccountState>::new(id);
/// account.apply_event(MoneyDeposited { amount: 5.0 });
/// assert_eq!(account.state().account_id, id);
/// assert_eq!(account.state().balance, 5.0);
/// ```
///
/// | argument | type | default | meaning |
/// |---|---|---|---|
/// | `name` | string | required | the aggregate type stored with every event |
/// | `snapshot_version` | integer ≥ 1 | `1` | the state's schema version in snapshots; bump it when the state's shape changes |
/// | `crate` | string path | `::eventsource` | where `eventsource` is, when re-exported |
///
/// Each `#[apply]` method takes `&mut self` and one event type by shared reference and
/// returns nothing; no two may take the same type. An optional `#[init]` method
/// `fn(Uuid) -> Self` builds the initial state, otherwise the state type's `Default` does.
/// [`AggregateRoot::apply_event`] accepts exactly the event types of the `#[apply]`
/// methods; loading fails with [`Error::UnhandledEvent`] on any other stored type.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use eventsource_macros::aggregate;

/// Implements [`Projection`] for a read model's inherent `impl` block.
///
/// Each `#[handles]` method is `async`, takes `&mut self`, one event type by shared
/// reference and optionally `&EventContext<'_>` (envelope and positions), and returns
/// `()` or `Result<(), E>` with `E: Into<BoxError>` (a failure is retried, then
/// dead-lettered). An optional `#[reset] async fn(&mut self)` clears the read model for
/// rebuilds. Events of other types are skipped without being looked at, and a
/// subscription reads only the handled types from the store.
///
/// A handler may also take the transaction's connection, `conn: &mut SqliteConnection`
/// or `&mut PgConnection` (after the event, before or after the context): the read model
/// is then written in the store's own transaction, and the macro implements
/// [`TransactionalProjection<C>`](TransactionalProjection) instead of [`Projection`],
/// run exactly once by `SqliteProjectionRunner` or `PostgresProjectionRunner`. Every
/// handler, and the `#[reset]` (`async fn(&mut self, conn: &mut C)`), then takes the same
/// connection type.
///
/// | argument | type | default | meaning |
/// |---|---|---|---|
/// | `name` | string | the type's name | what [`Projection::name`] returns |
/// | `durable` | `true` / `false` | `false` | the handlers keep the read model outside the process (a database), so a new process may resume it from its checkpoint ([`Projection::is_durable`]); an in-memory read model is rebuilt from the beginning instead |
/// | `crate` | string path | `::eventsource` | where `eventsource` is, when re-exported |
///
/// A handler that panics is treated like one that returns an error: retried, then
/// dead-lettered with the panic's message.
///
/// See [`Projection`] for an example.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use eventsource_macros::projection;
