//! AggregateRoot and AggregateRepository on every store: create, save, load, conflicts,
//! the retry helper, the publisher, and events an aggregate cannot apply.

mod support;

use std::sync::{Arc, Mutex};

use eventsource::prelude::*;
use eventsource::{async_trait, BoxError, CommandError, Error, EventPublisher};
use support::bank::{AccountCommands, AccountError, AccountState, MoneyDeposited};
use support::{every_store, TaskCreated};
use uuid::Uuid;

type Repo = AggregateRepository<AccountState>;

#[test]
fn aggregate_root_records_and_stamps_events() {
    let id = Uuid::new_v4();
    let mut account = AggregateRoot::<AccountState>::new(id);
    assert_eq!((account.version(), account.get_next_version()), (0, 1));
    assert_eq!(
        account.state().account_id,
        id,
        "#[init] built the initial state"
    );
    assert_eq!(account.aggregate_type(), "Account");
    let tenant = Uuid::new_v4();
    let correlation = Uuid::new_v4();
    account
        .set_tenant_id(tenant)
        .set_actor_id("teller-1")
        .set_correlation_id(correlation)
        .set_metadata("channel", "branch");
    account.open("Alice", 100.0).unwrap();
    account.deposit(50.0).unwrap();
    assert_eq!(
        account.withdraw(500.0),
        Err(AccountError::InsufficientFunds {
            balance: 150.0,
            requested: 500.0
        })
    );
    assert_eq!(account.open("Bob", 1.0), Err(AccountError::AlreadyOpen));
    assert_eq!((account.version(), account.committed_version()), (2, 0));
    assert_eq!(account.state().balance, 150.0);
    let events = account.uncommitted_events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type(), "AccountOpened");
    for event in events {
        assert_eq!(event.tenant_id(), Some(tenant));
        assert_eq!(event.actor_id(), Some("teller-1"));
        assert_eq!(event.correlation_id(), Some(correlation));
        assert_eq!(
            event.metadata().get("channel"),
            Some(&serde_json::json!("branch"))
        );
    }
    assert_eq!(
        <AccountState as Aggregate>::handled_event_types(),
        ["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"]
    );

    // A run-time built event of a type the aggregate does not handle is refused.
    let refused = account.apply_new_event(NewEvent::new(TaskCreated { title: "x".into() }));
    assert!(
        matches!(&refused, Err(Error::UnhandledEvent { event_type, global_position: None, registered: true, .. }) if event_type == "TaskCreated"),
        "{refused:?}"
    );
    assert_eq!(account.version(), 2);
    account
        .apply_new_event(NewEvent::new(MoneyDeposited { amount: 1.0 }).with_actor_id("atm-9"))
        .unwrap();
    assert_eq!(account.state().balance, 151.0);
    assert_eq!(
        account.uncommitted_events()[2].actor_id(),
        Some("atm-9"),
        "the event's own actor wins"
    );
}

#[tokio::test]
async fn create_save_load_exists() {
    for (backend, fixture) in every_store().await {
        let repo = Repo::new(fixture.store.clone());
        let id = Uuid::new_v4();
        assert!(!repo.exists(id).await.unwrap(), "{backend}");
        assert!(
            matches!(repo.load(id).await, Err(Error::AggregateNotFound { aggregate_id, ref aggregate_type }) if aggregate_id == id && aggregate_type == "Account"),
            "{backend}"
        );
        let fresh = repo.load_or_create(id).await.unwrap();
        assert_eq!(fresh.version(), 0);

        let mut account = repo.create_new(id);
        account.open("Alice Smith", 100.0).unwrap();
        let result = repo.save(&mut account).await.unwrap();
        assert_eq!(result.new_version, 1, "{backend}");
        assert!(!account.has_uncommitted_events());
        assert_eq!(account.committed_version(), 1);
        // Nothing to save is a no-op.
        assert_eq!(repo.save(&mut account).await.unwrap().global_position, 0);

        let mut account = repo.load(id).await.unwrap();
        account.deposit(50.0).unwrap();
        account.withdraw(25.0).unwrap();
        repo.save(&mut account).await.unwrap();

        let account = repo.load(id).await.unwrap();
        assert_eq!(account.state().balance, 125.0, "{backend}");
        assert_eq!(account.version(), 3);
        assert_eq!(account.state().owner_name, "Alice Smith");
        assert!(repo.exists(id).await.unwrap());
        assert_eq!(
            fixture
                .store
                .get_stream_version(id, "Account")
                .await
                .unwrap(),
            3
        );
    }
}

