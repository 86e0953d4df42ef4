//! The id of the request being served on this task: set by the HTTP layer's request-context
//! middleware (from a safe `X-Request-Id` or a fresh one), read by whatever logs an event on
//! the request's behalf (the error mapping, the token endpoint), so every layer can name the
//! request without importing the web layer. A task-local, because actix serves each request
//! on one task and the value must not leak into another request's logs.

use std::{future::Future, sync::Arc};

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The id of the request being served on this task (`-` outside one), for log events.
pub fn current() -> Arc<str> {
    CURRENT
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::from("-"))
}

/// Runs `fut` (the rest of one request) with `id` as its request id.
pub async fn scope<F: Future>(id: Arc<str>, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_is_seen_inside_its_request_only() {
        assert_eq!(&*current(), "-");
        let inside = scope(Arc::from("abc"), async { current() }).await;
        assert_eq!(&*inside, "abc");
        assert_eq!(&*current(), "-");
    }
}
