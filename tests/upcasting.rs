//! Events that evolve: rows stored at v1 and v2 read back as the v3 type through the
//! chain its derive declares (`previous = ...`, each hop a `From` or `TryFrom`), on every
//! store and every read path, so aggregates and projections handle only v3.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsource::prelude::*;
use eventsource::{Error, EventRegistry, SubscriptionConfig};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use support::every_store;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", aggregate = "Book", version = 1)]
struct BookAddedV1 {
    title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookAdded", aggregate = "Book", version = 2, previous = BookAddedV1)]
struct BookAddedV2 {
    title: String,
    isbn: Option<String>,
}

impl From<BookAddedV1> for BookAddedV2 {
    fn from(v1: BookAddedV1) -> Self {
        BookAddedV2 {
            title: v1.title,
            isbn: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(
    name = "BookAdded",
    aggregate = "Book",
    version = 3,
    previous = BookAddedV2,
    upcast = "try_from"
)]
struct BookAdded {
    title: String,
    isbn: String,
}

impl TryFrom<BookAddedV2> for BookAdded {
    type Error = String;

    fn try_from(v2: BookAddedV2) -> Result<Self, String> {
        if v2.title.is_empty() {
            return Err("a book needs a title".into());
        }
        Ok(BookAdded {
            title: v2.title,
            isbn: v2.isbn.unwrap_or_else(|| "unknown".into()),
        })
    }
}

/// Renamed: stored as `MemberRegistered` at v1, `MemberJoined` from v2 on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(name = "MemberRegistered", version = 1)]
struct MemberRegistered {
    first: String,
    last: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(
    name = "MemberJoined",
    version = 2,
    previous = MemberRegistered,
    renamed_from = "MemberRegistered"
)]
struct MemberJoined {
    name: String,
}

impl From<MemberRegistered> for MemberJoined {
    fn from(old: MemberRegistered) -> Self {
        MemberJoined {
            name: format!("{} {}", old.first, old.last),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Shelf {
    books: Vec<(String, String)>,
}

#[aggregate(name = "Book")]
impl Shelf {
    #[init]
    fn new(_id: Uuid) -> Self {
        Shelf::default()
    }

    #[apply]
    fn added(&mut self, e: &BookAdded) {
        self.books.push((e.title.clone(), e.isbn.clone()));
    }
}

/// One stream holding the event at v1, v2 and v3.
async fn three_versions(store: &dyn EventStore) -> Uuid {
    let id = Uuid::new_v4();
    let events = vec![
        NewEvent::new(BookAddedV1 {
            title: "Dune".into(),
        }),
        NewEvent::new(BookAddedV2 {
            title: "Emma".into(),
            isbn: Some("978-0".into()),
        }),
        NewEvent::new(BookAdded {
            title: "Ulysses".into(),
            isbn: "978-1".into(),
        }),
    ];
    store
        .append_events(id, "Book", events, ExpectedVersion::NoStream)
        .await
        .unwrap();
    id
}

fn expected() -> Vec<(String, String)> {
    [("Dune", "unknown"), ("Emma", "978-0"), ("Ulysses", "978-1")]
        .iter()
        .map(|(t, i)| ((*t).to_owned(), (*i).to_owned()))
        .collect()
}

fn books(events: &[StoredEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let book = e
                .event::<BookAdded>()
                .unwrap_or_else(|err| panic!("not upcast to v3: {err}: {e:?}"));
            (book.title.clone(), book.isbn.clone())
        })
        .collect()
}

#[test]
fn the_registry_knows_the_whole_chain() {
    let registry = EventRegistry::global();
    assert_eq!(registry.versions("BookAdded"), [1, 2, 3]);
    for version in 1..=3 {
        assert_eq!(
            registry.current_version("BookAdded", version),
            Some(("BookAdded", 3))
        );
    }
    assert_eq!(
        registry.current_version("MemberRegistered", 1),
        Some(("MemberJoined", 2))
    );
    assert_eq!(
        registry.stored_names("MemberJoined"),
        ["MemberJoined", "MemberRegistered"]
    );
    assert_eq!(registry.current_version("BookAdded", 4), None);
}

#[tokio::test]
async fn rows_of_every_version_read_back_as_the_current_type_on_every_store() {
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let id = three_versions(&*store).await;
        let stream = store
            .get_events(id, "Book", GetEventsOptions::default())
            .await
            .unwrap();
        assert_eq!(books(&stream.events), expected(), "{name}: get_events");
        // The stored rows keep their versions: upcasting happens on read.
        let stored: Vec<u32> = stream
            .events
            .iter()
            .map(|e| e.envelope.event_version)
            .collect();
        assert_eq!(stored, [1, 2, 3], "{name}");
        let all: Vec<_> = support::collect(store.read_all(ReadOptions::new())).await;
        assert_eq!(books(&all), expected(), "{name}: read_all");
        let back: Vec<_> = support::collect(store.read_all(ReadOptions::new().backward())).await;
        let mut reversed = expected();
        reversed.reverse();
        assert_eq!(books(&back), reversed, "{name}: read_all backward");
        let stream_id = StreamId::new(id, "Book");
        let read: Vec<_> =
            support::collect(store.read_stream(&stream_id, ReadOptions::new())).await;
        assert_eq!(books(&read), expected(), "{name}: read_stream");
        let by_type = store.get_events_by_type("Book", None, None).await.unwrap();
        assert_eq!(books(&by_type), expected(), "{name}: get_events_by_type");

        // The aggregate applies v3 only, whatever the stored version.
        let repository = AggregateRepository::<Shelf>::new(store.clone());
        let shelf = repository.load(id).await.unwrap();
        assert_eq!(shelf.state().books, expected(), "{name}: load");
        assert_eq!(shelf.version(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_handle_the_current_type_only() {
    #[derive(Debug, Default)]
    struct Catalog(Vec<String>);

    #[projection]
    impl Catalog {
        #[handles]
        async fn added(&mut self, e: &BookAdded) {
            self.0.push(format!("{} ({})", e.title, e.isbn));
        }
    }

    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        three_versions(&*store).await;
        let (manager, catalog) = support::started_subscription(
            store.clone(),
            Catalog::default(),
            SubscriptionConfig::new(),
            "catalog",
        )
        .await;
        catalog.wait_for(3, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            catalog.projection().lock().await.0,
            ["Dune (unknown)", "Emma (978-0)", "Ulysses (978-1)"],
            "{name}"
        );
        manager.stop().await;
    }
}

#[tokio::test]
async fn a_failed_hop_or_a_version_no_chain_reaches_names_the_row() {
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let id = Uuid::new_v4();
        store
            .append_events(
                id,
                "Book",
                vec![NewEvent::new(BookAddedV1 {
                    title: String::new(),
                })],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let items: Vec<_> = store.read_all(ReadOptions::new()).collect().await;
        match &items[..] {
            [Err(Error::CorruptEvent { reason, .. })] => {
                assert!(
                    reason.contains("upcasting BookAdded from v2")
                        && reason.contains("a book needs a title"),
                    "{name}: {reason}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }

        // A version newer than this build knows, stored by another writer.
        let other = Uuid::new_v4();
        store
            .append_events(
                other,
                "Book",
                vec![NewEvent::raw(
                    "BookAdded",
                    7,
                    serde_json::json!({"title": "x"}),
                )],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let stream = StreamId::new(other, "Book");
        let items: Vec<_> = store
            .read_stream(&stream, ReadOptions::new())
            .collect()
            .await;
        match &items[..] {
            [Err(Error::CorruptEvent { reason, .. })] => assert!(
                reason.contains("BookAdded v7 is stored; registered: v1, v2, v3")
                    && reason.contains("newer than this build knows"),
                "{name}: {reason}"
            ),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn verify_store_names_each_gap_with_its_count() {
    let store = InMemoryEventStore::new();
    let id = Uuid::new_v4();
    store
        .append_events(
            id,
            "Book",
            vec![
                NewEvent::new(BookAddedV1 { title: "a".into() }),
                NewEvent::raw("BookAdded", 9, serde_json::json!({})),
                NewEvent::raw("BookAdded", 9, serde_json::json!({})),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    match EventRegistry::global().verify_store(&store).await {
        Err(Error::UnregisteredEventTypes { missing }) => assert_eq!(
            missing,
            ["BookAdded@9 (2 events): registered v1, v2, v3; v9 is newer than this build knows"]
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_events_read_back_under_their_new_name_and_reach_filtered_projections() {
    #[derive(Debug, Default)]
    struct Members(Vec<String>);

    #[projection]
    impl Members {
        #[handles]
        async fn joined(&mut self, e: &MemberJoined) {
            self.0.push(e.name.clone());
        }
    }

    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        store
            .append_events(
                Uuid::new_v4(),
                "Member",
                vec![
                    NewEvent::new(MemberRegistered {
                        first: "Ada".into(),
                        last: "Lovelace".into(),
                    }),
                    NewEvent::new(MemberJoined {
                        name: "Alan Turing".into(),
                    }),
                ],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let all = support::collect(store.read_all(ReadOptions::new())).await;
        let names: Vec<&str> = all
            .iter()
            .map(|e| e.event::<MemberJoined>().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["Ada Lovelace", "Alan Turing"], "{name}");
        // The row keeps its stored name.
        assert_eq!(all[0].event_type(), "MemberRegistered");

        // A projection of MemberJoined reads the renamed rows too (its SQL type filter
        // asks for both names).
        let (manager, members) = support::started_subscription(
            store.clone(),
            Members::default(),
            SubscriptionConfig::new(),
            "members",
        )
        .await;
        members.wait_for(2, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            members.projection().lock().await.0,
            ["Ada Lovelace", "Alan Turing"],
            "{name}"
        );
        manager.stop().await;
    }
}

#[tokio::test]
async fn loads_after_a_snapshot_upcast_the_newer_rows() {
    use eventsource::{InMemorySnapshotStore, SnapshotStrategy};
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let snapshots = Arc::new(InMemorySnapshotStore::new());
        let repository = AggregateRepository::<Shelf>::new(store.clone())
            .with_snapshots(snapshots.clone(), SnapshotStrategy::every(2).unwrap());
        let id = three_versions(&*store).await;
        // Loading and saving takes a snapshot at version 4; the rows after it are v1.
        let mut shelf = repository.load(id).await.unwrap();
        shelf.apply_event(BookAdded {
            title: "Beloved".into(),
            isbn: "978-2".into(),
        });
        repository.save(&mut shelf).await.unwrap();
        let snapshot = eventsource::SnapshotStore::get_snapshot(&*snapshots, id, "Book")
            .await
            .unwrap();
        assert_eq!(snapshot.map(|s| s.version), Some(4), "{name}");
        store
            .append_events(
                id,
                "Book",
                vec![NewEvent::new(BookAddedV1 {
                    title: "Kindred".into(),
                })],
                ExpectedVersion::Exact(4),
            )
            .await
            .unwrap();
        let loaded = repository.load(id).await.unwrap();
        let titles: Vec<&str> = loaded
            .state()
            .books
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(
            titles,
            ["Dune", "Emma", "Ulysses", "Beloved", "Kindred"],
            "{name}"
        );
        assert_eq!(loaded.version(), 5);
    }
}

/// v2 of `BookLoaned`; v1 (`borrower`, `weeks`) has no Rust type any more, only a
/// JSON-level upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(name = "BookLoaned", aggregate = "Loan", version = 2, previous_json = loaned_v1)]
struct BookLoaned {
    member: String,
    days: u64,
}

fn loaned_v1(old: serde_json::Value) -> Result<serde_json::Value, String> {
    let member = old
        .get("borrower")
        .cloned()
        .ok_or("v1 without a borrower")?;
    let weeks = old
        .get("weeks")
        .and_then(serde_json::Value::as_u64)
        .ok_or("v1 without weeks")?;
    Ok(serde_json::json!({"member": member, "days": weeks * 7}))
}

#[tokio::test]
async fn a_version_without_a_rust_type_reads_through_its_json_upcaster() {
    let registry = EventRegistry::global();
    assert_eq!(registry.versions("BookLoaned"), [1, 2]);
    assert_eq!(
        registry.current_version("BookLoaned", 1),
        Some(("BookLoaned", 2))
    );
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let id = Uuid::new_v4();
        store
            .append_events(
                id,
                "Loan",
                vec![
                    NewEvent::raw(
                        "BookLoaned",
                        1,
                        serde_json::json!({"borrower": "ada", "weeks": 2}),
                    ),
                    NewEvent::new(BookLoaned {
                        member: "alan".into(),
                        days: 3,
                    }),
                    NewEvent::raw("BookLoaned", 1, serde_json::json!({"borrower": "grace"})),
                ],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        let items: Vec<_> = store
            .read_stream(&StreamId::new(id, "Loan"), ReadOptions::new())
            .collect()
            .await;
        let loans: Vec<(String, u64)> = items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .map(|e| {
                let loan = e.event::<BookLoaned>().unwrap();
                (loan.member.clone(), loan.days)
            })
            .collect();
        assert_eq!(
            loans,
            [("ada".to_owned(), 14), ("alan".to_owned(), 3)],
            "{name}"
        );
        match &items[2] {
            Err(Error::CorruptEvent { reason, .. }) => {
                assert!(reason.contains("v1 without weeks"), "{name}: {reason}")
            }
            other => panic!("{name}: {other:?}"),
        }
        // The stored rows are as written.
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.envelope.event_version, 1, "{name}");
    }
}
