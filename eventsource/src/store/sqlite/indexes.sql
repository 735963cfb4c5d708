-- Indexes, created after the events table's columns are checked.
--
-- eventsource-py also lists idx_events_aggregate_id (aggregate_id) and
-- idx_events_aggregate_version (aggregate_id, aggregate_type, version): both are
-- prefixes or copies of the UNIQUE (aggregate_id, aggregate_type, version) key, whose
-- automatic index serves the same lookups, so they are not created (each extra index
-- costs every append). A secondary index in SQLite ends with the rowid
-- (global_position), so idx_events_event_type also serves "types in position order".
CREATE INDEX IF NOT EXISTS idx_events_aggregate_type ON events (aggregate_type);
CREATE INDEX IF NOT EXISTS idx_events_event_type ON events (event_type);
CREATE INDEX IF NOT EXISTS idx_events_timestamp ON events (timestamp);
CREATE INDEX IF NOT EXISTS idx_events_tenant_id ON events (tenant_id) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_events_type_tenant_timestamp ON events (aggregate_type, tenant_id, timestamp);

CREATE INDEX IF NOT EXISTS idx_outbox_status_created ON event_outbox (status, created_at);
-- The relay's pending query (status = 'pending' ORDER BY id), whatever the number of
-- published rows before the pending ones.
CREATE INDEX IF NOT EXISTS idx_outbox_status_id ON event_outbox (status, id);
CREATE INDEX IF NOT EXISTS idx_dlq_projection_status ON dead_letter_queue (projection_name, status);
CREATE INDEX IF NOT EXISTS idx_dlq_status ON dead_letter_queue (status);
