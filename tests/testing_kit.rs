//! The test kit (`eventsource::testing`) and commands on the state type
//! (`AggregateRoot::execute`, `AggregateRepository::execute`): what passes, and that what
//! should fail does, with a message that says why.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::testing::{AggregateTest, FullStack, ProjectionTest, TempSqliteStore, TestEvents};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "KitBook")]
struct KitBookAdded {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "KitBook")]
struct KitBookLent {
    member: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "KitBook")]
struct KitBookReturned {}

/// Serializes a field under one name and reads it under another: a store would give it
/// back without its value.
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "KitBook")]
struct KitBookNoted {
    #[serde(rename(serialize = "text", deserialize = "note"))]
    note: String,
}

#[derive(Debug, Default)]
struct KitBook {
    added: bool,
    lent_to: Option<String>,
    loans: u32,
}

#[aggregate(name = "KitBook")]
impl KitBook {
    #[apply]
    fn added(&mut self, _: &KitBookAdded) {
        self.added = true;
    }

    #[apply]
    fn lent(&mut self, e: &KitBookLent) {
        self.lent_to = Some(e.member.clone());
        self.loans += 1;
    }

    #[apply]
    fn returned(&mut self, _: &KitBookReturned) {
        self.lent_to = None;
    }

    #[apply]
    fn noted(&mut self, _: &KitBookNoted) {}
}

#[derive(Debug, PartialEq)]
enum LoanError {
    NoSuchBook,
    AlreadyLent(String),
}

impl KitBook {
    fn add(&self, title: &str) -> Result<Option<KitBookAdded>, LoanError> {
        // Adding twice is a no-op, not an error.
        Ok((!self.added).then(|| KitBookAdded {
            title: title.into(),
        }))
    }

    fn lend(&self, member: &str) -> Result<KitBookLent, LoanError> {
        if !self.added {
            return Err(LoanError::NoSuchBook);
        }
        if let Some(other) = &self.lent_to {
            return Err(LoanError::AlreadyLent(other.clone()));
        }
        Ok(KitBookLent {
            member: member.into(),
        })
    }

    /// Returns the book if lent, then lends it: two events of two types.
    fn hand_over(&self, member: &str) -> Result<(Option<KitBookReturned>, KitBookLent), LoanError> {
        if !self.added {
            return Err(LoanError::NoSuchBook);
        }
        Ok((
            self.lent_to.as_ref().map(|_| KitBookReturned {}),
            KitBookLent {
                member: member.into(),
            },
        ))
    }
}

fn added() -> KitBookAdded {
    KitBookAdded {
        title: "Dune".into(),
    }
}

fn lent(member: &str) -> KitBookLent {
    KitBookLent {
        member: member.into(),
    }
}

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("the check should have failed");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn a_command_decides_and_the_root_applies() {
    let mut book = AggregateRoot::<KitBook>::new(Uuid::new_v4());
    assert_eq!(book.execute(|b| b.lend("ada")), Err(LoanError::NoSuchBook));
    assert_eq!(book.version(), 0);
    book.execute(|b| b.add("Dune")).unwrap();
    book.execute(|b| b.add("Dune")).unwrap(); // decides nothing the second time
    book.execute(|b| b.lend("ada")).unwrap();
    book.execute(|b| b.hand_over("bob")).unwrap();
    let types: Vec<&str> = book
        .uncommitted_events()
        .iter()
        .map(|e| e.event_type())
        .collect();
    assert_eq!(
        types,
        [
            "KitBookAdded",
            "KitBookLent",
            "KitBookReturned",
            "KitBookLent"
        ]
    );
    assert_eq!(book.state().lent_to.as_deref(), Some("bob"));
    assert_eq!((book.version(), book.state().loans), (4, 2));
}

#[test]
fn given_when_then_passes_on_the_events_decided() {
    let book = AggregateTest::<KitBook>::given(added())
        .when(|b| b.lend("ada"))
        .then_expect(lent("ada"));
    assert_eq!(book.state().lent_to.as_deref(), Some("ada"));
    assert_eq!((book.version(), book.committed_version()), (2, 1));

    AggregateTest::<KitBook>::given((added(), lent("ada")))
        .when(|b| b.hand_over("bob"))
        .then_expect((KitBookReturned {}, lent("bob")));
    AggregateTest::<KitBook>::given(added())
        .and(vec![lent("ada")])
        .when(|b| b.lend("bob"))
        .then_error(LoanError::AlreadyLent("ada".into()));
    AggregateTest::<KitBook>::given(added())
        .when(|b| b.add("Dune"))
        .then_expect_no_events();
    let error = AggregateTest::<KitBook>::given_no_events()
        .when(|b| b.lend("ada"))
        .then_refused();
    assert_eq!(error, LoanError::NoSuchBook);
    // A command written against the root, the apply_event way.
    AggregateTest::<KitBook>::given(added())
        .when_root(|root| {
            root.apply_event(lent("cy"));
            Ok::<(), LoanError>(())
        })
        .then_expect([lent("cy")]);
}

