//! The MCP session manager actor, [`McpSessions`], and the bridge that plugs it into rmcp
//! as its `SessionManager` ([`ActorSessionManager`]).
//!
//! The actor owns the session table: each live session's rmcp handle, its owner (subject
//! and client), the requested protocol version and client info, and when it was last
//! used. It enforces idle expiry, a per-owner session cap (the owner's least recently used
//! session makes room) and a global cap (a full table refuses new sessions; nobody's
//! session is evicted by someone else's burst). rmcp's per-session worker task still runs
//! the JSON-RPC state machine (streams, caches, resumption); the actor owns the handles to
//! those workers and decides when they end.
//!
//! A session's owner is fixed when it is created, from the authenticated request that
//! creates it: the bearer guard runs that request inside [`NewSession::scope`], and
//! [`ActorSessionManager`]'s `create_session` refuses to create a session outside one. So
//! there is no session without an owner, and none that another principal may use.
//!
//! The guard's one question per request, "is this session the caller's?", is answered
//! from the [`SessionDirectory`], the table as others may read it without a message: the
//! actor is its only writer (sessions are added and removed by the actor's handlers
//! alone), and readers only mark a session used. So a request naming a session costs no
//! round trip to the actor.
//!
//! Streamable HTTP "Session Management": the id is a random visible-ASCII string issued on
//! `initialize`; a DELETE closes the session; an unknown or closed session answers 404
//! (rmcp). A session never authenticates anything: the bearer check runs on every request
//! and a session used by another principal answers 404 as if unknown (see `mcp::guard`).
//!
//! # Layout
//! - `mod.rs`: the actor, its state ([`Owner`], [`SessionInfo`], [`SessionLimits`]), the
//!   idle sweep and `Stop`.
//! - `directory.rs`: [`SessionDirectory`], the table readable without a message.
//! - `messages.rs`: creating (caps), admitting, touching, closing, counting, listing.
//! - `request.rs`: the task-locals one request carries ([`AdmittedSession`], [`NewSession`]).
//! - `streams.rs`: stream tracking, side channels, SEP-1699 stream closing.
//! - `bridge.rs`: [`ActorSessionManager`], rmcp's `SessionManager` over the actor.
//! - `tests.rs`.

mod bridge;
mod directory;
mod messages;
mod request;
mod streams;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use tokio::sync::{mpsc, oneshot};

pub use bridge::{ActorSessionManager, SessionManagerError};
pub use directory::SessionDirectory;
pub use messages::{
    Admission, AdmitRequest, CloseSession, CountSessions, CreateSession, ListSessions,
    SessionOwner, SessionsFull, TouchSession,
};
pub use request::{AdmittedSession, NewSession};
pub use streams::{CloseRequestStream, RequestChannel};

use super::Stop;
use crate::metrics::{ActorKind, Metered};
use directory::Listed;

/// Who a session belongs to: the token's subject (or the client, for client_credentials)
/// and client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The resource owner, or `None` for client_credentials tokens.
    pub subject: Option<String>,
    /// The OAuth client.
    pub client_id: String,
}

/// What the table knows about one session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Owner: the caller whose `initialize` created the session.
    pub owner: Owner,
    /// Negotiated protocol version, as requested by the client.
    pub protocol_version: Option<String>,
    /// `clientInfo.name` and `version` from `initialize`.
    pub client_info: Option<String>,
    /// Creation time.
    pub created: Instant,
    /// Last request.
    pub last_seen: Instant,
}

struct Entry {
    /// Owner, handle and last use, shared with the [`SessionDirectory`].
    listed: Arc<Listed>,
    /// The rest of what is known; its `last_seen` is read from `listed`.
    info: SessionInfo,
    /// JSON-RPC request id → rmcp's HTTP stream id, when stream tracking is on.
    streams: HashMap<String, u64>,
    /// JSON-RPC request id → a channel merged into that request's POST stream, so that
    /// notifications a tool sends (logs) reach the stream of the call that caused them.
    side_channels: HashMap<String, mpsc::Sender<ServerSseMessage>>,
    /// Waiters for a client to resume a given HTTP stream (SEP-1699 polling).
    resume_waiters: HashMap<u64, Vec<oneshot::Sender<()>>>,
}

/// Settings of the session table.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Sessions idle this long are closed.
    pub idle_timeout: Duration,
    /// At most this many sessions per owner; the least recently used is closed beyond it.
    pub max_per_owner: usize,
    /// At most this many live sessions in all; beyond it new sessions are refused.
    pub max_sessions: usize,
    /// Mailbox capacity.
    pub mailbox_capacity: usize,
    /// How long the bridge waits for the actor.
    pub timeout: Duration,
}

impl SessionLimits {
    /// The limits a [`Config`](crate::Config) sets.
    pub fn from_config(cfg: &crate::Config) -> Self {
        Self {
            idle_timeout: cfg.mcp_session_idle,
            max_per_owner: cfg.mcp_max_sessions_per_owner,
            max_sessions: cfg.mcp_max_sessions,
            mailbox_capacity: cfg.mailbox_capacity,
            timeout: cfg.actor_timeout,
        }
    }
}

/// The MCP session manager actor.
pub struct McpSessions {
    sessions: HashMap<SessionId, Entry>,
    /// The same sessions, readable without a message; written here only.
    directory: SessionDirectory,
    limits: SessionLimits,
}

impl SessionLimits {
    /// How often idle sessions are swept: a quarter of the idle timeout, between 1 s and
    /// 60 s. Also the `Retry-After` of a refusal when the table is full.
    pub fn sweep_interval(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl McpSessions {
    /// An empty session table.
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            sessions: HashMap::new(),
            directory: SessionDirectory::new(limits.idle_timeout),
            limits,
        }
    }

    /// The session table as readers see it without a message (the bearer guard).
    pub fn directory(&self) -> SessionDirectory {
        self.directory.clone()
    }

    /// Removes a session from the table and the directory.
    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        self.directory.remove(id);
        self.sessions.remove(id)
    }

    fn last_seen(&self, entry: &Entry) -> Instant {
        self.directory.last_seen(&entry.listed)
    }

    fn close_entry(id: &SessionId, entry: Entry) {
        tracing::debug!(session = %id, "closing MCP session");
        actix::spawn(async move {
            let _ = entry.listed.handle.close().await;
        });
    }

    fn expire_idle(&mut self) {
        let idle = self.limits.idle_timeout;
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, e)| self.last_seen(e).elapsed() > idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            // Rechecked under the directory's write lock: the guard may have admitted a
            // request to it since the look above.
            if self.directory.remove_if_idle(&id) {
                if let Some(entry) = self.sessions.remove(&id) {
                    Self::close_entry(&id, entry);
                }
            }
        }
    }
}

impl Metered for McpSessions {
    const KIND: ActorKind = ActorKind::Sessions;
}

impl Actor for McpSessions {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.limits.mailbox_capacity);
        ctx.run_interval(self.limits.sweep_interval(), |act, _| act.expire_idle());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.directory.clear();
        for (id, entry) in std::mem::take(&mut self.sessions) {
            Self::close_entry(&id, entry);
        }
    }
}

impl Handler<Stop> for McpSessions {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
