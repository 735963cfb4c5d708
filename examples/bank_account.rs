//! The seeds' bank account ("Repository Pattern Usage"): an aggregate with commands that
//! validate and then apply, saved to and loaded from a SQLite file.
//!
//! Run with: `cargo run --example bank_account [DATABASE_FILE]`
//! (default: a fresh `bank.db` in the system temp directory).

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventsource::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// Events
#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
struct AccountOpened {
    owner_name: String,
    initial_balance: f64,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
struct MoneyDeposited {
    amount: f64,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
struct MoneyWithdrawn {
    amount: f64,
}

// State
#[derive(Debug)]
struct AccountState {
    account_id: Uuid,
    owner_name: String,
    balance: f64,
    is_open: bool,
}

// Aggregate: how each event changes the state.
#[aggregate(name = "Account")]
impl AccountState {
    #[init]
    fn new(account_id: Uuid) -> Self {
        AccountState {
            account_id,
            owner_name: String::new(),
            balance: 0.0,
            is_open: false,
        }
    }

    #[apply]
    fn opened(&mut self, event: &AccountOpened) {
        self.owner_name.clone_from(&event.owner_name);
        self.balance = event.initial_balance;
        self.is_open = true;
    }

    #[apply]
    fn deposited(&mut self, event: &MoneyDeposited) {
        self.balance += event.amount;
    }

    #[apply]
    fn withdrawn(&mut self, event: &MoneyWithdrawn) {
        self.balance -= event.amount;
    }
}

/// Why a command was refused.
#[derive(Debug)]
enum AccountError {
    AlreadyExists,
    NegativeInitialBalance,
    NotOpen,
    NotPositive,
    InsufficientFunds { balance: f64, requested: f64 },
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::AlreadyExists => f.write_str("Account already exists"),
            AccountError::NegativeInitialBalance => {
                f.write_str("Initial balance cannot be negative")
            }
            AccountError::NotOpen => f.write_str("Account not open"),
            AccountError::NotPositive => f.write_str("Amount must be positive"),
            AccountError::InsufficientFunds { balance, requested } => {
                write!(
                    f,
                    "Insufficient funds (balance ${balance:.2}, requested ${requested:.2})"
                )
            }
        }
    }
}

impl Error for AccountError {}

// Commands: methods of the state that decide the event (or refuse); `execute` applies it.
impl AccountState {
    fn open(&self, owner_name: &str, initial_balance: f64) -> Result<AccountOpened, AccountError> {
        if self.is_open {
            return Err(AccountError::AlreadyExists);
        }
        if initial_balance < 0.0 {
            return Err(AccountError::NegativeInitialBalance);
        }
        Ok(AccountOpened {
            owner_name: owner_name.to_owned(),
            initial_balance,
        })
    }

    fn deposit(&self, amount: f64) -> Result<MoneyDeposited, AccountError> {
        if !self.is_open {
            return Err(AccountError::NotOpen);
        }
        if amount <= 0.0 {
            return Err(AccountError::NotPositive);
        }
        Ok(MoneyDeposited { amount })
    }

    fn withdraw(&self, amount: f64) -> Result<MoneyWithdrawn, AccountError> {
        if !self.is_open {
            return Err(AccountError::NotOpen);
        }
        if amount <= 0.0 {
            return Err(AccountError::NotPositive);
        }
        if amount > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(MoneyWithdrawn { amount })
    }
}

async fn run(db: &Path, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(db).await?;
    store.initialize().await?;
    let repo = AggregateRepository::<AccountState>::new(Arc::new(store.clone()));

    // Open new account
    let account_id = Uuid::new_v4();
    let mut account = repo.create_new(account_id);
    account.execute(|a| a.open("Alice Smith", 100.00))?;
    repo.save(&mut account).await?;
    writeln!(
        out,
        "Opened account {} with balance ${:.2}",
        account.state().account_id,
        account.state().balance
    )?;

    // Make transactions
    let mut account = repo.load(account_id).await?;
    account.execute(|a| a.deposit(50.00))?;
    account.execute(|a| a.withdraw(25.00))?;
    repo.save(&mut account).await?;

    // Insufficient funds are refused before anything is recorded. (`repo.execute` loads,
    // decides, saves, and decides again on a conflict with another writer.)
    match repo.execute(account_id, |a| a.withdraw(1_000.00)).await {
        Err(CommandError::Rejected(refused)) => writeln!(out, "Withdrawal refused: {refused}")?,
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    // Check final state
    let account = repo.load(account_id).await?;
    writeln!(out, "Final balance: ${:.2}", account.state().balance)?;
    writeln!(out, "Total events: {}", account.version())?;
    assert_eq!(account.state().owner_name, "Alice Smith");
    store.close().await;
    Ok(())
}

fn database_path() -> PathBuf {
    match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let path = std::env::temp_dir()
                .join("eventsource-examples")
                .join("bank.db");
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
            path
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let db = database_path();
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    run(&db, &mut std::io::stdout()).await
}

#[cfg(test)]
mod tests {
    use eventsource::testing::AggregateTest;
    use eventsource_tests::example_support::mask_uuids;

    use super::*;

    fn opened(initial_balance: f64) -> AccountOpened {
        AccountOpened {
            owner_name: "Alice Smith".into(),
            initial_balance,
        }
    }

    #[test]
    fn commands_decide_from_the_state() {
        AggregateTest::<AccountState>::given_no_events()
            .when(|a| a.open("Alice Smith", 100.0))
            .then_expect(opened(100.0));
        AggregateTest::<AccountState>::given(opened(100.0))
            .when(|a| a.open("Bob", 5.0))
            .then_refused();
        let account =
            AggregateTest::<AccountState>::given((opened(100.0), MoneyDeposited { amount: 50.0 }))
                .when(|a| a.withdraw(25.0))
                .then_expect(MoneyWithdrawn { amount: 25.0 });
        assert_eq!(account.state().balance, 125.0);
        let refused = AggregateTest::<AccountState>::given(opened(10.0))
            .when(|a| a.withdraw(25.0))
            .then_refused();
        assert_eq!(
            refused.to_string(),
            "Insufficient funds (balance $10.00, requested $25.00)"
        );
        AggregateTest::<AccountState>::given_no_events()
            .when(|a| a.deposit(5.0))
            .then_refused();
    }

    /// The example's event types match its lock (`examples/locks/bank_account.lock`);
    /// `EVENTSOURCE_UPDATE_LOCK=1` rewrites it after an intended change.
    #[test]
    fn events_lock_matches() {
        eventsource_tests::example_support::assert_example_lock(
            "bank_account",
            env!("CARGO_CRATE_NAME"),
        );
    }

    #[tokio::test]
    async fn prints_what_the_seed_prints() {
        let dir = eventsource_tests::example_support::TempDir::new();
        let mut out = Vec::new();
        super::run(&dir.file("bank.db"), &mut out).await.unwrap();
        assert_eq!(
            mask_uuids(&String::from_utf8(out).unwrap()),
            "Opened account [UUID] with balance $100.00
Withdrawal refused: Insufficient funds (balance $125.00, requested $1000.00)
Final balance: $125.00
Total events: 3
"
        );
    }
}
