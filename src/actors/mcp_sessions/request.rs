//! What the bearer guard hands to the rest of one request, as task-locals: the session it
//! admitted ([`AdmittedSession`], which answers rmcp's own lookups), or the permission to
//! create a session owned by the caller ([`NewSession`]).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, OnceLock,
};

use rmcp::transport::streamable_http_server::session::{local::LocalSessionHandle, SessionId};

use super::Owner;

tokio::task_local! {
    /// The session the guard admitted for the request being served on this task.
    static ADMITTED: AdmittedSession;
}

/// The answer of [`super::AdmitRequest`], kept for the rest of one request.
///
/// Why: rmcp asks its session manager twice per POST (`has_session`, then `create_stream`),
/// and the guard has just asked the actor the same thing. Serving both from the guard's
/// answer saves two actor round-trips per MCP request (about a sixth of a `tools/call`'s
/// server CPU). The answer is only reused within the request that obtained it, so it is
/// never staler than one request; a session closed meanwhile makes rmcp's handle calls fail
/// just as a fresh lookup would.
#[derive(Clone)]
pub struct AdmittedSession {
    id: SessionId,
    handle: Option<LocalSessionHandle>,
}

impl AdmittedSession {
    /// The admission of session `id`; `handle` is `None` when it is unknown.
    pub fn new(id: SessionId, handle: Option<LocalSessionHandle>) -> Self {
        Self { id, handle }
    }

    /// Runs `fut` (the rest of the request) with this admission in scope.
    pub async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        ADMITTED.scope(self, fut).await
    }

    /// The admission of session `id` in scope on this task, if any: `Some(None)` means the
    /// guard found no such session.
    pub(super) fn current(id: &SessionId) -> Option<Option<LocalSessionHandle>> {
        ADMITTED
            .try_with(|a| (a.id == *id).then(|| a.handle.clone()))
            .ok()
            .flatten()
    }
}

tokio::task_local! {
    /// The owner of a session the request being served on this task may create.
    static NEW_SESSION: NewSession;
}

/// Permission for the request being served to create a session, for `owner`: the bearer
/// guard grants it to an authenticated `initialize` that names no session, and
/// [`super::ActorSessionManager`]'s `create_session` creates sessions only under it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub(super) owner: Owner,
    pub(super) protocol_version: Option<String>,
    pub(super) client_info: Option<String>,
    pub(super) full: Arc<AtomicBool>,
    /// The id of the session created under this permission: the one session a request
    /// without an admission may be served (rmcp initializes it right after creating it).
    pub(super) created: Arc<OnceLock<SessionId>>,
}

impl NewSession {
    /// A session for `owner`, with the `initialize` details to record.
    pub fn new(
        owner: Owner,
        protocol_version: Option<String>,
        client_info: Option<String>,
    ) -> Self {
        Self {
            owner,
            protocol_version,
            client_info,
            full: Arc::default(),
            created: Arc::default(),
        }
    }

    /// Runs `fut` (the rest of the request) under this permission; answers whether the
    /// session was refused because the table is full (rmcp then answered 500; the guard
    /// turns that into 503).
    pub async fn scope<F: std::future::Future>(self, fut: F) -> (F::Output, bool) {
        let full = Arc::clone(&self.full);
        let out = NEW_SESSION.scope(self, fut).await;
        (out, full.load(Ordering::Relaxed))
    }

    pub(super) fn current() -> Option<Self> {
        NEW_SESSION.try_with(Clone::clone).ok()
    }

    /// Whether `id` is the session this request created.
    pub(super) fn created_here(id: &SessionId) -> bool {
        NEW_SESSION
            .try_with(|new| new.created.get() == Some(id))
            .unwrap_or(false)
    }
}
