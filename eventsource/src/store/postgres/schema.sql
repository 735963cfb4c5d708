-- The eventsource schema on PostgreSQL. `__SCHEMA__` is replaced by the configured
-- schema (quoted). Names follow eventsource-py; types are PostgreSQL's own.

CREATE SCHEMA IF NOT EXISTS __SCHEMA__;

CREATE TABLE IF NOT EXISTS __SCHEMA__.events (
    global_position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id UUID NOT NULL UNIQUE,
    aggregate_id UUID NOT NULL,
    aggregate_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_version INTEGER NOT NULL DEFAULT 1,
    tenant_id UUID,
    actor_id TEXT,
    version BIGINT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    payload JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    correlation_id UUID,
    causation_id UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (aggregate_id, aggregate_type, version)
);

CREATE TABLE IF NOT EXISTS __SCHEMA__.event_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    aggregate_id UUID NOT NULL,
    aggregate_type TEXT NOT NULL,
    tenant_id UUID,
    global_position BIGINT NOT NULL DEFAULT 0,
    event_data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    retry_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    status TEXT NOT NULL DEFAULT 'pending'
-- Room on each page for the claim's lease update to stay on the page (a HOT update: no
-- new index entries, a small WAL record). Tables created before keep theirs.
) WITH (fillfactor = 70);

CREATE TABLE IF NOT EXISTS __SCHEMA__.projection_checkpoints (
    projection_name TEXT PRIMARY KEY,
    last_event_id UUID,
    last_event_type TEXT,
    last_processed_at TIMESTAMPTZ,
    events_processed BIGINT NOT NULL DEFAULT 0,
    global_position BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS __SCHEMA__.dead_letter_queue (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id UUID NOT NULL,
    projection_name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_data JSONB NOT NULL,
    global_position BIGINT NOT NULL DEFAULT 0,
    error_message TEXT NOT NULL,
    error_stacktrace TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0,
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'failed',
    resolved_at TIMESTAMPTZ,
    resolved_by TEXT,
    UNIQUE (event_id, projection_name)
);

CREATE TABLE IF NOT EXISTS __SCHEMA__.snapshots (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_id UUID NOT NULL,
    aggregate_type TEXT NOT NULL,
    version BIGINT NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 1,
    state JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (aggregate_id, aggregate_type)
);

-- Relays' claims (`claim_pending`), added to outboxes created before they existed.
ALTER TABLE __SCHEMA__.event_outbox ADD COLUMN IF NOT EXISTS claimed_until TIMESTAMPTZ;

-- @indexes
-- (Created after the events table's columns are checked.)

-- eventsource-py also lists idx_events_aggregate_id (aggregate_id) and
-- idx_events_aggregate_version (aggregate_id, aggregate_type, version): the first is a
-- prefix and the second a copy of the unique stream key, whose index serves the same
-- lookups, so neither is created (each index costs every append). The type indexes end
-- with global_position so that filtered reads in position order (subscriptions,
-- get_events_by_type) walk the index in order instead of sorting.
CREATE INDEX IF NOT EXISTS idx_events_aggregate_type ON __SCHEMA__.events (aggregate_type, global_position);
CREATE INDEX IF NOT EXISTS idx_events_event_type ON __SCHEMA__.events (event_type, global_position);
CREATE INDEX IF NOT EXISTS idx_events_timestamp ON __SCHEMA__.events (timestamp);
CREATE INDEX IF NOT EXISTS idx_events_tenant_id ON __SCHEMA__.events (tenant_id) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_events_type_tenant_timestamp ON __SCHEMA__.events (aggregate_type, tenant_id, timestamp);

CREATE INDEX IF NOT EXISTS idx_outbox_status_id ON __SCHEMA__.event_outbox (status, id);
CREATE INDEX IF NOT EXISTS idx_dlq_projection_status ON __SCHEMA__.dead_letter_queue (projection_name, status);
CREATE INDEX IF NOT EXISTS idx_dlq_status ON __SCHEMA__.dead_letter_queue (status);
