//! The seeds' bank account, as a test domain: events, state, aggregate and commands.

use eventsource::prelude::*;
use eventsource::AggregateRoot;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
pub struct AccountOpened {
    pub owner_name: String,
    pub initial_balance: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
pub struct MoneyDeposited {
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Account")]
pub struct MoneyWithdrawn {
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    pub account_id: Uuid,
    pub owner_name: String,
    pub balance: f64,
    pub is_open: bool,
    pub transactions: u64,
}

#[aggregate(name = "Account")]
impl AccountState {
    #[init]
    fn new(account_id: Uuid) -> Self {
        AccountState {
            account_id,
            owner_name: String::new(),
            balance: 0.0,
            is_open: false,
            transactions: 0,
        }
    }

    #[apply]
    fn opened(&mut self, e: &AccountOpened) {
        self.owner_name.clone_from(&e.owner_name);
        self.balance = e.initial_balance;
        self.is_open = true;
    }

    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
        self.transactions += 1;
    }

    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount;
        self.transactions += 1;
    }
}

#[derive(Debug, PartialEq)]
pub enum AccountError {
    AlreadyOpen,
    NotOpen,
    NotPositive,
    InsufficientFunds { balance: f64, requested: f64 },
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::AlreadyOpen => f.write_str("account already exists"),
            AccountError::NotOpen => f.write_str("account not open"),
            AccountError::NotPositive => f.write_str("amount must be positive"),
            AccountError::InsufficientFunds { balance, requested } => {
                write!(
                    f,
                    "insufficient funds: balance {balance:.2}, requested {requested:.2}"
                )
            }
        }
    }
}

impl std::error::Error for AccountError {}

/// Commands on the account: validate, then apply.
pub trait AccountCommands {
    fn open(&mut self, owner_name: &str, initial_balance: f64) -> Result<(), AccountError>;
    fn deposit(&mut self, amount: f64) -> Result<(), AccountError>;
    fn withdraw(&mut self, amount: f64) -> Result<(), AccountError>;
}

impl AccountCommands for AggregateRoot<AccountState> {
    fn open(&mut self, owner_name: &str, initial_balance: f64) -> Result<(), AccountError> {
        if self.version() > 0 {
            return Err(AccountError::AlreadyOpen);
        }
        if initial_balance < 0.0 {
            return Err(AccountError::NotPositive);
        }
        self.apply_event(AccountOpened {
            owner_name: owner_name.to_owned(),
            initial_balance,
        });
        Ok(())
    }

    fn deposit(&mut self, amount: f64) -> Result<(), AccountError> {
        if !self.state().is_open {
            return Err(AccountError::NotOpen);
        }
        if amount <= 0.0 {
            return Err(AccountError::NotPositive);
        }
        self.apply_event(MoneyDeposited { amount });
        Ok(())
    }

    fn withdraw(&mut self, amount: f64) -> Result<(), AccountError> {
        if !self.state().is_open {
            return Err(AccountError::NotOpen);
        }
        if amount <= 0.0 {
            return Err(AccountError::NotPositive);
        }
        if amount > self.state().balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.state().balance,
                requested: amount,
            });
        }
        self.apply_event(MoneyWithdrawn { amount });
        Ok(())
    }
}
