//! Not public API. Used by generated code.

#[doc(hidden)]
pub use inventory;

#[doc(hidden)]
pub use crate::registry::EventRegistration;

#[doc(hidden)]
pub use uuid::Uuid;

#[doc(hidden)]
pub use async_trait::async_trait;

#[doc(hidden)]
pub use crate::projection::{undecodable, IntoHandlerResult};

/// For generated code: `true` when an event declared for `declared` (or for no
/// aggregate) may be applied by the aggregate type `aggregate`.
#[doc(hidden)]
pub const fn may_apply(declared: Option<&str>, aggregate: &str) -> bool {
    let Some(declared) = declared else {
        return true;
    };
    let (a, b) = (declared.as_bytes(), aggregate.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
