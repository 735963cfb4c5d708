//! Given / when / then for aggregates: past events, a command, the events it decides (or
//! its refusal), with no store.

use std::fmt::{self, Debug, Write as _};
use std::marker::PhantomData;

use uuid::Uuid;

use super::round_trip;
use crate::aggregate::{Aggregate, AggregateRoot};
use crate::command::Decision;
use crate::envelope::NewEvent;

/// An aggregate test: the events it has, then a command ([`when`](Self::when)), then what
/// the command must decide ([`AggregateOutcome::then_expect`]) or refuse
/// ([`AggregateOutcome::then_error`]).
///
/// The given events go through the same JSON round trip as events stored and read back
/// (a field `Serialize` writes and `Deserialize` cannot read fails the test here, not in
/// production), then are replayed onto the initial state; the command's events are
/// compared with the expected ones by type, version and JSON payload.
///
/// ```
/// use eventsource::prelude::*;
/// use eventsource::testing::AggregateTest;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Book")]
/// struct BookAdded { title: String }
///
/// #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// #[event(aggregate = "Book")]
/// struct BookLent { member: String }
///
/// #[derive(Debug, Default)]
/// struct Book { added: bool, lent_to: Option<String> }
///
/// #[aggregate(name = "Book")]
/// impl Book {
///     #[apply]
///     fn added(&mut self, _: &BookAdded) { self.added = true; }
///     #[apply]
///     fn lent(&mut self, e: &BookLent) { self.lent_to = Some(e.member.clone()); }
/// }
///
/// #[derive(Debug, PartialEq)]
/// enum LoanError { NoSuchBook, AlreadyLent }
///
/// impl Book {
///     fn lend(&self, member: &str) -> Result<BookLent, LoanError> {
///         if !self.added { return Err(LoanError::NoSuchBook); }
///         if self.lent_to.is_some() { return Err(LoanError::AlreadyLent); }
///         Ok(BookLent { member: member.into() })
///     }
/// }
///
/// AggregateTest::<Book>::given(BookAdded { title: "Dune".into() })
///     .when(|book| book.lend("ada"))
///     .then_expect(BookLent { member: "ada".into() });
///
/// AggregateTest::<Book>::given((BookAdded { title: "Dune".into() }, BookLent { member: "ada".into() }))
///     .when(|book| book.lend("bob"))
///     .then_error(LoanError::AlreadyLent);
///
/// AggregateTest::<Book>::given_no_events()
///     .when(|book| book.lend("ada"))
///     .then_error(LoanError::NoSuchBook);
/// ```
pub struct AggregateTest<A: Aggregate> {
    root: AggregateRoot<A>,
}

impl<A: Aggregate + Debug> Debug for AggregateTest<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateTest")
            .field("root", &self.root)
            .finish()
    }
}

impl<A: Aggregate> AggregateTest<A> {
    /// An aggregate (with a fresh id) that has `events`: one event, a tuple, a `Vec`, ...
    ///
    /// # Panics
    /// When an event does not survive the JSON round trip a store would give it.
    #[track_caller]
    pub fn given(events: impl Decision<A>) -> Self {
        Self::given_no_events().and(events)
    }

    /// A new aggregate, with no events.
    pub fn given_no_events() -> Self {
        Self::for_aggregate(Uuid::new_v4())
    }

    /// A new aggregate with this id (for states that keep their id from `#[init]`).
    pub fn for_aggregate(aggregate_id: Uuid) -> Self {
        AggregateTest {
            root: AggregateRoot::new(aggregate_id),
        }
    }

    /// More past events, after those given so far.
    ///
    /// # Panics
    /// When an event does not survive the JSON round trip a store would give it.
    #[track_caller]
    pub fn and(mut self, events: impl Decision<A>) -> Self {
        for event in events.into_new_events() {
            let event = round_trip(event, self.root.get_next_version());
            if let Err(error) = self.root.apply_new_event(event) {
                panic!("a given event cannot be applied: {error}");
            }
        }
        // Given events are history: the command's events are what is uncommitted.
        drop(self.root.take_uncommitted());
        self
    }

    /// The aggregate as given, before any command.
    pub fn root(&self) -> &AggregateRoot<A> {
        &self.root
    }

    /// Runs a command on the state: a method returning `Result<Decision, E>`, as
    /// [`AggregateRoot::execute`] takes.
    pub fn when<D: Decision<A>, E>(
        self,
        command: impl FnOnce(&A) -> Result<D, E>,
    ) -> AggregateOutcome<A, E> {
        self.when_root(|root| root.execute(command))
    }

    /// Runs a command written against the root (one that calls
    /// [`AggregateRoot::apply_event`] itself).
    pub fn when_root<E>(
        mut self,
        command: impl FnOnce(&mut AggregateRoot<A>) -> Result<(), E>,
    ) -> AggregateOutcome<A, E> {
        let result = command(&mut self.root);
        AggregateOutcome {
            root: self.root,
            result,
            _error: PhantomData,
        }
    }
}

