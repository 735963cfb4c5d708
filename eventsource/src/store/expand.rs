//! Reads through a registry with split upcasters: each stored row a split upcaster reads
//! becomes the events it makes (see [`crate::registry::split`]), and a read's limit and
//! type filter apply to those events.

use std::sync::Arc;

use futures::StreamExt;

use super::{ReadOptions, StoredEventStream};
use crate::registry::EventRegistry;

/// `read(options)`, with rows expanded when `registry` has split upcasters (otherwise
/// exactly `read(options)`).
///
/// The inner read asks for the stored names of split upcasters that produce a filtered
/// type too, and has no limit; the events are filtered by type and cut at the limit here, never inside
/// one row's events (they share its position). Rows reported at no position (position 0)
/// come on top of the limit, as the stores report them.
pub(crate) fn split_aware<'a>(
    registry: &Arc<EventRegistry>,
    options: ReadOptions,
    read: impl FnOnce(ReadOptions) -> StoredEventStream<'a>,
) -> StoredEventStream<'a> {
    if !registry.has_splits() {
        return read(options);
    }
    let (types, limit) = (options.event_types.clone(), options.limit);
    let mut inner = options;
    inner.limit = None;
    if let Some(types) = &mut inner.event_types {
        // The rows of split upcasters that may produce a filtered type (or a name it
        // was renamed from) too.
        let sources = registry.split_sources_of(&registry.stored_names_of_all(types));
        types.extend(sources);
        types.sort();
        types.dedup();
    }
    let registry = Arc::clone(registry);
    let expanded = read(inner)
        .flat_map(move |item| futures::stream::iter(registry.expand(item, types.as_deref())));
    let Some(limit) = limit else {
        return expanded.boxed();
    };
    // (events counted, the position of the last one)
    expanded
        .scan((0u64, None::<u64>), move |(counted, last), item| {
            let keep = match &item {
                // Rows that do not read come on top of the limit (as a store's misplaced
                // rows do), until it is reached.
                Err(_) => *counted < limit,
                Ok(event) if *counted < limit => {
                    *counted += 1;
                    *last = Some(event.global_position);
                    true
                }
                // Past the limit: only the rest of the last row's events.
                Ok(event) => *last == Some(event.global_position),
            };
            futures::future::ready(keep.then_some(item))
        })
        .boxed()
}
