//! Commands as methods of the state type: a command looks at the state and decides which
//! events happen ([`Decision`]); [`AggregateRoot::execute`] and
//! [`AggregateRepository::execute`](crate::AggregateRepository::execute) apply them.
//!
//! ```
//! use eventsource::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, DomainEvent)]
//! #[event(aggregate = "Book")]
//! struct BookLent { member: String }
//!
//! #[derive(Debug, Default)]
//! struct Book { lent_to: Option<String> }
//!
//! #[aggregate(name = "Book")]
//! impl Book {
//!     #[apply]
//!     fn lent(&mut self, e: &BookLent) { self.lent_to = Some(e.member.clone()); }
//! }
//!
//! impl Book {
//!     /// A command: reads the state, returns the event it decides on, or why not.
//!     fn lend(&self, member: &str) -> Result<BookLent, String> {
//!         match &self.lent_to {
//!             Some(other) => Err(format!("already lent to {other}")),
//!             None => Ok(BookLent { member: member.into() }),
//!         }
//!     }
//! }
//!
//! let mut book = AggregateRoot::<Book>::new(uuid::Uuid::new_v4());
//! book.execute(|b| b.lend("ada")).unwrap();
//! assert_eq!(book.version(), 1);
//! assert_eq!(book.execute(|b| b.lend("bob")), Err("already lent to ada".to_owned()));
//! assert_eq!(book.version(), 1); // a refused command records nothing
//! ```

use crate::aggregate::{Aggregate, AggregateRoot, Apply};
use crate::envelope::NewEvent;
use crate::event::DomainEvent;

/// What a command decided: the events to record on an aggregate of type `A`, in order.
///
/// Implemented for one event `E` (when `A` has an `#[apply]` method for it), for
/// `Vec<E>`, `Option<E>` and `[E; N]` of one event type, for tuples of up to six events of
/// different types, and for `()` (nothing happens). A command deciding between event
/// types of one aggregate can return a tuple of `Option`s, or a `Vec` of an enum of
/// events stored per variant.
pub trait Decision<A: Aggregate> {
    /// Applies the events to `root`'s state and records them as uncommitted, in order.
    fn record(self, root: &mut AggregateRoot<A>);

    /// The events as [`NewEvent`]s, without applying them (what a test compares).
    fn into_new_events(self) -> Vec<NewEvent>;
}

impl<A: Apply<E>, E: DomainEvent> Decision<A> for E {
    fn record(self, root: &mut AggregateRoot<A>) {
        root.apply_event(self);
    }

    fn into_new_events(self) -> Vec<NewEvent> {
        vec![NewEvent::new(self)]
    }
}

impl<A: Aggregate> Decision<A> for () {
    fn record(self, _root: &mut AggregateRoot<A>) {}

    fn into_new_events(self) -> Vec<NewEvent> {
        Vec::new()
    }
}

impl<A: Apply<E>, E: DomainEvent> Decision<A> for Option<E> {
    fn record(self, root: &mut AggregateRoot<A>) {
        if let Some(event) = self {
            root.apply_event(event);
        }
    }

    fn into_new_events(self) -> Vec<NewEvent> {
        self.into_iter().map(NewEvent::new).collect()
    }
}

impl<A: Apply<E>, E: DomainEvent> Decision<A> for Vec<E> {
    fn record(self, root: &mut AggregateRoot<A>) {
        for event in self {
            root.apply_event(event);
        }
    }

    fn into_new_events(self) -> Vec<NewEvent> {
        self.into_iter().map(NewEvent::new).collect()
    }
}

impl<A: Apply<E>, E: DomainEvent, const N: usize> Decision<A> for [E; N] {
    fn record(self, root: &mut AggregateRoot<A>) {
        for event in self {
            root.apply_event(event);
        }
    }

    fn into_new_events(self) -> Vec<NewEvent> {
        self.into_iter().map(NewEvent::new).collect()
    }
}

macro_rules! tuple_decision {
    ($($name:ident),+) => {
        impl<A: Aggregate, $($name: Decision<A>),+> Decision<A> for ($($name,)+) {
            #[allow(non_snake_case)]
            fn record(self, root: &mut AggregateRoot<A>) {
                let ($($name,)+) = self;
                $($name.record(root);)+
            }

            #[allow(non_snake_case)]
            fn into_new_events(self) -> Vec<NewEvent> {
                let ($($name,)+) = self;
                let mut events = Vec::new();
                $(events.extend($name.into_new_events());)+
                events
            }
        }
    };
}

tuple_decision!(D1);
tuple_decision!(D1, D2);
tuple_decision!(D1, D2, D3);
tuple_decision!(D1, D2, D3, D4);
tuple_decision!(D1, D2, D3, D4, D5);
tuple_decision!(D1, D2, D3, D4, D5, D6);

impl<A: Aggregate> AggregateRoot<A> {
    /// Runs `command` on the state and records the events it decides (applied to the
    /// state, uncommitted until saved). A command that refuses records nothing.
    ///
    /// The command is a method of the state type returning `Result<D, YourError>`, where
    /// the [`Decision`] `D` is one event, an `Option`, a `Vec`, an array or a tuple of them
    /// (a command that cannot refuse returns `Result<D, std::convert::Infallible>`).
    ///
    /// # Errors
    /// The command's refusal.
    pub fn execute<D: Decision<A>, E>(
        &mut self,
        command: impl FnOnce(&A) -> Result<D, E>,
    ) -> Result<(), E> {
        let decision = command(self.state())?;
        decision.record(self);
        Ok(())
    }
}
