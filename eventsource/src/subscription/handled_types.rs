//! The subscribe-time check that a projection handles only event types some registered
//! Rust type is named, with the closest registered name as a hint.

use crate::error::{Error, Result};

/// Refuses a projection that handles an event type no registered Rust type is named,
/// suggesting the registered name closest to it.
pub(super) fn check_handled_types(
    projection: &str,
    subscription: &str,
    handled: &[&str],
) -> Result<()> {
    let registry = crate::EventRegistry::global();
    let Some(unknown) = handled.iter().find(|t| registry.versions(t).is_empty()) else {
        return Ok(());
    };
    let closest = registry
        .registered_types()
        .into_iter()
        .map(|r| r.name())
        .map(|t| (edit_distance(&t.to_lowercase(), &unknown.to_lowercase()), t))
        .filter(|(d, _)| *d <= 3)
        .min();
    let hint = closest.map_or_else(String::new, |(_, t)| format!(" (did you mean `{t}`?)"));
    Err(Error::InvalidConfiguration {
        message: format!(
            "projection `{projection}` (subscription `{subscription}`) handles `{unknown}`, \
             which no registered event type is named{hint}; to handle unregistered types \
             as raw JSON on purpose, use SubscriptionConfig::allow_unregistered_types(true)"
        ),
    })
}

/// The Levenshtein distance of two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
