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

-- The relay's pending query (status = 'pending' ORDER BY id) reads the pending entries
-- only, however many published rows precede them. Partial: an entry leaves it when it is
-- published (one index delete, where a (status, ...) index would also insert it again),
-- and no other status is indexed. eventsource-py's idx_outbox_status_created
-- (status, created_at) is not created: no query here uses it, and it cost every append
-- and every publish an index write (eventsource-py creates it on its own databases).
CREATE INDEX IF NOT EXISTS idx_outbox_pending ON event_outbox (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_dlq_projection_status ON dead_letter_queue (projection_name, status);
CREATE INDEX IF NOT EXISTS idx_dlq_status ON dead_letter_queue (status);
