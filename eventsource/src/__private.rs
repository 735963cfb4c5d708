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
