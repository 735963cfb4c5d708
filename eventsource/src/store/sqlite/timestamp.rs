//! The text form of timestamps in SQLite: what this library writes, and the forms
//! eventsource-py and SQLite's own functions write, which it reads too.

use chrono::{DateTime, NaiveDateTime, Utc};

/// A timestamp as stored: ISO 8601 with microseconds and an explicit UTC offset, the
/// format of Python's `datetime.isoformat()`. Text order is time order.
pub(super) fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Parses ISO 8601 / RFC 3339 with an offset, or SQLite's `datetime('now')` format (UTC).
pub(super) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = parse_stored_timestamp(text) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

/// The format this library writes, `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, without the
/// general parser.
fn parse_stored_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 32
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if b[19] != b'.' || &b[26..] != b"+00:00" {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 26)?,
    )?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_python_format() {
        let t = crate::envelope::now();
        let text = format_timestamp(t);
        assert!(text.ends_with("+00:00"), "{text}");
        assert_eq!(parse_timestamp(&text), Some(t));
    }

    #[test]
    fn the_fast_path_agrees_with_chrono() {
        for text in [
            "2024-02-29T23:59:59.999999+00:00",
            "1999-01-01T00:00:00.000000+00:00",
        ] {
            let fast = parse_stored_timestamp(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(
                fast,
                DateTime::parse_from_rfc3339(text)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            );
        }
        for not_ours in [
            "2024-02-30T00:00:00.000000+00:00",
            "2024-01-01T00:00:00.000000+01:00",
            "2024-01-01T00:00:00+00:00",
        ] {
            assert_eq!(parse_stored_timestamp(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn parses_python_and_sqlite_formats() {
        for text in [
            "2024-01-02T03:04:05+00:00",
            "2024-01-02T03:04:05.000000Z",
            "2024-01-02 03:04:05",
            "2024-01-02T03:04:05",
        ] {
            let t = parse_timestamp(text).unwrap_or_else(|| panic!("{text} did not parse"));
            assert_eq!(format_timestamp(t), "2024-01-02T03:04:05.000000+00:00");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
