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

use eventsource::AggregateRoot;

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Withdrawn {
    amount: f64,
}

#[aggregate(name = "Account")]
impl Account {
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

fn withdraw(account: &mut AggregateRoot<Account>) {
    account.apply_event(Withdrawn { amount: 1.0 });
}

fn main() {}
