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

#[aggregate(name = "Account")]
impl Account {
    #[apply]
    fn deposited(&self, e: &Deposited) {
        let _ = e.amount + self.balance;
    }
}

fn main() {}
