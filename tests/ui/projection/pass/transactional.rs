use eventsource::sqlx::{self, SqliteConnection};
use eventsource::{projection, DomainEvent, EventContext, TransactionalProjection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Created {
    title: String,
}

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
struct Removed {}

#[derive(Debug, Default)]
struct TaskTable;

#[projection(name = "tasks")]
impl TaskTable {
    #[handles]
    async fn created(
        &mut self,
        e: &Created,
        ctx: &EventContext<'_>,
        conn: &mut SqliteConnection,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO tasks (id, title) VALUES (?, ?)")
            .bind(ctx.aggregate_id().to_string())
            .bind(&e.title)
            .execute(conn)
            .await
            .map(|_| ())
    }

    // The connection may come first, and the context may be left out.
    #[handles]
    async fn removed(&mut self, _e: &Removed, conn: &mut SqliteConnection) {
        let _ = conn;
    }

    #[reset]
    async fn clear(&mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM tasks").execute(conn).await.map(|_| ())
    }
}

fn assert_transactional<P: TransactionalProjection<SqliteConnection>>(p: &P) -> &str {
    p.name()
}

fn main() {
    assert_eq!(assert_transactional(&TaskTable), "tasks");
    assert_eq!(
        TransactionalProjection::<SqliteConnection>::handled_event_types(&TaskTable),
        ["Created", "Removed"]
    );
}