#[test]
fn other_events_fail_with_a_diff_naming_the_first_difference() {
    let message = panic_message(|| {
        AggregateTest::<KitBook>::given(added())
            .when(|b| b.lend("ada"))
            .then_expect(lent("bob"));
    });
    assert!(message.contains("first difference, event 1"), "{message}");
    assert!(
        message.contains(r#"expected: KitBookLent v1 {"member":"bob"}"#),
        "{message}"
    );
    assert!(
        message.contains(r#"recorded: KitBookLent v1 {"member":"ada"}"#),
        "{message}"
    );

    let message = panic_message(|| {
        AggregateTest::<KitBook>::given((added(), lent("ada")))
            .when(|b| b.hand_over("bob"))
            .then_expect(lent("bob"));
    });
    assert!(message.contains("expected: KitBookLent"), "{message}");
    assert!(
        message.contains("recorded: KitBookReturned v1 {}"),
        "{message}"
    );
    assert!(
        message.contains("expected (1):") && message.contains("recorded (2):"),
        "{message}"
    );

    let message = panic_message(|| {
        AggregateTest::<KitBook>::given(added())
            .when(|b| b.add("Dune"))
            .then_expect(added());
    });
    assert!(message.contains("recorded: nothing"), "{message}");
}

#[test]
fn a_wrong_outcome_fails_the_test() {
    let message = panic_message(|| {
        AggregateTest::<KitBook>::given_no_events()
            .when(|b| b.lend("ada"))
            .then_expect(lent("ada"));
    });
    assert!(message.contains("refused with NoSuchBook"), "{message}");

    let message = panic_message(|| {
        AggregateTest::<KitBook>::given(added())
            .when(|b| b.lend("ada"))
            .then_error(LoanError::NoSuchBook);
    });
    assert!(message.contains("the command succeeded"), "{message}");
    assert!(message.contains("KitBookLent"), "{message}");

    let message = panic_message(|| {
        AggregateTest::<KitBook>::given((added(), lent("ada")))
            .when(|b| b.lend("bob"))
            .then_error(LoanError::NoSuchBook);
    });
    assert!(
        message.contains(r#"refused with AlreadyLent("ada"); expected NoSuchBook"#),
        "{message}"
    );

    let message = panic_message(|| {
        AggregateTest::<KitBook>::given(added())
            .when_root(|root| {
                root.apply_event(lent("ada"));
                Err::<(), _>(LoanError::NoSuchBook)
            })
            .then_refused();
    });
    assert!(message.contains("recorded events first"), "{message}");
}

#[test]
fn a_given_event_that_would_not_read_back_fails_the_test() {
    let message = panic_message(|| {
        let _ = AggregateTest::<KitBook>::given(KitBookNoted {
            note: "signed".into(),
        });
    });
    assert!(
        message.contains("would not read back from a store"),
        "{message}"
    );
    assert!(message.contains("KitBookNoted"), "{message}");
}

#[derive(Debug, Default)]
struct Loans {
    by_member: HashMap<String, Vec<Uuid>>,
    tenants: Vec<Option<Uuid>>,
    positions: Vec<(u64, u64)>,
}

#[projection]
impl Loans {
    #[handles]
    async fn lent(&mut self, e: &KitBookLent, ctx: &EventContext<'_>) -> Result<(), String> {
        if e.member.is_empty() {
            return Err("a loan without a member".into());
        }
        self.by_member
            .entry(e.member.clone())
            .or_default()
            .push(ctx.aggregate_id());
        self.tenants.push(ctx.envelope().tenant_id);
        self.positions
            .push((ctx.global_position(), ctx.stream_position()));
        Ok(())
    }
}

#[tokio::test]
async fn a_projection_test_hands_over_the_handled_events_with_envelopes() {
    let (dune, emma) = (Uuid::new_v4(), Uuid::new_v4());
    let tenant = Uuid::new_v4();
    let loans = ProjectionTest::new(Loans::default())
        .tenant(tenant)
        .given(dune, added())
        .given(dune, lent("ada"))
        .given(emma, added())
        .given(emma, lent("ada"))
        .given(dune, KitBookReturned {})
        .given(dune, lent("bob"))
        .run()
        .await;
    assert_eq!(loans.by_member["ada"], [dune, emma]);
    assert_eq!(loans.by_member["bob"], [dune]);
    assert_eq!(loans.positions, [(2, 2), (4, 2), (6, 4)]);
    assert!(loans.tenants.iter().all(|t| *t == Some(tenant)));

    let failure = ProjectionTest::new(Loans::default())
        .given(dune, lent("ada"))
        .given(dune, lent(""))
        .given(dune, lent("cy"))
        .try_run()
        .await
        .unwrap_err();
    assert_eq!(failure.event.global_position, 2);
    assert_eq!(
        failure.to_string(),
        "the handler of `KitBookLent` at global position 2 failed: a loan without a member"
    );

    let events = TestEvents::new()
        .event_in(
            dune,
            "Shelf",
            NewEvent::new(added()).with_actor_id("librarian"),
        )
        .into_events();
    assert_eq!(events[0].aggregate_type(), "Shelf");
    assert_eq!(events[0].envelope.actor_id.as_deref(), Some("librarian"));
}

#[tokio::test]
async fn a_temp_sqlite_store_is_a_real_file_removed_on_drop() {
    let store = TempSqliteStore::with_options(|o| o.group_commit(true))
        .await
        .unwrap();
    let path = store.path().to_owned();
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "KitBook",
            vec![NewEvent::new(added())],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let second = store.reopen().await.unwrap();
    assert_eq!(second.get_stream_version(id, "KitBook").await.unwrap(), 1);
    second.close().await;
    assert!(path.exists());
    let dir = path.parent().unwrap().to_owned();
    drop(store);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[tokio::test]
async fn repository_execute_reloads_and_decides_again_on_conflicts() {
    let store = TempSqliteStore::new().await.unwrap();
    let repo = Arc::new(AggregateRepository::<KitBook>::new(store.store().clone()));
    let id = Uuid::new_v4();
    let book = repo.execute(id, |b| b.add("Dune")).await.unwrap();
    assert_eq!(book.version(), 1);

    // Eight writers hand the book over at once: each decides on the state it loads, the
    // losers of a race reload and decide again, so every hand-over is stored once.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.execute(id, |b| b.hand_over(&format!("m{i}"))).await })
        })
        .collect();
    let mut failed = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(_) => {}
            Err(CommandError::Store(e)) if e.is_optimistic_lock() => failed += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    let book = repo.load(id).await.unwrap();
    assert_eq!(book.state().loans, 8 - failed);
    // The first hand-over lends; each later one returns, then lends: 1 + 1 + 2 * 7.
    assert_eq!(book.version(), u64::from(2 + 2 * (book.state().loans - 1)));

    let refused = repo.execute(Uuid::new_v4(), |b| b.lend("ada")).await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(LoanError::NoSuchBook))
    ));
    assert_eq!(store.get_global_position().await.unwrap(), book.version());
}

