//! Writing events read from another store verbatim: same event ids, global positions,
//! stream versions, timestamps and metadata (the migration's write side).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{db_error, is_unique_violation, to_i64, to_u64, PostgresEventStore};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::store::schema_state::Need;
use crate::stored::StoredEvent;

/// What [`PostgresEventStore::import`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Imported {
    /// Events written.
    pub(crate) copied: u64,
    /// Events already there (same id at the same position), left alone.
    pub(crate) skipped: u64,
}

impl PostgresEventStore {
    /// Writes `events` (in global order) at their own global positions, in one
    /// transaction, skipping the ids already stored at the same position, and moves the
    /// position sequence past them so later appends follow.
    ///
    /// # Errors
    /// [`Error::Migration`] when an id is stored at another position, or a position or
    /// stream version is taken by another event; database errors.
    ///
    /// `payloads[i]` is the JSON text of `events[i]`'s payload as the source stored it
    /// (copied as text, so numbers keep every digit).
    pub(crate) async fn import(
        &self,
        events: &[StoredEvent],
        payloads: &[String],
    ) -> Result<Imported> {
        const OP: &str = "import";
        self.ready(Need::WriteEvents).await?;
        let mut tx = self.begin_append().await?;
        match self.import_in(&mut tx, events, payloads).await {
            Ok(imported) => {
                tx.commit().await.map_err(db_error(OP))?;
                Ok(imported)
            }
            Err(error) => {
                // Ended here: the append lock is released at once.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    /// The statements of one import batch, inside its transaction.
    async fn import_in(
        &self,
        tx: &mut sqlx::PgConnection,
        events: &[StoredEvent],
        payloads: &[String],
    ) -> Result<Imported> {
        const OP: &str = "import";
        self.lock_appends(&mut *tx).await?;
        // History is copied, not appended: an outbox trigger leaves it alone.
        sqlx::query("SELECT set_config('eventsource.importing', 'on', true)")
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        let ids: Vec<Uuid> = events.iter().map(StoredEvent::event_id).collect();
        let rows = sqlx::query(&format!(
            "SELECT event_id, global_position FROM {} WHERE event_id = ANY($1)",
            self.tables.events
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        let mut present = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get(0).map_err(db_error(OP))?;
            let position: i64 = row.try_get(1).map_err(db_error(OP))?;
            present.insert(id, to_u64(position));
        }
        let mut fresh = Vec::with_capacity(events.len());
        let mut fresh_payloads = Vec::with_capacity(events.len());
        for (event, payload) in events.iter().zip(payloads) {
            match present.get(&event.event_id()) {
                None => {
                    fresh.push(event);
                    fresh_payloads.push(payload.as_str());
                }
                Some(&at) if at == event.global_position => {}
                Some(&at) => {
                    return Err(Error::Migration {
                        message: format!(
                            "event {} is at position {at} in the target but {} in the source",
                            event.event_id(),
                            event.global_position
                        ),
                    })
                }
            }
        }
        let skipped = (events.len() - fresh.len()) as u64;
        if fresh.is_empty() {
            return Ok(Imported { copied: 0, skipped });
        }
        let mut metadata = Vec::with_capacity(fresh.len());
        for event in &fresh {
            metadata.push(
                serde_json::to_string(&event.envelope.metadata).map_err(|source| {
                    Error::Serialization {
                        event_type: event.event_type().to_owned(),
                        source,
                    }
                })?,
            );
        }
        let column = |f: fn(&StoredEvent) -> Option<Uuid>| -> Vec<Option<Uuid>> {
            fresh.iter().map(|e| f(e)).collect()
        };
        let positions: Vec<i64> = fresh.iter().map(|e| to_i64(e.global_position)).collect();
        let event_ids: Vec<Uuid> = fresh.iter().map(|e| e.event_id()).collect();
        let aggregate_ids: Vec<Uuid> = fresh.iter().map(|e| e.aggregate_id()).collect();
        let aggregate_types: Vec<&str> = fresh.iter().map(|e| e.aggregate_type()).collect();
        let event_types: Vec<&str> = fresh.iter().map(|e| e.event_type()).collect();
        let type_versions: Vec<i32> = fresh
            .iter()
            .map(|e| i32::try_from(e.envelope.event_version).unwrap_or(i32::MAX))
            .collect();
        let actors: Vec<Option<&str>> = fresh
            .iter()
            .map(|e| e.envelope.actor_id.as_deref())
            .collect();
        let versions: Vec<i64> = fresh.iter().map(|e| to_i64(e.stream_position)).collect();
        let timestamps: Vec<DateTime<Utc>> = fresh.iter().map(|e| e.envelope.timestamp).collect();
        let stored_at: Vec<DateTime<Utc>> = fresh.iter().map(|e| e.stored_at).collect();
        let sql = format!(
            "INSERT INTO {} (global_position, event_id, aggregate_id, aggregate_type, event_type, \
                 event_version, tenant_id, actor_id, version, timestamp, payload, metadata, \
                 correlation_id, causation_id, created_at) \
             OVERRIDING SYSTEM VALUE \
             SELECT e.position, e.id, e.aggregate_id, e.aggregate_type, e.type, e.type_version, \
                 e.tenant, e.actor, e.version, e.at, e.payload::jsonb, e.metadata::jsonb, \
                 e.correlation, e.causation, e.stored_at \
             FROM UNNEST($1::int8[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int4[], \
                 $7::uuid[], $8::text[], $9::int8[], $10::timestamptz[], $11::text[], $12::text[], \
                 $13::uuid[], $14::uuid[], $15::timestamptz[]) \
                 AS e(position, id, aggregate_id, aggregate_type, type, type_version, tenant, actor, \
                      version, at, payload, metadata, correlation, causation, stored_at) \
             ORDER BY e.position",
            self.tables.events
        );
        let inserted = sqlx::query(&sql)
            .bind(&positions)
            .bind(event_ids)
            .bind(aggregate_ids)
            .bind(aggregate_types)
            .bind(event_types)
            .bind(type_versions)
            .bind(column(|e| e.envelope.tenant_id))
            .bind(actors)
            .bind(versions)
            .bind(timestamps)
            .bind(fresh_payloads)
            .bind(metadata)
            .bind(column(|e| e.envelope.correlation_id))
            .bind(column(|e| e.envelope.causation_id))
            .bind(stored_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::Migration {
                    message: format!(
                        "the target holds other events at the same positions or stream versions \
                         (migrate into an empty schema): {e}"
                    ),
                })
            }
            Err(e) => return Err(db_error(OP)(e)),
        }
        // Appends after the migration continue after the highest position.
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{0}', 'global_position'), \
                 (SELECT GREATEST(MAX(global_position), 1) FROM {0}))",
            self.tables.events
        ))
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
        let last = positions.last().copied().map_or(0, to_u64);
        self.notify(&mut *tx, last).await?;
        Ok(Imported {
            copied: fresh.len() as u64,
            skipped,
        })
    }

    /// Writes a checkpoint as it is (position, last event, count, time), replacing the
    /// one of the same name.
    pub(crate) async fn import_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.ready(Need::Table("projection_checkpoints")).await?;
        sqlx::query(&format!(
            "INSERT INTO {} (projection_name, global_position, last_event_id, last_event_type, \
                 events_processed, last_processed_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (projection_name) DO UPDATE SET global_position = excluded.global_position, \
                 last_event_id = excluded.last_event_id, last_event_type = excluded.last_event_type, \
                 events_processed = excluded.events_processed, \
                 last_processed_at = excluded.last_processed_at, updated_at = now()",
            self.tables.checkpoints
        ))
        .bind(&checkpoint.projection_name)
        .bind(to_i64(checkpoint.global_position))
        .bind(checkpoint.last_event_id)
        .bind(checkpoint.last_event_type.as_deref())
        .bind(to_i64(checkpoint.events_processed))
        .bind(checkpoint.last_processed_at)
        .execute(&self.pool)
        .await
        .map_err(db_error("import_checkpoint"))?;
        Ok(())
    }
}
