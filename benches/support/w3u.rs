//! W3u rehydrate-upcast (see `../shared/WORKLOADS.md`): W3 with every event stored as
//! version 1 (`note`) and read through the upcasting chain as version 2 (`memo`).
//! Reported as its ratio to W3 through the framework in the same run.

use std::sync::Arc;

use eventsource::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{measure, BoxResult, Sample};

/// v1, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[event(name = "LedgerCredited", aggregate = "Ledger", version = 1)]
pub struct LedgerCreditedV1 {
    pub amount: f64,
    pub note: String,
}

/// v2, as read: `note` renamed `memo`.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[event(
    name = "LedgerCredited",
    aggregate = "Ledger",
    version = 2,
    previous = LedgerCreditedV1
)]
pub struct LedgerCredited {
    pub amount: f64,
    pub memo: String,
}

impl From<LedgerCreditedV1> for LedgerCredited {
    fn from(v1: LedgerCreditedV1) -> Self {
        LedgerCredited {
            amount: v1.amount,
            memo: v1.note,
        }
    }
}

/// The aggregate, which applies v2 only.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub balance: f64,
    pub credits: u64,
}

#[aggregate(name = "Ledger")]
impl Ledger {
    #[apply]
    fn credited(&mut self, event: &LedgerCredited) {
        self.balance += event.amount;
        self.credits += 1;
    }
}

/// W3u through the framework: `events` v1 events in one stream, loaded `loads` times.
pub async fn framework(
    store: Arc<dyn EventStore>,
    events: usize,
    loads: usize,
) -> BoxResult<Sample> {
    let id = Uuid::new_v4();
    for batch in 0..events / 100 {
        let batch_events = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                NewEvent::new(LedgerCreditedV1 {
                    amount: n as f64 * 0.01,
                    note: format!("note-{n:027}"),
                })
            })
            .collect();
        store
            .append_events(
                id,
                "Ledger",
                batch_events,
                ExpectedVersion::from(batch as u64 * 100),
            )
            .await?;
    }
    let repo = AggregateRepository::<Ledger>::new(store);
    measure(events / 100 * 100 * loads, || async {
        for _ in 0..loads {
            let ledger = repo.load(id).await?;
            if ledger.state().credits != (events / 100 * 100) as u64 {
                return Err("wrong state".into());
            }
        }
        Ok(())
    })
    .await
}
