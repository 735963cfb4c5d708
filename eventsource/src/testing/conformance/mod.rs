//! The event store conformance suite: what every [`EventStore`] of this crate is tested
//! against, for yours (a backend of your own, or a wrapper around one of ours).
//!
//! [`conformance_suite!`](crate::conformance_suite) stamps one `#[tokio::test]` per
//! behaviour into the module it is called in, each with a store from your fixture: an
//! `async fn` returning a new, empty store every time it is called (anything
//! [`ConformanceFixture`]: an `Arc` of the store, `Option` of one to skip where it cannot
//! be had, a [`TempSqliteStore`](super::TempSqliteStore)):
//!
//! ```no_run
//! use std::sync::Arc;
//! use eventsource::InMemoryEventStore;
//!
//! async fn fresh_store() -> Arc<InMemoryEventStore> {
//!     Arc::new(InMemoryEventStore::new())
//! }
//!
//! eventsource::conformance_suite!(fresh_store);
//! ```
//!
//! The tests need `tokio` (features `macros`, `rt-multi-thread`) in your
//! `[dev-dependencies]`. Their events are the kit's own types ([`TaskCreated`] and the
//! others here), registered under names in `eventsource.conformance.*` so that they
//! cannot collide with yours; `events.lock` never lists them.
//!
//! Each check is a test assertion: a store error, or a result other than the expected
//! one, panics with it (the test fails), as `assert!` and `unwrap` do in any test.
//!
//! What is checked: appends and read back with every envelope field, batch versions and
//! positions, the expected-version rules, idempotent event ids (also racing, also into two
//! streams), a rejected batch leaving nothing, stale appends failing alone among
//! concurrent ones, stream and global reads with every option and filter (also across
//! many pages, and one type across pages in order), metadata queries, racing appends with
//! one winner, unique positions under concurrent writers, unknown types kept as raw JSON,
//! raw events of registered types decoding, replay agreeing with `get_events` (whole and
//! by pages), stream ids, and events going only to their declared aggregate type.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::NewEvent;
use crate::store::{EventStore, StoredEventStream};
use crate::stored::StoredEvent;

#[doc(hidden)]
pub mod basics;
#[doc(hidden)]
pub mod reads;
#[doc(hidden)]
pub mod writers;

#[doc(hidden)]
pub use self::basics::*;
#[doc(hidden)]
pub use self::reads::*;
#[doc(hidden)]
pub use self::writers::*;

/// Stamps the event store conformance suite into the calling module: one
/// `#[tokio::test]` per behaviour, each on a fresh store from `$fixture().await` (see
/// [`testing::conformance`](crate::testing::conformance)).
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:path) => {
        $crate::conformance_suite!(@tests $fixture;
            append_and_read_back, batch_versions_and_positions, expected_version_rules,
            idempotent_event_ids, rejected_batch_leaves_nothing, read_stream_options,
            read_all_order_and_limits, read_all_filters, get_events_filters,
            get_events_by_type_filters, metadata_queries, racing_appends_one_winner,
            concurrent_writers_get_unique_positions, unknown_event_types_are_kept,
            replay_stream_agrees_with_get_events,
            raw_events_of_registered_types_decode, reads_span_many_pages, stream_ids_parse,
            events_belong_to_their_declared_aggregate, stale_appends_fail_alone,
            same_event_at_once_is_stored_once, one_event_id_racing_into_two_streams,
            one_type_reads_span_pages_in_order, replay_pages_agree_with_replay_stream);
    };
    (@tests $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture().await;
                let Some(store) = $crate::testing::conformance::ConformanceFixture::store(&fixture) else {
                    return;
                };
                $crate::testing::conformance::$name(store).await;
                drop(fixture);
            }
        )*
    };
}

/// What a conformance fixture returns: something holding a fresh store, alive as long as
/// the test (a temp dir, a connection) and giving it out as a trait object; `None` skips
/// the test (say why on stderr where you return it).
pub trait ConformanceFixture {
    /// The store under test, or `None` to skip.
    fn store(&self) -> Option<Arc<dyn EventStore>>;
}

impl<S: EventStore + 'static> ConformanceFixture for Arc<S> {
    fn store(&self) -> Option<Arc<dyn EventStore>> {
        Some(self.clone())
    }
}

impl ConformanceFixture for Arc<dyn EventStore> {
    fn store(&self) -> Option<Arc<dyn EventStore>> {
        Some(self.clone())
    }
}

impl<F: ConformanceFixture> ConformanceFixture for Option<F> {
    fn store(&self) -> Option<Arc<dyn EventStore>> {
        self.as_ref().and_then(F::store)
    }
}

#[cfg(feature = "sqlite")]
impl ConformanceFixture for super::TempSqliteStore {
    fn store(&self) -> Option<Arc<dyn EventStore>> {
        Some(self.store().clone())
    }
}

/// The suite's task event, declared for aggregate type `Task`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, crate::DomainEvent)]
#[event(name = "eventsource.conformance.TaskCreated", aggregate = "Task")]
pub struct TaskCreated {
    /// The title.
    pub title: String,
}

/// The suite's second task event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, crate::DomainEvent)]
#[event(name = "eventsource.conformance.TaskCompleted", aggregate = "Task")]
pub struct TaskCompleted {}

/// The suite's third task event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, crate::DomainEvent)]
#[event(name = "eventsource.conformance.TaskReassigned", aggregate = "Task")]
pub struct TaskReassigned {
    /// Who has it now.
    pub new_assignee: Uuid,
}

/// An event declared for no aggregate type: it may be appended to any stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, crate::DomainEvent)]
#[event(name = "eventsource.conformance.Noted")]
pub struct Noted {
    /// The note.
    pub text: String,
}

/// An event whose `Serialize` always fails: for atomicity checks.
#[derive(Debug, Clone, PartialEq, Deserialize, crate::DomainEvent)]
#[event(name = "eventsource.conformance.Unserializable")]
pub struct Unserializable {}

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this event refuses to serialize"))
    }
}

/// A new [`TaskCreated`].
pub fn created(title: &str) -> NewEvent {
    NewEvent::new(TaskCreated {
        title: title.into(),
    })
}

/// A new [`Noted`].
pub fn noted(text: &str) -> NewEvent {
    NewEvent::new(Noted { text: text.into() })
}

/// Drains a stream of stored events.
///
/// # Panics
/// On an error item.
pub async fn collect(stream: StoredEventStream<'_>) -> Vec<StoredEvent> {
    use futures::TryStreamExt;
    stream.try_collect().await.expect("read stream")
}
