//! Panics in user code (handlers, publishers) caught and turned into errors, so that a
//! panicking handler is retried and dead-lettered like a failing one instead of killing
//! the task that runs it.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Runs `future`, catching a panic inside it; the error is the panic's message.
///
/// The state the future touched may be half-updated after a panic, exactly as after an
/// early `return Err(..)`; the caller treats it like an error (retries, dead-letters, or
/// rolls back a transaction).
pub(crate) async fn catch_unwind<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| format!("panicked: {}", message(payload.as_ref())))
}

/// The message of a panic payload (`panic!("...")` carries a `&str` or a `String`).
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        let caught = catch_unwind(async { panic!("boom {}", 7) }).await;
        assert_eq!(caught, Err::<(), _>("panicked: boom 7".to_owned()));
        let caught = catch_unwind(async { std::panic::panic_any(3_u8) }).await;
        assert_eq!(
            caught,
            Err::<(), _>("panicked: a panic without a message".to_owned())
        );
        assert_eq!(catch_unwind(async { 5 }).await, Ok(5));
    }
}
