//! [`SessionDirectory`]: the session table as the bearer guard reads it without a message
//! to [`super::McpSessions`] (owner, handle, last use per session id). The actor is its only
//! writer; readers only mark a session used.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, PoisonError, RwLock,
    },
    time::{Duration, Instant},
};

use rmcp::transport::streamable_http_server::session::{local::LocalSessionHandle, SessionId};

use super::{Admission, Owner};

/// One session as the [`SessionDirectory`] lists it.
pub(super) struct Listed {
    pub(super) owner: Owner,
    pub(super) handle: LocalSessionHandle,
    /// Last use, in milliseconds since the directory's `base`.
    last_seen_ms: AtomicU64,
}

/// The session table as the bearer guard reads it, without a message to the actor: session
/// id → owner, handle, last use. Only [`super::McpSessions`] adds and removes sessions; a reader
/// may only mark a session used ([`SessionDirectory::admit`]). Cheap to clone.
#[derive(Clone)]
pub struct SessionDirectory {
    base: Instant,
    /// A session unused for longer is over, swept or not yet.
    idle_timeout: Duration,
    sessions: Arc<RwLock<HashMap<SessionId, Arc<Listed>>>>,
}

impl std::fmt::Debug for SessionDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionDirectory")
    }
}

impl SessionDirectory {
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Self {
            base: Instant::now(),
            idle_timeout,
            sessions: Arc::default(),
        }
    }

    /// Is session `id` the caller's? If so it is marked used and its handle comes back. A
    /// session idle past the timeout is over even before the sweep removes it (`Unknown`,
    /// so the client initializes again), and is never brought back by a late request.
    pub fn admit(&self, id: &SessionId, owner: &Owner) -> Admission {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        match sessions.get(id) {
            None => Admission::Unknown,
            Some(listed) if self.is_idle(listed) => Admission::Unknown,
            Some(listed) if listed.owner != *owner => Admission::Foreign,
            Some(listed) => {
                self.touch(listed);
                Admission::Admitted(listed.handle.clone())
            }
        }
    }

    fn is_idle(&self, listed: &Listed) -> bool {
        self.last_seen(listed).elapsed() > self.idle_timeout
    }

    /// Removes session `id` if it is still idle, checked under the write lock: a request
    /// admitted between the sweep's look and this removal keeps its session (readers mark
    /// use under the read lock, so none can slip in while this holds the write lock).
    pub(super) fn remove_if_idle(&self, id: &SessionId) -> bool {
        let mut sessions = self.write();
        let idle = sessions.get(id).is_some_and(|l| self.is_idle(l));
        if idle {
            sessions.remove(id);
        }
        idle
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn listed(&self, owner: Owner, handle: LocalSessionHandle) -> Arc<Listed> {
        Arc::new(Listed {
            owner,
            handle,
            last_seen_ms: AtomicU64::new(self.now_ms()),
        })
    }

    pub(super) fn touch(&self, listed: &Listed) {
        listed
            .last_seen_ms
            .fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    pub(super) fn last_seen(&self, listed: &Listed) -> Instant {
        self.base + Duration::from_millis(listed.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Writes are the actor's: these three are private to this module.
    pub(super) fn insert(&self, id: SessionId, listed: Arc<Listed>) {
        self.write().insert(id, listed);
    }

    pub(super) fn remove(&self, id: &SessionId) {
        self.write().remove(id);
    }

    pub(super) fn clear(&self) {
        self.write().clear();
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SessionId, Arc<Listed>>> {
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
