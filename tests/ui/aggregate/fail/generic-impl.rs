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

struct Wallet<T> {
    coins: Vec<T>,
}

#[aggregate(name = "Wallet")]
impl<T> Wallet<T> {
    #[apply]
    fn deposited(&mut self, _e: &Deposited) {
        let _ = &self.coins;
    }
}

fn main() {}