/// What a command did in an [`AggregateTest`]: check it with one of the `then_` methods.
#[must_use = "an outcome checks nothing until a then_ method is called"]
pub struct AggregateOutcome<A: Aggregate, E> {
    root: AggregateRoot<A>,
    result: Result<(), E>,
    _error: PhantomData<fn() -> E>,
}

impl<A: Aggregate + Debug, E: Debug> Debug for AggregateOutcome<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateOutcome")
            .field("root", &self.root)
            .field("result", &self.result)
            .finish()
    }
}

impl<A: Aggregate, E: Debug> AggregateOutcome<A, E> {
    /// Checks that the command succeeded and recorded exactly `expected` (type, version
    /// and JSON payload of each, in order); returns the aggregate for checks on its state.
    ///
    /// # Panics
    /// When the command refused, or recorded other events: the message lists both sides
    /// and marks the first difference.
    #[track_caller]
    pub fn then_expect(self, expected: impl Decision<A>) -> AggregateRoot<A> {
        if let Err(error) = &self.result {
            panic!("the command refused with {error:?}; expected it to record events");
        }
        let expected: Vec<Described> = expected
            .into_new_events()
            .iter()
            .map(Described::of)
            .collect();
        let recorded: Vec<Described> = self
            .root
            .uncommitted_events()
            .iter()
            .map(Described::of)
            .collect();
        if expected != recorded {
            panic!("{}", diff(&expected, &recorded));
        }
        self.root
    }

    /// Checks that the command succeeded and recorded no event.
    ///
    /// # Panics
    /// As [`then_expect`](Self::then_expect).
    #[track_caller]
    pub fn then_expect_no_events(self) -> AggregateRoot<A> {
        self.then_expect(())
    }

    /// Checks that the command refused with `expected` and recorded nothing.
    ///
    /// # Panics
    /// When it succeeded, refused with another error, or recorded events anyway.
    #[track_caller]
    pub fn then_error(self, expected: E)
    where
        E: PartialEq,
    {
        let error = self.then_refused();
        assert!(
            error == expected,
            "the command refused with {error:?}; expected {expected:?}"
        );
    }

    /// Checks that the command refused and recorded nothing; returns its error.
    ///
    /// # Panics
    /// When it succeeded, or recorded events before refusing.
    #[track_caller]
    pub fn then_refused(self) -> E {
        let recorded: Vec<Described> = self
            .root
            .uncommitted_events()
            .iter()
            .map(Described::of)
            .collect();
        match self.result {
            Ok(()) => panic!(
                "the command succeeded; expected it to refuse\n{}",
                list("recorded", &recorded)
            ),
            Err(_) if !recorded.is_empty() => panic!(
                "the command refused but recorded events first\n{}",
                list("recorded", &recorded)
            ),
            Err(error) => error,
        }
    }

    /// The aggregate and the command's result, for checks of your own.
    pub fn into_parts(self) -> (AggregateRoot<A>, Result<(), E>) {
        (self.root, self.result)
    }
}

/// An event as a test compares it: type, version and JSON payload.
#[derive(Debug, PartialEq)]
struct Described {
    event_type: String,
    event_version: u32,
    payload: serde_json::Value,
}

impl Described {
    fn of(event: &NewEvent) -> Self {
        Described {
            event_type: event.event_type().to_owned(),
            event_version: event.event_version(),
            payload: event.payload().to_json_value().unwrap_or_else(|e| {
                serde_json::Value::String(format!("<does not serialize: {e}>"))
            }),
        }
    }
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} v{} {}",
            self.event_type, self.event_version, self.payload
        )
    }
}

fn list(title: &str, events: &[Described]) -> String {
    let mut out = format!("{title} ({}):", events.len());
    if events.is_empty() {
        out.push_str(" none");
    }
    for (i, event) in events.iter().enumerate() {
        let _ = write!(out, "\n  {}. {event}", i + 1);
    }
    out
}

/// The message of a mismatch: the first difference, then both lists.
fn diff(expected: &[Described], recorded: &[Described]) -> String {
    let first = (0..expected.len().max(recorded.len()))
        .find(|&i| expected.get(i) != recorded.get(i))
        .unwrap_or(0);
    let show = |e: Option<&Described>| e.map_or_else(|| "nothing".to_owned(), |e| e.to_string());
    format!(
        "the command recorded other events than expected\nfirst difference, event {}:\n  expected: {}\n  recorded: {}\n{}\n{}",
        first + 1,
        show(expected.get(first)),
        show(recorded.get(first)),
        list("expected", expected),
        list("recorded", recorded),
    )
}
