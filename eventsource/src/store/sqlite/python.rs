//! Databases shared with eventsource-py, both ways. eventsource-py rebuilds each event
//! from its payload JSON alone (`model_validate(json.loads(payload))`), so its payloads
//! repeat the envelope: a Rust append to a database it reads writes the same form. The
//! choice is a setting of the database (the `eventsource_settings` table), made by
//! `initialize()` on a database eventsource-py created, or by
//! [`SqliteEventStore::set_payload_format`].

use std::sync::atomic::Ordering;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::timestamp::format_timestamp;
use super::{db_error, SqliteEventStore};
use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::store::schema_state::Need;

/// How a SQLite store writes payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadFormat {
    /// The event's own JSON; the envelope lives in its columns. The default for
    /// databases this library creates.
    #[default]
    Lean,
    /// The event's JSON with eventsource-py's envelope fields added (`event_id`,
    /// `event_type`, `event_version`, `occurred_at`, `aggregate_id`, `aggregate_type`,
    /// `aggregate_version`, `tenant_id`, `actor_id`, `correlation_id`, `causation_id`,
    /// `metadata`), so that eventsource-py reads Rust appends. The envelope columns are
    /// written as well, and this library reads such rows as it reads its own (event
    /// types read their fields and ignore the rest, unless they `deny_unknown_fields`).
    EventsourcePy,
}

/// The settings table, and the name of the payload format's row.
const SETTINGS: &str =
    "CREATE TABLE IF NOT EXISTS eventsource_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)";
const FORMAT_SETTING: &str = "payload_format";
const PYTHON: &str = "eventsource-py";
const LEAN: &str = "lean";

/// The envelope fields of eventsource-py's `DomainEvent`, which its payloads carry.
pub(super) const ENVELOPE_FIELDS: [&str; 12] = [
    "event_id",
    "event_type",
    "event_version",
    "occurred_at",
    "aggregate_id",
    "aggregate_type",
    "aggregate_version",
    "tenant_id",
    "actor_id",
    "correlation_id",
    "causation_id",
    "metadata",
];

/// Records `format` in the database, inside `conn`'s transaction or on its own.
pub(super) async fn write_format(
    conn: &mut sqlx::SqliteConnection,
    format: PayloadFormat,
) -> Result<()> {
    const OP: &str = "set_payload_format";
    sqlx::raw_sql(SETTINGS)
        .execute(&mut *conn)
        .await
        .map_err(db_error(OP))?;
    match format {
        PayloadFormat::EventsourcePy => {
            sqlx::query("INSERT OR REPLACE INTO eventsource_settings (name, value) VALUES (?, ?)")
                .bind(FORMAT_SETTING)
                .bind(PYTHON)
                .execute(&mut *conn)
                .await
        }
        PayloadFormat::Lean => {
            sqlx::query("INSERT OR REPLACE INTO eventsource_settings (name, value) VALUES (?, ?)")
                .bind(FORMAT_SETTING)
                .bind(LEAN)
                .execute(&mut *conn)
                .await
        }
    }
    .map_err(db_error(OP))?;
    Ok(())
}

/// The format the database records (lean when it records none).
pub(super) async fn read_format(store: &SqliteEventStore) -> Result<PayloadFormat> {
    let value: Option<String> = if store.schema_has_table("eventsource_settings") {
        sqlx::query_scalar("SELECT value FROM eventsource_settings WHERE name = ?")
            .bind(FORMAT_SETTING)
            .fetch_optional(&store.pool)
            .await
            .map_err(db_error("check_schema"))?
    } else {
        None
    };
    match value.as_deref() {
        None | Some(LEAN) => Ok(PayloadFormat::Lean),
        Some(PYTHON) => Ok(PayloadFormat::EventsourcePy),
        Some(other) => Err(Error::SchemaMismatch {
            table: "eventsource_settings".into(),
            detail: format!("unknown payload_format `{other}`"),
        }),
    }
}

impl SqliteEventStore {
    /// How this store writes payloads: [`PayloadFormat::EventsourcePy`] on a database
    /// eventsource-py created (set by [`initialize`](Self::initialize)) or set so.
    pub fn payload_format(&self) -> PayloadFormat {
        if self.python_payloads.load(Ordering::Acquire) {
            PayloadFormat::EventsourcePy
        } else {
            PayloadFormat::Lean
        }
    }

