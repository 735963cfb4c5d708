//! Running commands through the repository: load, decide, save, and again on a conflict.

use uuid::Uuid;

use super::{AggregateRepository, CommandError};
use crate::aggregate::{Aggregate, AggregateRoot};
use crate::command::Decision;
use crate::error::Error;
use crate::subscription::RetryPolicy;

/// How many times [`AggregateRepository::execute`] runs a command in all when saves
/// conflict or fail transiently.
pub const DEFAULT_COMMAND_ATTEMPTS: u32 = 5;

impl<A: Aggregate> AggregateRepository<A> {
    /// Loads (or creates) the aggregate, runs `command` on its state and saves the events
    /// it decides: [`AggregateRoot::execute`] through the repository, with the conflict and
    /// transient-failure retries of [`execute_with_retry`](Self::execute_with_retry), up to
    /// [`DEFAULT_COMMAND_ATTEMPTS`] attempts. On a conflict the aggregate is reloaded and the
    /// command decides again on the new state. Returns the saved aggregate (nothing is
    /// saved when the command decides no event).
    ///
    /// ```
    /// # use eventsource::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # use std::sync::Arc;
    /// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
    /// # #[event(aggregate = "Counter")]
    /// # struct Incremented { by: u32 }
    /// # #[derive(Debug, Default)]
    /// # struct Counter { total: u32 }
    /// # #[aggregate(name = "Counter")]
    /// # impl Counter {
    /// #     #[apply]
    /// #     fn incremented(&mut self, e: &Incremented) { self.total += e.by; }
    /// # }
    /// impl Counter {
    ///     fn increment(&self, by: u32) -> Result<Incremented, String> {
    ///         if self.total + by > 10 {
    ///             return Err(format!("{} + {by} is over 10", self.total));
    ///         }
    ///         Ok(Incremented { by })
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), String> {
    /// let repo = AggregateRepository::<Counter>::new(Arc::new(InMemoryEventStore::new()));
    /// let id = uuid::Uuid::new_v4();
    /// let counter = repo.execute(id, |c| c.increment(7)).await.map_err(|e| e.to_string())?;
    /// assert_eq!((counter.version(), counter.state().total), (1, 7));
    /// let refused = repo.execute(id, |c| c.increment(7)).await;
    /// assert!(matches!(refused, Err(CommandError::Rejected(_))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`CommandError::Rejected`] with the command's refusal (nothing saved);
    /// [`CommandError::Store`] as for [`execute_with_retry`](Self::execute_with_retry).
    pub async fn execute<D, E, F>(
        &self,
        aggregate_id: Uuid,
        mut command: F,
    ) -> Result<AggregateRoot<A>, CommandError<E>>
    where
        F: FnMut(&A) -> Result<D, E> + Send,
        D: Decision<A>,
        E: Send,
    {
        self.execute_with_retry(aggregate_id, DEFAULT_COMMAND_ATTEMPTS, |root| {
            root.execute(&mut command)
        })
        .await
    }

    /// Loads (or creates) the aggregate, runs `command` on it and saves; on an optimistic
    /// lock conflict it reloads and runs the command again, up to `max_attempts` times in
    /// all. A transient failure ([`Error::is_transient`]: busy database, lost connection,
    /// pool timeout) is retried too, after a short backoff: a failed load is loaded again,
    /// and a failed save saves the same events again (same event ids, so a save whose
    /// acknowledgement was lost is not stored twice, and the command does not run twice).
    /// Returns the saved aggregate.
    ///
    /// # Errors
    /// [`CommandError::Rejected`] with the command's error (nothing saved);
    /// [`CommandError::Store`] with the last conflict or transient error when every
    /// attempt failed, or any other store error.
    pub async fn execute_with_retry<E, F>(
        &self,
        aggregate_id: Uuid,
        max_attempts: u32,
        mut command: F,
    ) -> Result<AggregateRoot<A>, CommandError<E>>
    where
        F: FnMut(&mut AggregateRoot<A>) -> Result<(), E> + Send,
        E: Send,
    {
        if max_attempts == 0 {
            return Err(CommandError::Store(Error::InvalidConfiguration {
                message: "execute_with_retry needs at least one attempt".into(),
            }));
        }
        let backoff = RetryPolicy::default();
        let mut attempt = 1;
        // An aggregate whose save failed transiently: saved again as it is.
        let mut unsaved: Option<AggregateRoot<A>> = None;
        loop {
            let mut root = match unsaved.take() {
                Some(root) => root,
                None => match self.load_or_create(aggregate_id).await {
                    Ok(mut root) => {
                        command(&mut root).map_err(CommandError::Rejected)?;
                        root
                    }
                    Err(error) if error.is_transient() && attempt < max_attempts => {
                        tracing::debug!(attempt, %aggregate_id, %error, "transient load failure; retrying");
                        tokio::time::sleep(backoff.backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    Err(error) => return Err(CommandError::Store(error)),
                },
            };
            match self.save(&mut root).await {
                Ok(_) => return Ok(root),
                Err(error) if error.is_optimistic_lock() && attempt < max_attempts => {
                    tracing::debug!(attempt, %aggregate_id, "conflict; reloading and retrying");
                    attempt += 1;
                }
                Err(error) if error.is_transient() && attempt < max_attempts => {
                    tracing::debug!(attempt, %aggregate_id, %error, "transient save failure; saving the same events again");
                    tokio::time::sleep(backoff.backoff(attempt)).await;
                    attempt += 1;
                    unsaved = Some(root);
                }
                Err(error) => return Err(CommandError::Store(error)),
            }
        }
    }
}
