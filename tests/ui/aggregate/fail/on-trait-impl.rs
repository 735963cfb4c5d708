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

trait Ledger {
    fn deposited(&mut self, e: &Deposited);
}

#[aggregate(name = "Account")]
impl Ledger for Account {
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

fn main() {}
