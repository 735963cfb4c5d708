//! Not public API. Used by generated code.

#[doc(hidden)]
pub use inventory;

#[doc(hidden)]
pub use crate::registry::EventRegistration;

#[doc(hidden)]
pub use crate::aggregate::AggregateRegistration;

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
    match declared {
        None => true,
        Some(declared) => same_name(declared, aggregate),
    }
}

/// For generated code: `a == b`, in a constant.
#[doc(hidden)]
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
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

/// For generated code: implemented by the derive of an event's next version for the
/// type it names as `previous`. Rows of a superseded type read back as the newest type
/// of its chain, so an `#[apply]` or `#[handles]` of it would never run.
#[doc(hidden)]
pub trait Superseded {}

/// For generated code: `Check::<T>::SUPERSEDED` is `true` when `T: Superseded` (the
/// inherent constant) and `false` otherwise (the trait's, which applies only when the
/// inherent one does not).
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct SupersededCheck<T: ?Sized>(core::marker::PhantomData<T>);

/// For generated code: the `false` of [`SupersededCheck`].
#[doc(hidden)]
pub trait NotSuperseded {
    /// Not superseded.
    const SUPERSEDED: bool = false;
}

impl<T: ?Sized> NotSuperseded for SupersededCheck<T> {}

impl<T: ?Sized + Superseded> SupersededCheck<T> {
    /// Superseded.
    pub const SUPERSEDED: bool = true;
}