#[derive(Debug, Default)]
struct OnLoan {
    books: HashMap<Uuid, String>,
}

#[projection(name = "on-loan")]
impl OnLoan {
    #[handles]
    async fn lent(&mut self, e: &KitBookLent, ctx: &EventContext<'_>) {
        self.books.insert(ctx.aggregate_id(), e.member.clone());
    }

    #[handles]
    async fn returned(&mut self, _: &KitBookReturned, ctx: &EventContext<'_>) {
        self.books.remove(&ctx.aggregate_id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_stack_runs_commands_into_a_projection() {
    let stack = FullStack::<KitBook, _>::start(OnLoan::default())
        .await
        .unwrap();
    let (dune, emma) = (Uuid::new_v4(), Uuid::new_v4());
    stack.repo.execute(dune, |b| b.add("Dune")).await.unwrap();
    stack.repo.execute(dune, |b| b.lend("ada")).await.unwrap();
    stack.repo.execute(emma, |b| b.add("Emma")).await.unwrap();
    stack.repo.execute(emma, |b| b.lend("bob")).await.unwrap();
    stack
        .repo
        .execute(dune, |b| b.hand_over("cy"))
        .await
        .unwrap();
    // The last event is one the projection does not handle: settling still ends.
    stack
        .repo
        .execute(Uuid::new_v4(), |b| b.add("Ulysses"))
        .await
        .unwrap();
    stack.settle().await.unwrap();
    {
        let on_loan = stack.projection.projection().lock().await;
        assert_eq!(on_loan.books[&dune], "cy");
        assert_eq!(on_loan.books[&emma], "bob");
        assert_eq!(on_loan.books.len(), 2);
    }
    assert_eq!(stack.projection.name(), "on-loan");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_stack_runs_on_postgres_from_the_harness() {
    let Some(server) = eventsource::testing::postgres::server() else {
        return;
    };
    let store = Arc::new(server.store().await);
    let stack = FullStack::<KitBook, _, _>::start_on(store, OnLoan::default())
        .await
        .unwrap();
    let dune = Uuid::new_v4();
    stack.repo.execute(dune, |b| b.add("Dune")).await.unwrap();
    stack.repo.execute(dune, |b| b.lend("ada")).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(
        stack.projection.projection().lock().await.books[&dune],
        "ada"
    );
    assert_eq!(
        stack
            .store
            .get_stream_version(dune, "KitBook")
            .await
            .unwrap(),
        2
    );
    stack.stop().await;
}

/// The kit's conformance suite, stamped as a user would for a store of theirs.
mod conformance_on_a_temp_sqlite_file {
    async fn fresh() -> Option<eventsource::testing::TempSqliteStore> {
        eventsource::testing::TempSqliteStore::new().await.ok()
    }

    eventsource::conformance_suite!(fresh);
}
