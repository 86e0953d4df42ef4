//! [`ActorSessionManager`]: rmcp's `SessionManager` implemented over the [`McpSessions`]
//! actor, so rmcp-actix-web keeps its sessions in the actor's table. Requests the guard
//! admitted are answered from its admission; sessions are created only under a
//! [`NewSession`] permission.

use std::{sync::atomic::Ordering, time::Duration};

use actix::prelude::*;
use futures_util::StreamExt as _;
use rmcp::{
    model::{ClientJsonRpcMessage, JsonRpcMessage, ServerJsonRpcMessage},
    transport::{
        streamable_http_server::session::{
            local::{
                create_local_session, EventId, LocalSessionHandle, LocalSessionWorker,
                SessionConfig, SessionError,
            },
            ServerSseMessage, SessionId, SessionManager,
        },
        WorkerTransport,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    streams::{merge_side_channel, RecordStream, StreamResumed, SIDE_CHANNEL_CAPACITY},
    AdmittedSession, CloseSession, CreateSession, McpSessions, NewSession, SessionLimits,
    SessionOwner, SessionsFull, TouchSession,
};

/// Errors of the bridge. rmcp turns them into HTTP 500; the bearer middleware answers the
/// policy refusals itself (404 for a foreign session first, 503 for [`Self::Full`] after).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionManagerError {
    /// No such session.
    #[error("session not found")]
    NotFound,
    /// A session was to be created outside [`NewSession::scope`]: it would have no owner.
    #[error("no authenticated owner for a new session")]
    NoOwner,
    /// The session table is full.
    #[error(transparent)]
    Full(#[from] SessionsFull),
    /// The actor did not answer in time.
    #[error("session manager unavailable: {0}")]
    Unavailable(#[from] actix::MailboxError),
    /// rmcp's session worker failed.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// rmcp's [`SessionManager`] implemented by asking the [`McpSessions`] actor. It asks with
/// actix's `send(..).timeout(..)` and the same bound as `Services::ask` (the actor
/// timeout), because rmcp wants its own error type back and these waits are rmcp's
/// bookkeeping, not a request's (the guard's own question to the actor is recorded).
#[derive(Clone)]
pub struct ActorSessionManager {
    addr: Addr<McpSessions>,
    config: SessionConfig,
    timeout: Duration,
    track_streams: bool,
}

impl ActorSessionManager {
    /// A bridge to `addr`. `idle` is also given to rmcp's worker as its keep-alive.
    pub fn new(addr: Addr<McpSessions>, limits: &SessionLimits) -> Self {
        let mut config = SessionConfig::default();
        config.keep_alive = Some(limits.idle_timeout);
        Self {
            addr,
            config,
            timeout: limits.timeout,
            track_streams: false,
        }
    }

    /// Records which HTTP stream carries each request, so a tool can close its own stream
    /// and wait for the client to resume ([`super::CloseRequestStream`]). Costs one actor
    /// round-trip per request; off by default.
    pub fn with_stream_tracking(mut self, on: bool) -> Self {
        self.track_streams = on;
        self
    }

    /// The handle of session `id` for the request being served: the one the guard admitted
    /// (owner checked), or the session this very request created. Any other id is served
    /// to nobody, so a route or a parser difference that skipped the guard's owner check
    /// cannot reach someone else's session (fail closed).
    async fn handle(&self, id: &SessionId) -> Result<LocalSessionHandle, SessionManagerError> {
        if let Some(admitted) = AdmittedSession::current(id) {
            return admitted.ok_or(SessionManagerError::NotFound);
        }
        if !NewSession::created_here(id) {
            tracing::warn!("MCP session named by a request the guard did not admit; refused");
            return Err(SessionManagerError::NotFound);
        }
        self.addr
            .send(TouchSession { id: id.clone() })
            .timeout(self.timeout)
            .await?
            .ok_or(SessionManagerError::NotFound)
    }
}

impl SessionManager for ActorSessionManager {
    type Error = SessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let Some(new) = NewSession::current() else {
            tracing::warn!("refusing to create an MCP session without an authenticated owner");
            return Err(SessionManagerError::NoOwner);
        };
        let id = rmcp::transport::common::server_side_http::session_id();
        let (handle, worker) = create_local_session(id.clone(), self.config.clone());
        let msg = CreateSession {
            id: id.clone(),
            handle,
            owner: new.owner,
            protocol_version: new.protocol_version,
            client_info: new.client_info,
        };
        if let Err(full) = self.addr.send(msg).timeout(self.timeout).await? {
            new.full.store(true, Ordering::Relaxed);
            return Err(full.into());
        }
        // One session per permission: a second create_session in the same request would
        // find `created` set and keep serving only the first.
        let _ = new.created.set(id.clone());
        Ok((id, WorkerTransport::spawn(worker)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.handle(id).await?.initialize(message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        if let Some(admitted) = AdmittedSession::current(id) {
            return Ok(admitted.is_some());
        }
        // Only the session this request created exists for it (see `handle`).
        if !NewSession::created_here(id) {
            return Ok(false);
        }
        Ok(self
            .addr
            .send(SessionOwner { id: id.clone() })
            .timeout(self.timeout)
            .await?
            .is_some())
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        // Called on DELETE and again when the worker exits: idempotent.
        if let Some(handle) = self
            .addr
            .send(CloseSession { id: id.clone() })
            .timeout(self.timeout)
            .await?
        {
            match handle.close().await {
                Ok(()) | Err(SessionError::SessionServiceTerminated) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        let handle = self.handle(id).await?;
        let receiver = handle.establish_request_wise_channel().await?;
        let http_request_id = receiver.http_request_id;
        let primary = ReceiverStream::new(receiver.inner);
        let mut side_rx = None;
        if self.track_streams {
            if let (JsonRpcMessage::Request(req), Some(hid)) = (&message, http_request_id) {
                let request_id = serde_json::to_string(&req.id).unwrap_or_default();
                let (side, rx) = mpsc::channel(SIDE_CHANNEL_CAPACITY);
                let msg = RecordStream {
                    id: id.clone(),
                    request_id,
                    http_request_id: hid,
                    side,
                };
                self.addr.send(msg).timeout(self.timeout).await?;
                side_rx = Some(rx);
            }
        }
        handle.push_message(message, http_request_id).await?;
        Ok(match side_rx {
            None => primary.left_stream(),
            Some(rx) => merge_side_channel(primary, ReceiverStream::new(rx)).right_stream(),
        })
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.handle(id).await?.push_message(message, None).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        let receiver = self.handle(id).await?.establish_common_channel().await?;
        Ok(ReceiverStream::new(receiver.inner))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        let event_id: EventId = last_event_id.parse().map_err(SessionError::from)?;
        let receiver = self.handle(id).await?.resume(event_id).await?;
        let stream = ReceiverStream::new(receiver.inner);
        // `<index>/<http_request_id>`: tell a tool waiting for this stream that the client is
        // back, so its result is produced only once someone is listening.
        let resumed = last_event_id
            .split_once('/')
            .and_then(|(_, hid)| hid.parse::<u64>().ok());
        if let (true, Some(http_request_id)) = (self.track_streams, resumed) {
            let msg = StreamResumed {
                id: id.clone(),
                http_request_id,
            };
            self.addr.send(msg).timeout(self.timeout).await?;
        }
        Ok(stream)
    }
}
