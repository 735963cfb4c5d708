use eventsource::{aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Deposited {
    amount: f64,
}

#[derive(Debug, Default)]
struct Account {
    balance: f64,
}

use uuid::Uuid;

struct Ledger {
    id: Uuid,
    total: f64,
}

#[aggregate(name = "Ledger", snapshot_version = 3)]
impl Ledger {
    #[init]
    fn new(id: Uuid) -> Self {
        Ledger { id, total: 0.0 }
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) -> () {
        self.total += e.amount;
        let _ = self.id;
    }
}

const _: () = assert!(<Ledger as eventsource::Aggregate>::SNAPSHOT_VERSION == 3);

fn _unused(_: Account) {}

fn main() {}
