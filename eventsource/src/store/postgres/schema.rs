//! Schema creation on PostgreSQL.

use super::{db_error, PostgresEventStore};
use crate::error::{Error, Result};
use crate::store::schema_state::Need;

const SCHEMA: &str = include_str!("schema.sql");

/// The tables `initialize` creates.
const TABLES: [&str; 5] = [
    "events",
    "event_outbox",
    "projection_checkpoints",
    "dead_letter_queue",
    "snapshots",
];

/// Columns the `events` table must have for this store to use it.
pub(super) const REQUIRED_COLUMNS: [&str; 15] = [
    "global_position",
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "event_version",
    "tenant_id",
    "actor_id",
    "version",
    "timestamp",
    "payload",
    "metadata",
    "correlation_id",
    "causation_id",
    "created_at",
];

pub(super) async fn initialize(store: &PostgresEventStore) -> Result<()> {
    let span =
        tracing::debug_span!("initialize", backend = "postgres", schema = %store.tables.schema);
    tracing::Instrument::instrument(initialize_schema(store), span).await
}

async fn initialize_schema(store: &PostgresEventStore) -> Result<()> {
    store.ensure_open()?;
    const OP: &str = "initialize";
    let mut tx = store.pool.begin().await.map_err(db_error(OP))?;
    // `CREATE ... IF NOT EXISTS` is not safe against itself running at the same moment in
    // another session: serialize initializations of this schema.
    lock_schema(&mut tx, store).await?;
    let ddl = SCHEMA.replace("__SCHEMA__", &format!("\"{}\"", store.tables.schema));
    let (tables, indexes) = ddl.split_once("-- @indexes").unwrap_or((&ddl, ""));
    // When everything exists, run no DDL at all: an application role without CREATE
    // rights can then call `initialize()` at every start, and appends are not blocked by
    // the lock `CREATE INDEX` takes even when the index exists.
    let index_names: Vec<&str> = indexes
        .lines()
        .filter_map(|line| line.strip_prefix("CREATE INDEX IF NOT EXISTS "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let (have_tables, have_indexes, have_columns): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM pg_tables WHERE schemaname = $1 AND tablename = ANY($2)), \
                (SELECT COUNT(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = ANY($3)), \
                (SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = $1 \
                     AND table_name = 'event_outbox' AND column_name = 'claimed_until')",
    )
    .bind(&store.tables.schema)
    .bind(&TABLES[..])
    .bind(&index_names)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    let complete = have_tables == TABLES.len() as i64
        && have_indexes == index_names.len() as i64
        && have_columns == 1;
    if !complete {
        sqlx::raw_sql(tables)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    }
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'events'",
    )
    .bind(&store.tables.schema)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !columns.iter().any(|have| have == c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::SchemaMismatch {
            table: format!("{}.events", store.tables.schema),
            detail: format!(
                "missing columns {}; this table is not an eventsource event store",
                missing.join(", ")
            ),
        });
    }
    if !complete {
        sqlx::raw_sql(indexes)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    }
    if !append_function_exists(&mut tx, store).await? {
        sqlx::raw_sql(&super::append_function::append_function(&store.tables))
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    }
    if store.outbox && !trigger_exists(&mut tx, store).await? {
        sqlx::raw_sql(&outbox_trigger(store))
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    }
    tx.commit().await.map_err(db_error(OP))?;
    store
        .append_function_missing
        .store(false, std::sync::atomic::Ordering::Release);
    if store.outbox {
        store
            .outbox_pending
            .store(false, std::sync::atomic::Ordering::Release);
    }
    store.refresh_schema().await
}

