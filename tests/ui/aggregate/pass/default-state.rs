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
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    /// Ordinary methods stay as they are.
    pub fn balance(&self) -> f64 {
        self.balance
    }
}

fn _use(root: &mut eventsource::AggregateRoot<Account>) -> f64 {
    root.apply_event(Deposited { amount: 1.0 });
    root.state().balance()
}

fn main() {}