#[tokio::test]
async fn a_conflict_keeps_the_uncommitted_events() {
    for (backend, fixture) in every_store().await {
        let repo = Repo::new(fixture.store.clone());
        let id = Uuid::new_v4();
        let mut account = repo.create_new(id);
        account.open("Alice", 10.0).unwrap();
        repo.save(&mut account).await.unwrap();

        let mut first = repo.load(id).await.unwrap();
        let mut second = repo.load(id).await.unwrap();
        first.deposit(1.0).unwrap();
        repo.save(&mut first).await.unwrap();
        second.deposit(2.0).unwrap();
        match repo.save(&mut second).await {
            Err(Error::OptimisticLock {
                expected, actual, ..
            }) => {
                assert_eq!(
                    (expected, actual),
                    (ExpectedVersion::Exact(1), 2),
                    "{backend}"
                );
            }
            other => panic!("{backend}: expected a conflict, got {other:?}"),
        }
        assert_eq!(second.uncommitted_events().len(), 1, "kept for a retry");
        assert_eq!(repo.load(id).await.unwrap().state().balance, 11.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_with_retry_survives_contention() {
    for (backend, fixture) in every_store().await {
        let repo = Arc::new(Repo::new(fixture.store.clone()));
        let id = Uuid::new_v4();
        repo.execute_with_retry(id, 1, |a| a.open("Shared", 0.0))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let repo = repo.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        repo.execute_with_retry(id, 100, |a| a.deposit(1.0))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let account = repo.load(id).await.unwrap();
        assert_eq!(
            account.state().balance,
            40.0,
            "{backend}: every deposit landed once"
        );
        assert_eq!(account.version(), 41);

        // The command's own refusal is not retried and saves nothing.
        let refused = repo.execute_with_retry(id, 5, |a| a.withdraw(1000.0)).await;
        assert!(matches!(
            refused,
            Err(CommandError::Rejected(
                AccountError::InsufficientFunds { .. }
            ))
        ));
        assert_eq!(repo.load(id).await.unwrap().version(), 41);
        assert!(matches!(
            repo.execute_with_retry(id, 0, |a| a.deposit(1.0)).await,
            Err(CommandError::Store(Error::InvalidConfiguration { .. }))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_with_retry_gives_up_after_the_bound() {
    // A "command" that races itself: each attempt lets another writer in first.
    let fixture = support::memory_fixture().await;
    let repo = Repo::new(fixture.store.clone());
    let id = Uuid::new_v4();
    repo.execute_with_retry(id, 1, |a| a.open("Busy", 0.0))
        .await
        .unwrap();
    let store = fixture.store.clone();
    let mut attempts = 0;
    let result = repo
        .execute_with_retry(id, 3, |account| {
            attempts += 1;
            account.deposit(1.0)?;
            // Another writer appends before this save.
            let version = account.committed_version();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(store.append_events(
                    id,
                    "Account",
                    vec![NewEvent::new(MoneyDeposited { amount: 100.0 })],
                    ExpectedVersion::Exact(version),
                ))
            })
            .unwrap();
            Ok::<_, AccountError>(())
        })
        .await;
    assert_eq!(attempts, 3);
    assert!(
        matches!(
            result,
            Err(CommandError::Store(Error::OptimisticLock { .. }))
        ),
        "{result:?}"
    );
}

#[derive(Debug, Default)]
struct RecordingPublisher {
    seen: Mutex<Vec<(u64, u64, String)>>,
    fail: bool,
}

#[async_trait]
impl EventPublisher for RecordingPublisher {
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), BoxError> {
        if self.fail {
            return Err("the bus is down".into());
        }
        let mut seen = self.seen.lock().unwrap();
        for e in events {
            seen.push((
                e.global_position,
                e.aggregate_version(),
                e.event_type().to_owned(),
            ));
        }
        Ok(())
    }
}

#[tokio::test]
async fn saved_events_are_published_with_their_positions() {
    for (backend, fixture) in every_store().await {
        let publisher = Arc::new(RecordingPublisher::default());
        let repo = Repo::new(fixture.store.clone()).with_publisher(publisher.clone());
        // Another aggregate first, so positions and versions differ.
        let mut other = repo.create_new(Uuid::new_v4());
        other.open("Other", 1.0).unwrap();
        repo.save(&mut other).await.unwrap();
        let mut account = repo.create_new(Uuid::new_v4());
        account.open("Alice", 5.0).unwrap();
        account.deposit(1.0).unwrap();
        repo.save(&mut account).await.unwrap();
        assert_eq!(
            *publisher.seen.lock().unwrap(),
            [
                (1, 1, "AccountOpened".to_owned()),
                (2, 1, "AccountOpened".to_owned()),
                (3, 2, "MoneyDeposited".to_owned())
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_publish_failure_is_reported_and_loses_nothing() {
    for (backend, fixture) in every_store().await {
        let publisher = Arc::new(RecordingPublisher {
            fail: true,
            ..Default::default()
        });
        let repo = Repo::new(fixture.store.clone()).with_publisher(publisher);
        let id = Uuid::new_v4();
        let mut account = repo.create_new(id);
        account.open("Alice", 5.0).unwrap();
        match repo.save(&mut account).await {
            Err(Error::PublishFailed {
                new_version: 1,
                global_position: 1,
                source,
            }) => {
                assert_eq!(source.to_string(), "the bus is down", "{backend}");
            }
            other => panic!("{backend}: expected a publish failure, got {other:?}"),
        }
        assert!(!account.has_uncommitted_events(), "the events are stored");
        assert_eq!(
            Repo::new(fixture.store.clone())
                .load(id)
                .await
                .unwrap()
                .version(),
            1
        );
    }
}

#[tokio::test]
async fn loading_an_event_the_aggregate_cannot_apply_names_it() {
    for (backend, fixture) in every_store().await {
        let repo = Repo::new(fixture.store.clone());
        let id = Uuid::new_v4();
        let mut account = repo.create_new(id);
        account.open("Alice", 5.0).unwrap();
        repo.save(&mut account).await.unwrap();
        // A registered type the aggregate has no #[apply] for, written under its stream.
        fixture
            .store
            .append_events(
                id,
                "Account",
                vec![support::noted("stray")],
                ExpectedVersion::Exact(1),
            )
            .await
            .unwrap();
        match repo.load(id).await {
            Err(Error::UnhandledEvent {
                aggregate_type,
                event_type,
                global_position,
                registered,
            }) => {
                assert_eq!(
                    (aggregate_type.as_str(), event_type.as_str()),
                    ("Account", "Noted"),
                    "{backend}"
                );
                assert_eq!(global_position, Some(2));
                assert!(registered);
            }
            other => panic!("{backend}: expected an unhandled event, got {other:?}"),
        }
        // An unregistered type likewise.
        let id = Uuid::new_v4();
        fixture
            .store
            .append_events(
                id,
                "Account",
                vec![NewEvent::raw("AccountFrozen", 1, serde_json::json!({}))],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let error = repo.load(id).await.unwrap_err();
        assert!(
            matches!(
                &error,
                Error::UnhandledEvent {
                    registered: false,
                    global_position: Some(3),
                    ..
                }
            ),
            "{backend}: {error:?}"
        );
        assert!(error.to_string().contains("not registered"), "{error}");
    }
}