/// The outbox, kept by the database itself: every row inserted into `events`, by any
/// handle, process or tool, gets its `event_outbox` entry in the same transaction. A
/// migration (`eventsource.importing` set in its transaction) copies history without
/// queueing it for publishing again.
fn outbox_trigger(store: &PostgresEventStore) -> String {
    let schema = &store.tables.schema;
    format!(
        "CREATE OR REPLACE FUNCTION \"{schema}\".eventsource_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             IF current_setting('eventsource.importing', true) IS DISTINCT FROM 'on' THEN \
                 INSERT INTO {outbox} (event_id, event_type, aggregate_id, aggregate_type, tenant_id, \
                     global_position, event_data, created_at, status) \
                 VALUES (NEW.event_id, NEW.event_type, NEW.aggregate_id, NEW.aggregate_type, NEW.tenant_id, \
                     NEW.global_position, NEW.payload, NEW.created_at, 'pending'); \
             END IF; \
             RETURN NULL; \
         END $$; \
         CREATE TRIGGER eventsource_outbox AFTER INSERT ON {events} \
             FOR EACH ROW EXECUTE FUNCTION \"{schema}\".eventsource_outbox();",
        outbox = store.tables.outbox,
        events = store.tables.events,
    )
}

/// `true` when the schema has this version's append function.
async fn append_function_exists(
    conn: &mut sqlx::PgConnection,
    store: &PostgresEventStore,
) -> Result<bool> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 18",
    )
    .bind(&store.tables.schema)
    .bind(super::append_function::APPEND_FUNCTION)
    .fetch_optional(conn)
    .await
    .map_err(db_error("initialize"))?;
    Ok(found.is_some())
}

async fn trigger_exists(conn: &mut sqlx::PgConnection, store: &PostgresEventStore) -> Result<bool> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'events' AND tg.tgname = 'eventsource_outbox'",
    )
    .bind(&store.tables.schema)
    .fetch_optional(conn)
    .await
    .map_err(db_error("outbox_enabled"))?;
    Ok(found.is_some())
}

/// Turns the schema's outbox on (idempotent; serialized with `initialize` and other
/// handles doing the same).
pub(super) async fn enable_outbox(store: &PostgresEventStore) -> Result<()> {
    const OP: &str = "enable_outbox";
    store.ready(Need::Table("event_outbox")).await?;
    let mut tx = store.pool.begin().await.map_err(db_error(OP))?;
    match create_outbox_trigger(&mut tx, store).await {
        Ok(()) => tx.commit().await.map_err(db_error(OP)),
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Creates the outbox trigger unless it exists, under the schema lock.
async fn create_outbox_trigger(
    conn: &mut sqlx::PgConnection,
    store: &PostgresEventStore,
) -> Result<()> {
    lock_schema(&mut *conn, store).await?;
    if !trigger_exists(&mut *conn, store).await? {
        let ddl = outbox_trigger(store);
        // Through `Executor::execute` (a boxed future): `RawSql::execute`, a generic
        // async fn, keeps the append future from being provably `Send`.
        sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&ddl))
            .await
            .map_err(db_error("enable_outbox"))?;
    }
    Ok(())
}

/// The lock that serializes schema changes of one schema (not the append lock).
async fn lock_schema(conn: &mut sqlx::PgConnection, store: &PostgresEventStore) -> Result<()> {
    let (class, object) = store.tables.append_lock;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(class)
        .bind(object.wrapping_add(1))
        .execute(conn)
        .await
        .map_err(db_error("initialize"))?;
    Ok(())
}

/// Turns the schema's outbox off (idempotent).
pub(super) async fn disable_outbox(store: &PostgresEventStore) -> Result<()> {
    store.ready(Need::ReadEvents).await?;
    sqlx::raw_sql(&format!(
        "DROP TRIGGER IF EXISTS eventsource_outbox ON {}",
        store.tables.events
    ))
    .execute(&store.pool)
    .await
    .map_err(db_error("disable_outbox"))?;
    Ok(())
}

/// `true` when the schema keeps an outbox.
pub(super) async fn outbox_enabled(store: &PostgresEventStore) -> Result<bool> {
    store.ensure_open()?;
    let mut conn = store
        .pool
        .acquire()
        .await
        .map_err(db_error("outbox_enabled"))?;
    trigger_exists(&mut conn, store).await
}
