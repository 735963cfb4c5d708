//! Not public API. Used by generated code.

#[doc(hidden)]
pub use inventory;

#[doc(hidden)]
pub use crate::registry::EventRegistration;

#[doc(hidden)]
pub use uuid::Uuid;
