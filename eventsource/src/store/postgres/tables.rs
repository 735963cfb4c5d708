//! The names of a schema's tables, its notification channel and its append lock.

/// The qualified table names, the notification channel and the append lock of a schema.
#[derive(Debug)]
pub(crate) struct Tables {
    pub(super) schema: String,
    pub(super) events: String,
    pub(super) outbox: String,
    pub(super) checkpoints: String,
    pub(super) dead_letters: String,
    pub(super) snapshots: String,
    /// The `LISTEN/NOTIFY` channel announcing committed appends.
    pub(super) channel: String,
    /// The advisory lock (two 32-bit keys) that orders appends by commit.
    pub(super) append_lock: (i32, i32),
    /// The advisory lock (two 32-bit keys) that orders relays' outbox claims.
    pub(super) claim_lock: (i32, i32),
}

impl Tables {
    pub(super) fn new(schema: &str) -> Self {
        let qualified = |table: &str| format!("\"{schema}\".{table}");
        let hash = crate::canonical::fnv1a(format!("eventsource:{schema}").as_bytes());
        Tables {
            schema: schema.to_owned(),
            events: qualified("events"),
            outbox: qualified("event_outbox"),
            checkpoints: qualified("projection_checkpoints"),
            dead_letters: qualified("dead_letter_queue"),
            snapshots: qualified("snapshots"),
            channel: format!("eventsource_{schema}"),
            // 0x4553 ('E', 'S') as the first key keeps clear of an application's own
            // single-key locks.
            append_lock: (0x4553, hash as i32),
            // 0x4543 ('E', 'C'): claims.
            claim_lock: (0x4543, hash as i32),
        }
    }
}
