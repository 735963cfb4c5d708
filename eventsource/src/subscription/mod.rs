//! [`SubscriptionManager`]: runs projections over the store's global feed — catch-up from
//! a start position, then live — with checkpoints, retries and a dead-letter queue.
//!
//! Every event a projection handles is read from the store by global position; the bus
//! is only a wake-up signal (with polling as the fallback). The switch from catch-up to
//! live is therefore no switch at all: the same loop reads "everything after my position"
//! whether it is behind or not, so an event appended during the switch, or a bus message
//! that was lost, can delay delivery but never cause a gap or a duplicate.
//!
//! Failures: a handler that returns an error or panics is retried by the
//! [`RetryPolicy`], then its event is dead-lettered and the subscription goes on; a batch
//! that fails (store unavailable) is retried with the policy's backoff while
//! [`SubscriptionState::Retrying`] and `last_error` say so; a closed store ends the
//! subscription as [`SubscriptionState::Failed`].
//!
//! | module | what is in it |
//! |---|---|
//! | `config` | [`StartFrom`], [`RetryPolicy`], [`SubscriptionConfig`] |
//! | `health` | [`SubscriptionState`], [`SubscriptionHealth`], waiting for a position |
//! | `handle` | [`Subscription`], the caller's handle |
//! | `durable` | [`DurableRunner`], [`DurableSubscription`]: exactly-once read models in their own database |
//! | `durable_worker` | one durable subscription's task: run committed batches, publish them |
//! | `handled_types` | the subscribe-time check of the handled event types |
//! | `manager` | [`SubscriptionManager`] |
//! | `worker` | one subscription's task: read, handle, dead-letter, checkpoint |
//! | `batches` | the task that reads batches ahead of the handler |

mod batches;
mod config;
mod durable;
mod durable_worker;
mod handle;
mod handled_types;
mod health;
mod manager;
mod worker;

pub use config::{RetryPolicy, StartFrom, SubscriptionConfig};
pub use durable::{DurableRunner, DurableSubscription};
pub use handle::Subscription;
pub use health::{SubscriptionHealth, SubscriptionState};
pub use manager::SubscriptionManager;
