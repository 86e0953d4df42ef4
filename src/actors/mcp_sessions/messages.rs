//! The session table's messages: creating a session (with the per-owner and global caps),
//! the owner check as a message, the handle for a request, closing, counting and listing.

use std::{collections::HashMap, sync::Arc, time::Instant};

use actix::prelude::*;
use rmcp::transport::streamable_http_server::session::{local::LocalSessionHandle, SessionId};

use super::{Entry, McpSessions, Owner, SessionInfo};

/// The live-session table is full ([`super::SessionLimits::max_sessions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many live MCP sessions")]
pub struct SessionsFull;

/// Adds a freshly created session (before its `initialize` completes), owned by the caller
/// whose request created it. Refused when the table is full; when the owner is at its cap,
/// its own least recently used sessions are closed to make room.
#[derive(Message)]
#[rtype(result = "Result<(), SessionsFull>")]
pub struct CreateSession {
    /// The new id.
    pub id: SessionId,
    /// rmcp's handle to the session worker.
    pub handle: LocalSessionHandle,
    /// The authenticated caller that created it.
    pub owner: Owner,
    /// Requested protocol version (`params.protocolVersion` of the `initialize`).
    pub protocol_version: Option<String>,
    /// Client name and version (`params.clientInfo`).
    pub client_info: Option<String>,
}

impl Handler<CreateSession> for McpSessions {
    type Result = Result<(), SessionsFull>;
    fn handle(&mut self, msg: CreateSession, _: &mut Self::Context) -> Self::Result {
        let mut owned: Vec<(Instant, SessionId)> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.info.owner == msg.owner)
            .map(|(id, e)| (self.last_seen(e), id.clone()))
            .collect();
        // Room the owner's own eviction would make, so an owner at its cap is never refused
        // because of its own sessions.
        let excess = (owned.len() + 1).saturating_sub(self.limits.max_per_owner);
        if self.sessions.len().saturating_sub(excess) >= self.limits.max_sessions {
            tracing::warn!("MCP session table full, refusing a new session");
            return Err(SessionsFull);
        }
        if excess > 0 {
            owned.sort();
            for (_, id) in owned.into_iter().take(excess) {
                if let Some(entry) = self.remove(&id) {
                    tracing::info!(session = %id, "per-owner session cap reached, closing the least recently used");
                    Self::close_entry(&id, entry);
                }
            }
        }
        let now = Instant::now();
        let listed = self.directory.listed(msg.owner.clone(), msg.handle);
        self.directory.insert(msg.id.clone(), Arc::clone(&listed));
        self.sessions.insert(
            msg.id,
            Entry {
                listed,
                info: SessionInfo {
                    owner: msg.owner,
                    protocol_version: msg.protocol_version,
                    client_info: msg.client_info,
                    created: now,
                    last_seen: now,
                },
                streams: HashMap::new(),
                side_channels: HashMap::new(),
                resume_waiters: HashMap::new(),
            },
        );
        Ok(())
    }
}

/// Answers a session's owner: `None` if the session is unknown.
#[derive(Debug, Message)]
#[rtype(result = "Option<Owner>")]
pub struct SessionOwner {
    /// The session.
    pub id: SessionId,
}

impl Handler<SessionOwner> for McpSessions {
    type Result = Option<Owner>;
    fn handle(&mut self, msg: SessionOwner, _: &mut Self::Context) -> Self::Result {
        self.sessions.get(&msg.id).map(|e| e.info.owner.clone())
    }
}

/// What [`AdmitRequest`] found.
#[derive(Debug)]
pub enum Admission {
    /// No such session: rmcp answers 404.
    Unknown,
    /// The session belongs to someone else.
    Foreign,
    /// The session is the caller's; it was marked used.
    Admitted(LocalSessionHandle),
}

/// [`super::SessionDirectory::admit`] as a message, for a holder of the actor's address only (the
/// bearer guard reads the directory instead): is the session the caller's? If so it is
/// marked used and its handle comes back, so that the rest of the request needs no further
/// round-trip (see [`super::AdmittedSession`]).
#[derive(Debug, Message)]
#[rtype(result = "Admission")]
pub struct AdmitRequest {
    /// The session named by the request.
    pub id: SessionId,
    /// The authenticated caller.
    pub owner: Owner,
}

impl Handler<AdmitRequest> for McpSessions {
    type Result = MessageResult<AdmitRequest>;
    fn handle(&mut self, msg: AdmitRequest, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.directory.admit(&msg.id, &msg.owner))
    }
}

/// Returns a session's handle and marks it used.
#[derive(Message)]
#[rtype(result = "Option<LocalSessionHandle>")]
pub struct TouchSession {
    /// The session.
    pub id: SessionId,
}

impl Handler<TouchSession> for McpSessions {
    type Result = Option<LocalSessionHandle>;
    fn handle(&mut self, msg: TouchSession, _: &mut Self::Context) -> Self::Result {
        let entry = self.sessions.get(&msg.id)?;
        self.directory.touch(&entry.listed);
        Some(entry.listed.handle.clone())
    }
}

/// Removes a session (DELETE, worker exit) and answers its handle so the caller can close
/// the worker. Idempotent.
#[derive(Message)]
#[rtype(result = "Option<LocalSessionHandle>")]
pub struct CloseSession {
    /// The session.
    pub id: SessionId,
}

impl Handler<CloseSession> for McpSessions {
    type Result = Option<LocalSessionHandle>;
    fn handle(&mut self, msg: CloseSession, _: &mut Self::Context) -> Self::Result {
        self.remove(&msg.id).map(|e| e.listed.handle.clone())
    }
}

/// Number of live sessions (metrics).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountSessions;

impl Handler<CountSessions> for McpSessions {
    type Result = usize;
    fn handle(&mut self, _: CountSessions, _: &mut Self::Context) -> usize {
        self.sessions.len()
    }
}

/// Lists the live sessions (administration, metrics, tests).
#[derive(Debug, Message)]
#[rtype(result = "Vec<(SessionId, SessionInfo)>")]
pub struct ListSessions;

impl Handler<ListSessions> for McpSessions {
    type Result = Vec<(SessionId, SessionInfo)>;
    fn handle(&mut self, _: ListSessions, _: &mut Self::Context) -> Self::Result {
        self.sessions
            .iter()
            .map(|(id, e)| {
                let mut info = e.info.clone();
                info.last_seen = self.last_seen(e);
                (id.clone(), info)
            })
            .collect()
    }
}
