-- The eventsource schema on SQLite. Table and column names, and the text formats
-- (hyphenated UUIDs, ISO 8601 timestamps, JSON text), are those of eventsource-py, so a
-- database written by the Python library reads back here.

CREATE TABLE IF NOT EXISTS events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    aggregate_id TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    tenant_id TEXT,
    actor_id TEXT,
    version INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    -- Columns eventsource-py keeps inside the payload JSON; NULL on rows it wrote, which
    -- are then read from the payload.
    event_version INTEGER,
    correlation_id TEXT,
    causation_id TEXT,
    metadata TEXT,
    UNIQUE (aggregate_id, aggregate_type, version)
);

CREATE TABLE IF NOT EXISTS event_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    tenant_id TEXT,
    global_position INTEGER NOT NULL DEFAULT 0,
    event_data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    published_at TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    status TEXT NOT NULL DEFAULT 'pending'
);

CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection_name TEXT PRIMARY KEY,
    last_event_id TEXT,
    last_event_type TEXT,
    last_processed_at TEXT,
    events_processed INTEGER NOT NULL DEFAULT 0,
    global_position INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE TABLE IF NOT EXISTS dead_letter_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    projection_name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_data TEXT NOT NULL,
    global_position INTEGER NOT NULL DEFAULT 0,
    error_message TEXT NOT NULL,
    error_stacktrace TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0,
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'failed',
    resolved_at TEXT,
    resolved_by TEXT,
    UNIQUE (event_id, projection_name)
);

CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_id TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (aggregate_id, aggregate_type)
);

-- Settings of the database this library keeps (the payload format of appends).
CREATE TABLE IF NOT EXISTS eventsource_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
