//! What every store accepts in an append, checked the same way on every backend before
//! any lock is taken, so that anything `append_events` accepts reads back exactly as
//! written everywhere (the rules are listed on [`NewEvent`]).

use chrono::{DateTime, Datelike, Utc};

use crate::envelope::NewEvent;
use crate::error::{Error, Result};
use crate::registry::EventRegistry;

/// The most characters of a value an error message quotes.
const QUOTED_MAX: usize = 64;

/// `value` in quotes for an error message, cut after [`QUOTED_MAX`] characters (a
/// hostile 100 KB id does not make a 100 KB message).
pub(crate) fn quoted(value: &str) -> String {
    let (head, rest) = cut(value);
    if rest == 0 {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({rest} more characters)")
    }
}

/// `value` cut after [`QUOTED_MAX`] characters, marked with `…` when cut.
pub(crate) fn capped(value: &str) -> String {
    match cut(value) {
        (head, 0) => head,
        (head, _) => format!("{head}…"),
    }
}

fn cut(value: &str) -> (String, usize) {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(QUOTED_MAX).collect();
    (head, chars.count())
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// `t` moved into the range every store keeps ([`timestamp_in_range`]): what a time
/// filter beyond it means (no stored event lies outside it).
pub(crate) fn clamp_timestamp(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::TimeZone;
    let earliest = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single();
    let latest = Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .map(|t| t + chrono::Duration::microseconds(999_999));
    match (earliest, latest) {
        (Some(earliest), _) if t < earliest => earliest,
        (_, Some(latest)) if t > latest => latest,
        _ => t,
    }
}

/// The earliest and latest timestamps every store keeps exactly: years 1 to 9999 (SQLite
/// compares timestamps as ISO 8601 text, which needs four-digit years).
pub(crate) fn timestamp_in_range(t: DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// A type name or actor id that every store keeps exactly: not empty (for type names),
/// and no control character (U+0000–U+001F, U+007F: NUL ends text in SQLite's C API,
/// U+001D–U+001F frame the rows the SQLite store reads back packed).
fn check_text(what: &str, value: &str, may_be_empty: bool) -> Result<()> {
    if value.is_empty() && !may_be_empty {
        return Err(Error::InvalidInput {
            message: format!("{what} is empty"),
        });
    }
    if let Some(c) = value.chars().find(|c| c.is_control() && (*c as u32) < 0x80) {
        return Err(Error::InvalidInput {
            message: format!(
                "{what} {} contains the control character U+{:04X}",
                quoted(value),
                c as u32
            ),
        });
    }
    Ok(())
}

/// `true` when JSON text holds the NUL character (written `\u0000`) in a string or a
/// key: PostgreSQL's `JSONB` cannot store it.
pub(crate) fn json_has_nul(json: &str) -> bool {
    json.match_indices("\\u0000").any(|(at, _)| {
        // An escape only if the backslash is not itself escaped.
        let backslashes = json[..at].bytes().rev().take_while(|b| *b == b'\\').count();
        backslashes % 2 == 0
    })
}

/// Checks the JSON an event is stored as (same rule on every store).
///
/// # Errors
/// [`Error::InvalidInput`] for a NUL character in the payload or metadata.
pub(crate) fn check_json(event_type: &str, payload: &str, metadata: &str) -> Result<()> {
    for (what, json) in [("payload", payload), ("metadata", metadata)] {
        if json_has_nul(json) {
            return Err(Error::InvalidInput {
                message: format!(
                    "the {what} of {} holds a NUL character (U+0000) in a string, which PostgreSQL cannot store",
                    quoted(event_type)
                ),
            });
        }
    }
    Ok(())
}

/// What every store checks of a batch before it takes any lock: the rules of
/// [`NewEvent`], every event type unambiguous in the registry, and every event declared
/// for this aggregate type (or for none).
///
/// # Errors
/// [`Error::InvalidInput`] naming the field; [`Error::DuplicateEventType`] for a type
/// two Rust types claim.
pub(crate) fn check_batch(
    registry: &EventRegistry,
    aggregate_type: &str,
    events: &[NewEvent],
) -> Result<()> {
    check_text("aggregate type", aggregate_type, false)?;
    for event in events {
        check_text("event type", event.event_type(), false)?;
        if let Some(actor) = event.actor_id() {
            check_text("actor id", actor, true)?;
        }
        let version = event.event_version();
        if version == 0 || i32::try_from(version).is_err() {
            return Err(Error::InvalidInput {
                message: format!(
                    "event_version {version} of {} is out of range (1 to {})",
                    quoted(event.event_type()),
                    i32::MAX
                ),
            });
        }
        if !timestamp_in_range(event.timestamp) {
            return Err(Error::InvalidInput {
                message: format!(
                    "timestamp {} of {} is outside the years 1 to 9999",
                    event.timestamp.to_rfc3339(),
                    quoted(event.event_type())
                ),
            });
        }
        let declared = registry.declared_aggregate(&event.payload)?;
        if let Some(declared) = declared.filter(|d| *d != aggregate_type) {
            return Err(Error::InvalidInput {
                message: format!(
                    "event {} is declared for aggregate type `{declared}` (#[event(aggregate = \"{declared}\")]) and cannot be appended to a {} stream",
                    quoted(event.event_type()),
                    quoted(aggregate_type)
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(quoted("abc"), "\"abc\"");
        let long = "x".repeat(100_000);
        let message = quoted(&long);
        assert!(message.len() < 120, "{message}");
        assert!(message.ends_with("(99936 more characters)"), "{message}");
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn filters_beyond_the_range_are_clamped() {
        assert_eq!(clamp_timestamp(DateTime::<Utc>::MIN_UTC).year(), 1);
        assert_eq!(clamp_timestamp(DateTime::<Utc>::MAX_UTC).year(), 9999);
        let now = Utc::now();
        assert_eq!(clamp_timestamp(now), now);
    }

    #[test]
    fn nul_characters_in_json_are_found() {
        let with = serde_json::json!({"a": "x\u{0}y"}).to_string();
        assert!(json_has_nul(&with), "{with}");
        let key = serde_json::json!({"\u{0}": 1}).to_string();
        assert!(json_has_nul(&key));
        // A backslash followed by the text u0000 is not a NUL.
        let text = serde_json::json!({"a": "\\u0000"}).to_string();
        assert!(!json_has_nul(&text), "{text}");
        let both = serde_json::json!({"a": "\\\u{0}"}).to_string();
        assert!(json_has_nul(&both), "{both}");
        assert!(!json_has_nul(r#"{"a":"plain"}"#));
    }

    #[test]
    fn text_rules() {
        assert!(check_text("t", "", false).is_err());
        assert!(check_text("t", "", true).is_ok());
        assert!(check_text("t", "Ev\0il", false).is_err());
        assert!(check_text("t", "a\u{1e}", false).is_err());
        assert!(check_text("t", "tab\there", false).is_err());
        assert!(check_text("t", "Ünïcødé ✓", false).is_ok());
    }
}