    /// Records how appends write payloads, in the database: every handle opened on it
    /// afterwards (and this one) writes that way. Handles already open elsewhere keep
    /// what they read at open.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::SchemaNotInitialized`], database errors.
    pub async fn set_payload_format(&self, format: PayloadFormat) -> Result<()> {
        const OP: &str = "set_payload_format";
        self.ready(OP, Need::WriteEvents, true).await?;
        let mut conn = self.pool.acquire().await.map_err(db_error(OP))?;
        write_format(&mut conn, format).await?;
        self.python_payloads
            .store(format == PayloadFormat::EventsourcePy, Ordering::Release);
        Ok(())
    }
}

/// `payload` (the event's own JSON) with eventsource-py's envelope fields, for the event
/// at `version` of the stream.
///
/// # Errors
/// [`Error::InvalidInput`] when the payload is not a JSON object, or has a field that an
/// envelope field would overwrite.
pub(super) fn python_payload(
    event: &NewEvent,
    payload: &str,
    aggregate_id: Uuid,
    aggregate_type: &str,
    version: u64,
) -> Result<String> {
    let invalid = |message: String| Error::InvalidInput { message };
    let mut object: Map<String, Value> = match serde_json::from_str(payload) {
        Ok(Value::Object(object)) => object,
        _ => {
            return Err(invalid(format!(
                "event `{}`: eventsource-py payloads are JSON objects",
                event.event_type()
            )))
        }
    };
    if let Some(field) = ENVELOPE_FIELDS.iter().find(|f| object.contains_key(**f)) {
        return Err(invalid(format!(
            "event `{}` has a field `{field}`, which eventsource-py keeps for its envelope",
            event.event_type()
        )));
    }
    let uuid = |id: Option<Uuid>| id.map_or(Value::Null, |id| Value::String(id.to_string()));
    object.insert("event_id".into(), event.event_id.to_string().into());
    object.insert("event_type".into(), event.event_type().into());
    object.insert("event_version".into(), event.event_version().into());
    object.insert(
        "occurred_at".into(),
        format_timestamp(event.timestamp).into(),
    );
    object.insert("aggregate_id".into(), aggregate_id.to_string().into());
    object.insert("aggregate_type".into(), aggregate_type.into());
    object.insert("aggregate_version".into(), version.into());
    object.insert("tenant_id".into(), uuid(event.tenant_id));
    object.insert(
        "actor_id".into(),
        event.actor_id.clone().map_or(Value::Null, Value::String),
    );
    // eventsource-py requires a correlation id (it makes one when the field is absent).
    if let Some(correlation) = event.correlation_id {
        object.insert("correlation_id".into(), correlation.to_string().into());
    }
    object.insert("causation_id".into(), uuid(event.causation_id));
    object.insert("metadata".into(), Value::Object(event.metadata.clone()));
    serde_json::to_string(&object).map_err(|source| Error::Serialization {
        event_type: event.event_type().to_owned(),
        source,
    })
}

/// In `initialize`: records the eventsource-py form when the database is eventsource-py's
/// and no format was chosen yet: its `events` table lacked this library's columns
/// (`had_metadata` is `false`), or its first row was written by eventsource-py (a
/// database an earlier version of this library initialized).
pub(super) async fn detect(conn: &mut sqlx::SqliteConnection, had_metadata: bool) -> Result<()> {
    const OP: &str = "initialize";
    sqlx::raw_sql(SETTINGS)
        .execute(&mut *conn)
        .await
        .map_err(db_error(OP))?;
    let chosen: Option<String> =
        sqlx::query_scalar("SELECT value FROM eventsource_settings WHERE name = ?")
            .bind(FORMAT_SETTING)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error(OP))?;
    if chosen.is_some() {
        return Ok(());
    }
    let python = !had_metadata || {
        let first: Option<bool> = sqlx::query_scalar(
            "SELECT metadata IS NULL FROM events ORDER BY global_position LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error(OP))?;
        first.unwrap_or(false)
    };
    if python {
        tracing::info!("an eventsource-py database: appends write its payload form");
        write_format(conn, PayloadFormat::EventsourcePy).await?;
    }
    Ok(())
}

/// Refuses, before any lock, events that eventsource-py's payload form would make
/// unreadable here: a type that denies unknown fields could not read its own payload
/// with the envelope fields added.
///
/// # Errors
/// [`Error::InvalidInput`] naming the type.
pub(super) fn check_batch(registry: &crate::EventRegistry, events: &[NewEvent]) -> Result<()> {
    match events
        .iter()
        .find(|e| registry.denies_unknown_fields(e.event_type(), e.event_version()))
    {
        Some(event) => Err(Error::InvalidInput {
            message: format!(
                "event `{}` denies unknown fields, so it could not be read back from an \
                 eventsource-py payload (which adds the envelope fields): drop \
                 deny_unknown_fields, or use PayloadFormat::Lean",
                event.event_type()
            ),
        }),
        None => Ok(()),
    }
}
