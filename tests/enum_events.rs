//! Enums of events stored per variant: each variant its own event type (its
//! `#[event(name)]`, or its name), its payload the variant's fields, decoded back to the
//! enum; `#[apply]` and `#[handles]` of the enum take every variant, and type filters
//! still run in SQL.

mod support;

use std::time::Duration;

use eventsource::prelude::*;
use eventsource::SubscriptionConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::every_store;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Book")]
enum BookEvent {
    Added {
        title: String,
    },
    #[event(name = "BookLent")]
    Lent {
        member: Uuid,
    },
    Returned,
}

/// Internally tagged, with renamed variants: the tag is not stored (it is the type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Shelf", version = 2)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ShelfEvent {
    ShelfBuilt { capacity: u32 },
    ShelfRemoved {},
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    title: String,
    lent_to: Option<Uuid>,
    lendings: u32,
}

#[aggregate(name = "Book")]
impl Book {
    #[apply]
    fn on(&mut self, event: &BookEvent) {
        match event {
            BookEvent::Added { title } => self.title.clone_from(title),
            BookEvent::Lent { member } => {
                self.lent_to = Some(*member);
                self.lendings += 1;
            }
            BookEvent::Returned => self.lent_to = None,
        }
    }
}

#[test]
fn every_variant_is_registered_and_handled() {
    let registry = eventsource::EventRegistry::global();
    for name in ["Added", "BookLent", "Returned"] {
        assert!(registry.is_registered(name, 1), "{name}");
    }
    assert!(registry.is_registered("ShelfBuilt", 2) && registry.is_registered("ShelfRemoved", 2));
    assert!(
        !registry.is_registered("BookEvent", 1),
        "the enum's own name is not stored"
    );
    assert_eq!(
        <Book as Aggregate>::handled_event_types(),
        ["Added", "BookLent", "Returned"]
    );
    assert_eq!(BookEvent::EVENT_TYPES, ["Added", "BookLent", "Returned"]);
    // Registered by hand: every variant.
    let own = eventsource::EventRegistry::new();
    own.register::<BookEvent>().unwrap();
    assert_eq!(own.registered_types().len(), 3);
    assert!(own.is_registered("BookLent", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_are_stored_as_their_own_types_on_every_store() {
    #[derive(Debug, Default)]
    struct Lendings(Vec<String>);

    #[projection]
    impl Lendings {
        #[handles]
        async fn on(&mut self, event: &BookEvent) {
            self.0.push(format!("{event:?}"));
        }
    }

    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let (book, member) = (Uuid::new_v4(), Uuid::new_v4());
        let events = vec![
            NewEvent::new(BookEvent::Added {
                title: "Dune".into(),
            }),
            NewEvent::new(BookEvent::Lent { member }),
            NewEvent::new(BookEvent::Returned),
            NewEvent::new(BookEvent::Lent { member }),
        ];
        store
            .append_events(book, "Book", events, ExpectedVersion::NoStream)
            .await
            .unwrap();
        store
            .append_events(
                Uuid::new_v4(),
                "Shelf",
                vec![NewEvent::new(ShelfEvent::ShelfBuilt { capacity: 40 })],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();

        let all = support::collect(store.read_all(ReadOptions::new())).await;
        let types: Vec<&str> = all.iter().map(|e| e.event_type()).collect();
        assert_eq!(
            types,
            ["Added", "BookLent", "Returned", "BookLent", "ShelfBuilt"],
            "{name}"
        );
        assert_eq!(
            all[1].payload_json().unwrap(),
            json!({"member": member}),
            "{name}"
        );
        assert_eq!(all[2].payload_json().unwrap(), json!({}), "{name}");
        assert_eq!(
            all[4].payload_json().unwrap(),
            json!({"capacity": 40}),
            "{name}"
        );
        assert_eq!(all[4].envelope.event_version, 2);
        assert_eq!(
            all[1].event::<BookEvent>().unwrap(),
            &BookEvent::Lent { member }
        );
        assert_eq!(
            all[4].event::<ShelfEvent>().unwrap(),
            &ShelfEvent::ShelfBuilt { capacity: 40 }
        );

        // A filter by one variant's type runs in the store.
        let lent =
            support::collect(store.read_all(ReadOptions::new().event_types(["BookLent"]))).await;
        assert_eq!(lent.len(), 2, "{name}");

        // The aggregate applies every variant.
        let repository = AggregateRepository::<Book>::new(store.clone());
        let loaded = repository.load(book).await.unwrap();
        assert_eq!(
            (
                loaded.state().title.as_str(),
                loaded.state().lent_to,
                loaded.state().lendings
            ),
            ("Dune", Some(member), 2),
            "{name}"
        );

        // A projection of the enum gets every variant, and nothing else.
        let (manager, lendings) = support::started_subscription(
            store.clone(),
            Lendings::default(),
            SubscriptionConfig::new(),
            "lendings",
        )
        .await;
        lendings.wait_for(5, Duration::from_secs(10)).await.unwrap();
        assert_eq!(lendings.projection().lock().await.0.len(), 4, "{name}");
        manager.stop().await;
    }
}

#[tokio::test]
async fn a_payload_of_the_wrong_shape_is_refused_or_names_the_row() {
    let store = InMemoryEventStore::new();
    let refused = store
        .append_events(
            Uuid::new_v4(),
            "Book",
            vec![NewEvent::raw(
                "BookLent",
                1,
                json!({"member": "not a uuid"}),
            )],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(
        matches!(&refused, Err(eventsource::Error::CorruptEvent { event_type, .. }) if event_type == "BookLent"),
        "{refused:?}"
    );
    let sqlite = SqliteEventStore::open(":memory:").await.unwrap();
    sqlite.initialize().await.unwrap();
    let id = Uuid::new_v4();
    sqlite
        .append_events(
            id,
            "Book",
            vec![NewEvent::new(BookEvent::Returned)],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = '{\"member\": 5}', event_type = 'BookLent'")
        .execute(sqlite.pool())
        .await
        .unwrap();
    let items: Vec<_> = futures::StreamExt::collect(sqlite.read_all(ReadOptions::new())).await;
    assert!(
        matches!(
            &items[..],
            [Err(eventsource::Error::CorruptEvent {
                global_position: 1,
                ..
            })]
        ),
        "{items:?}"
    );
}

/// v1 of a per-variant enum; v2 keeps both names, changes one variant's fields and adds
/// a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Loan")]
enum LoanEventV1 {
    Opened { member: String },
    Closed {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Loan", version = 2, previous = LoanEventV1)]
enum LoanEvent {
    Opened { member: String, days: u32 },
    Closed {},
    Extended { days: u32 },
}

impl From<LoanEventV1> for LoanEvent {
    fn from(v1: LoanEventV1) -> Self {
        match v1 {
            LoanEventV1::Opened { member } => LoanEvent::Opened { member, days: 14 },
            LoanEventV1::Closed {} => LoanEvent::Closed {},
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Loan {
    member: String,
    days: u32,
    open: bool,
}

#[aggregate(name = "Loan")]
impl Loan {
    #[apply]
    fn on(&mut self, event: &LoanEvent) {
        match event {
            LoanEvent::Opened { member, days } => {
                (self.member, self.days, self.open) = (member.clone(), *days, true);
            }
            LoanEvent::Extended { days } => self.days += days,
            LoanEvent::Closed {} => self.open = false,
        }
    }
}

#[tokio::test]
async fn rows_of_an_enums_previous_version_read_back_as_its_current_version() {
    let registry = eventsource::EventRegistry::global();
    assert_eq!(registry.current_version("Opened", 1), Some(("Opened", 2)));
    assert_eq!(
        registry.current_version("Extended", 2),
        Some(("Extended", 2))
    );
    for (name, fixture) in every_store().await {
        let store = fixture.store.clone();
        let id = Uuid::new_v4();
        let events = vec![
            NewEvent::new(LoanEventV1::Opened {
                member: "ada".into(),
            }),
            NewEvent::new(LoanEvent::Extended { days: 7 }),
            NewEvent::new(LoanEventV1::Closed {}),
        ];
        store
            .append_events(id, "Loan", events, ExpectedVersion::NoStream)
            .await
            .unwrap();
        let stored = store
            .get_events(id, "Loan", GetEventsOptions::default())
            .await
            .unwrap()
            .events;
        let read: Vec<LoanEvent> = stored
            .iter()
            .map(|e| e.event::<LoanEvent>().unwrap().clone())
            .collect();
        assert_eq!(
            read,
            [
                LoanEvent::Opened {
                    member: "ada".into(),
                    days: 14
                },
                LoanEvent::Extended { days: 7 },
                LoanEvent::Closed {},
            ],
            "{name}"
        );
        let versions: Vec<u32> = stored.iter().map(|e| e.envelope.event_version).collect();
        assert_eq!(versions, [1, 2, 1], "{name}: rows keep their versions");
        let loan = AggregateRepository::<Loan>::new(store.clone())
            .load(id)
            .await
            .unwrap();
        let state = loan.state();
        assert_eq!(
            (state.member.as_str(), state.days, state.open),
            ("ada", 21, false),
            "{name}"
        );
    }
}
