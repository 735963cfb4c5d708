//! The options of reads: [`ReadOptions`] (`read_all`, `read_stream`) and
//! [`GetEventsOptions`] (`get_events`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::stored::StoredEvent;

/// Direction of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadDirection {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// Options of [`EventStore::read_all`](super::EventStore::read_all) and [`EventStore::read_stream`](super::EventStore::read_stream).
///
/// ```
/// use eventsource::{ReadDirection, ReadOptions};
/// let options = ReadOptions::new().backward().limit(10);
/// assert_eq!(options.direction, ReadDirection::Backward);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// Forward (default) or backward.
    pub direction: ReadDirection,
    /// Exclusive start position: global position for `read_all`, stream position for
    /// `read_stream`. Forward reads return positions greater than it; backward reads
    /// positions smaller than it, with `0` meaning "from the end".
    pub from_position: u64,
    /// Maximum number of items (events, and errors for rows that cannot be read back).
    pub limit: Option<u64>,
    /// Only events whose timestamp is at or after this time. (On SQLite, timestamps are
    /// compared as ISO 8601 text; rows written by eventsource-py at an exact second, which
    /// Python writes without a fraction, sort just before that second.)
    pub from_timestamp: Option<DateTime<Utc>>,
    /// Only events whose timestamp is at or before this time.
    pub to_timestamp: Option<DateTime<Utc>>,
    /// Only events of this tenant.
    pub tenant_id: Option<Uuid>,
    /// Only events of these types (an empty list matches nothing).
    pub event_types: Option<Vec<String>>,
}

impl ReadOptions {
    /// Forward from the start, no filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads newest first.
    pub fn backward(mut self) -> Self {
        self.direction = ReadDirection::Backward;
        self
    }

    /// Sets the direction.
    pub fn direction(mut self, direction: ReadDirection) -> Self {
        self.direction = direction;
        self
    }

    /// Sets the exclusive start position.
    pub fn from_position(mut self, position: u64) -> Self {
        self.from_position = position;
        self
    }

    /// Sets the maximum number of events.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only events at or after this time.
    pub fn from_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.from_timestamp = Some(timestamp);
        self
    }

    /// Only events at or before this time.
    pub fn to_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.to_timestamp = Some(timestamp);
        self
    }

    /// Only events of this tenant.
    pub fn tenant_id(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    /// Only events of these types.
    pub fn event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// `true` when an event passes the tenant, time and type filters.
    pub(crate) fn accepts(&self, event: &StoredEvent) -> bool {
        let envelope = &event.envelope;
        self.tenant_id.is_none_or(|t| envelope.tenant_id == Some(t))
            && self.from_timestamp.is_none_or(|t| envelope.timestamp >= t)
            && self.to_timestamp.is_none_or(|t| envelope.timestamp <= t)
            && self
                .event_types
                .as_ref()
                .is_none_or(|types| types.contains(&envelope.event_type))
    }
}

/// Filters of [`EventStore::get_events`](super::EventStore::get_events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetEventsOptions {
    /// Only events with an aggregate version at or above this one.
    pub from_version: Option<u64>,
    /// Only events whose timestamp is at or after this time.
    pub from_timestamp: Option<DateTime<Utc>>,
    /// Only events whose timestamp is at or before this time.
    pub to_timestamp: Option<DateTime<Utc>>,
}

impl GetEventsOptions {
    /// Only events with an aggregate version at or above `version`.
    pub fn from_version(version: u64) -> Self {
        GetEventsOptions {
            from_version: Some(version),
            ..Self::default()
        }
    }

    /// Only events in the time range (both ends inclusive, either optional).
    pub fn between(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Self {
        GetEventsOptions {
            from_version: None,
            from_timestamp: from,
            to_timestamp: to,
        }
    }
}
