use eventsource::sqlx::{PgConnection, SqliteConnection};
use eventsource::{projection, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Created {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Renamed {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Removed {}

#[derive(Debug, Default)]
struct TaskTable;

// One handler writes through the transaction, one does not, one takes another backend's.
#[projection]
impl TaskTable {
    #[handles]
    async fn created(&mut self, _e: &Created, _conn: &mut SqliteConnection) {}

    #[handles]
    async fn renamed(&mut self, _e: &Renamed) {}

    #[handles]
    async fn removed(&mut self, _e: &Removed, _conn: &mut PgConnection) {}
}

#[derive(Debug, Default)]
struct Titles;

// The handlers write through the transaction; the reset does not.
#[projection]
impl Titles {
    #[handles]
    async fn created(&mut self, _e: &Created, _conn: &mut SqliteConnection) {}

    #[reset]
    async fn clear(&mut self) {}
}

fn main() {}
