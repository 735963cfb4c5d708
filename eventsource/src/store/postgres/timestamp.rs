//! TIMESTAMPTZ values read without panicking: sqlx's chrono decoding adds the stored
//! microseconds to its epoch with `+`, which panics for values chrono cannot hold
//! (`'infinity'`, years past 262,143), and a row another tool wrote may hold them.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::decode::Decode;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueFormat, PgValueRef, Postgres};

/// A stored TIMESTAMPTZ: the time, or `None` when chrono cannot hold it (`'infinity'`,
/// `'-infinity'`, or beyond chrono's years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredTime(pub(super) Option<DateTime<Utc>>);

/// 2000-01-01T00:00:00Z, from which PostgreSQL counts microseconds.
const POSTGRES_EPOCH_SECONDS: i64 = 946_684_800;

impl sqlx::Type<Postgres> for StoredTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for StoredTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let micros = <i64 as Decode<Postgres>>::decode(value)?;
                Ok(StoredTime(
                    DateTime::from_timestamp(POSTGRES_EPOCH_SECONDS, 0).and_then(|epoch| {
                        epoch.checked_add_signed(TimeDelta::microseconds(micros))
                    }),
                ))
            }
            // Text parsing fails instead of panicking: an unparsable text is no time.
            PgValueFormat::Text => Ok(StoredTime(
                <DateTime<Utc> as Decode<Postgres>>::decode(value).ok(),
            )),
        }
    }
}

impl StoredTime {
    /// The time, or a description of what is stored instead.
    pub(super) fn time(self) -> Result<DateTime<Utc>, String> {
        self.0.ok_or_else(|| {
            "a timestamp beyond what chrono holds ('infinity' or a year past 262143)".to_owned()
        })
    }
}
