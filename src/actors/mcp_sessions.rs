//! The MCP session manager actor, [`McpSessions`], and the bridge that plugs it into rmcp
//! as its [`SessionManager`].
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
//! [`ActorSessionManager::create_session`] refuses to create a session outside one. So
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
//! and a session used by another principal answers 404 as if unknown (see `http::bearer`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, OnceLock, PoisonError, RwLock,
    },
    time::{Duration, Instant},
};

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
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::Stop;
use crate::metrics::{ActorKind, Metered};

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

/// One session as the [`SessionDirectory`] lists it.
struct Listed {
    owner: Owner,
    handle: LocalSessionHandle,
    /// Last use, in milliseconds since the directory's `base`.
    last_seen_ms: AtomicU64,
}

/// The session table as the bearer guard reads it, without a message to the actor: session
/// id → owner, handle, last use. Only [`McpSessions`] adds and removes sessions; a reader
/// may only mark a session used ([`SessionDirectory::admit`]). Cheap to clone.
#[derive(Clone)]
pub struct SessionDirectory {
    base: Instant,
    sessions: Arc<RwLock<HashMap<SessionId, Arc<Listed>>>>,
}

impl std::fmt::Debug for SessionDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionDirectory")
    }
}

impl SessionDirectory {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            sessions: Arc::default(),
        }
    }

    /// Is session `id` the caller's? If so it is marked used and its handle comes back.
    pub fn admit(&self, id: &SessionId, owner: &Owner) -> Admission {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        match sessions.get(id) {
            None => Admission::Unknown,
            Some(listed) if listed.owner != *owner => Admission::Foreign,
            Some(listed) => {
                self.touch(listed);
                Admission::Admitted(listed.handle.clone())
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn listed(&self, owner: Owner, handle: LocalSessionHandle) -> Arc<Listed> {
        Arc::new(Listed {
            owner,
            handle,
            last_seen_ms: AtomicU64::new(self.now_ms()),
        })
    }

    fn touch(&self, listed: &Listed) {
        listed
            .last_seen_ms
            .fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    fn last_seen(&self, listed: &Listed) -> Instant {
        self.base + Duration::from_millis(listed.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Writes are the actor's: these three are private to this module.
    fn insert(&self, id: SessionId, listed: Arc<Listed>) {
        self.write().insert(id, listed);
    }

    fn remove(&self, id: &SessionId) {
        self.write().remove(id);
    }

    fn clear(&self) {
        self.write().clear();
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SessionId, Arc<Listed>>> {
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
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
            directory: SessionDirectory::new(),
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
            if let Some(entry) = self.remove(&id) {
                Self::close_entry(&id, entry);
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

/// The live-session table is full ([`SessionLimits::max_sessions`]).
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

/// [`SessionDirectory::admit`] as a message, for a holder of the actor's address only (the
/// bearer guard reads the directory instead): is the session the caller's? If so it is
/// marked used and its handle comes back, so that the rest of the request needs no further
/// round-trip (see [`AdmittedSession`]).
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

tokio::task_local! {
    /// The session the guard admitted for the request being served on this task.
    static ADMITTED: AdmittedSession;
}

/// The answer of [`AdmitRequest`], kept for the rest of one request.
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
    fn current(id: &SessionId) -> Option<Option<LocalSessionHandle>> {
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
/// [`ActorSessionManager::create_session`] creates sessions only under it.
#[derive(Debug, Clone)]
pub struct NewSession {
    owner: Owner,
    protocol_version: Option<String>,
    client_info: Option<String>,
    full: Arc<AtomicBool>,
    /// The id of the session created under this permission: the one session a request
    /// without an admission may be served (rmcp initializes it right after creating it).
    created: Arc<OnceLock<SessionId>>,
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

    fn current() -> Option<Self> {
        NEW_SESSION.try_with(Clone::clone).ok()
    }

    /// Whether `id` is the session this request created.
    fn created_here(id: &SessionId) -> bool {
        NEW_SESSION
            .try_with(|new| new.created.get() == Some(id))
            .unwrap_or(false)
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

/// Remembers which HTTP stream carries a JSON-RPC request, and its side channel (stream
/// tracking only).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct RecordStream {
    id: SessionId,
    request_id: String,
    http_request_id: u64,
    side: mpsc::Sender<ServerSseMessage>,
}

impl Handler<RecordStream> for McpSessions {
    type Result = ();
    fn handle(&mut self, msg: RecordStream, _: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.id) {
            // Finished requests' channels are closed; drop those, and bound the rest.
            entry.side_channels.retain(|_, tx| !tx.is_closed());
            if entry.streams.len() > 1024 || entry.side_channels.len() > 1024 {
                entry.streams.clear();
                entry.side_channels.clear();
            }
            entry
                .streams
                .insert(msg.request_id.clone(), msg.http_request_id);
            entry.side_channels.insert(msg.request_id, msg.side);
        }
    }
}

/// The side channel into a request's POST stream, if the request is still streaming.
#[derive(Debug, Message)]
#[rtype(result = "Option<mpsc::Sender<ServerSseMessage>>")]
pub struct RequestChannel {
    /// The session.
    pub id: SessionId,
    /// The JSON-RPC request id, as JSON text.
    pub request_id: String,
}

impl Handler<RequestChannel> for McpSessions {
    type Result = Option<mpsc::Sender<ServerSseMessage>>;
    fn handle(&mut self, msg: RequestChannel, _: &mut Self::Context) -> Self::Result {
        let tx = self
            .sessions
            .get(&msg.id)?
            .side_channels
            .get(&msg.request_id)?;
        (!tx.is_closed()).then(|| tx.clone())
    }
}

/// A client resumed an HTTP stream with `Last-Event-ID`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct StreamResumed {
    id: SessionId,
    http_request_id: u64,
}

impl Handler<StreamResumed> for McpSessions {
    type Result = ();
    fn handle(&mut self, msg: StreamResumed, _: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.id) {
            for waiter in entry
                .resume_waiters
                .remove(&msg.http_request_id)
                .unwrap_or_default()
            {
                let _ = waiter.send(());
            }
        }
    }
}

/// Closes the SSE stream that carries a JSON-RPC request (SEP-1699 server-initiated
/// disconnect) and answers a receiver that fires when the client has resumed it. Needs
/// stream tracking (see [`ActorSessionManager::with_stream_tracking`]).
#[derive(Debug, Message)]
#[rtype(result = "Option<oneshot::Receiver<()>>")]
pub struct CloseRequestStream {
    /// The session.
    pub id: SessionId,
    /// The JSON-RPC request id, as JSON text (e.g. `3` or `"abc"`).
    pub request_id: String,
    /// The `retry` hint sent to the client.
    pub retry: Duration,
}

impl Handler<CloseRequestStream> for McpSessions {
    type Result = Option<oneshot::Receiver<()>>;
    fn handle(&mut self, msg: CloseRequestStream, _: &mut Self::Context) -> Self::Result {
        let entry = self.sessions.get_mut(&msg.id)?;
        let http_request_id = *entry.streams.get(&msg.request_id)?;
        let (tx, rx) = oneshot::channel();
        entry
            .resume_waiters
            .entry(http_request_id)
            .or_default()
            .push(tx);
        let handle = entry.listed.handle.clone();
        let retry = msg.retry;
        actix::spawn(async move {
            if let Err(e) = handle.close_sse_stream(http_request_id, Some(retry)).await {
                tracing::debug!(error = %e, "closing request stream failed");
            }
        });
        Some(rx)
    }
}

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
    /// and wait for the client to resume ([`CloseRequestStream`]). Costs one actor
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

/// Capacity of a request's side channel.
const SIDE_CHANNEL_CAPACITY: usize = 64;

/// Merges a request's side channel into its rmcp stream. The side channel is polled first,
/// so a notification sent before the tool returns goes out before the result; the merged
/// stream ends as soon as rmcp's stream does (the response has been sent), whatever is
/// left in the side channel. Side-channel events carry no event id, so they are not
/// replayed on resumption.
fn merge_side_channel<P, S>(
    primary: P,
    side: S,
) -> impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static
where
    P: futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    S: futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
{
    use futures_util::stream::{self, PollNext};
    let primary = primary.map(Some).chain(stream::once(async { None }));
    stream::select_with_strategy(side.map(Some), primary, |_: &mut ()| PollNext::Left)
        .take_while(|m| std::future::ready(m.is_some()))
        .filter_map(std::future::ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn the_directory_answers_the_owner_check_as_the_actor_writes_it() {
        let limits = SessionLimits::from_config(&crate::Config::default());
        let sessions = McpSessions::new(limits.clone());
        let directory = sessions.directory();
        let addr = sessions.start();
        let alice = Owner {
            subject: Some("alice".into()),
            client_id: "c".into(),
        };
        let mallory = Owner {
            subject: Some("mallory".into()),
            client_id: "c".into(),
        };
        let id = SessionId::from("s1");
        assert!(matches!(directory.admit(&id, &alice), Admission::Unknown));
        let (handle, _worker) = create_local_session(id.clone(), SessionConfig::default());
        let msg = CreateSession {
            id: id.clone(),
            handle,
            owner: alice.clone(),
            protocol_version: None,
            client_info: None,
        };
        addr.send(msg).await.unwrap().unwrap();
        assert!(matches!(directory.admit(&id, &mallory), Admission::Foreign));
        let before = addr.send(ListSessions).await.unwrap()[0].1.last_seen;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            directory.admit(&id, &alice),
            Admission::Admitted(_)
        ));
        // The read marked the session used, as the actor sees it (idle expiry).
        let after = addr.send(ListSessions).await.unwrap()[0].1.last_seen;
        assert!(after > before);
        assert!(matches!(
            addr.send(AdmitRequest {
                id: id.clone(),
                owner: mallory
            })
            .await
            .unwrap(),
            Admission::Foreign
        ));
        assert!(addr
            .send(CloseSession { id: id.clone() })
            .await
            .unwrap()
            .is_some());
        assert!(matches!(directory.admit(&id, &alice), Admission::Unknown));
    }

    #[actix::test]
    async fn a_session_is_served_only_to_an_admitted_request_or_the_one_that_created_it() {
        let limits = SessionLimits::from_config(&crate::Config::default());
        let manager = ActorSessionManager::new(McpSessions::new(limits.clone()).start(), &limits);
        let owner = Owner {
            subject: Some("alice".into()),
            client_id: "c".into(),
        };
        let new = NewSession::new(owner, None, None);
        let (created, _) = new
            .scope(async {
                let (id, _transport) = manager.create_session().await.unwrap();
                // The creating request may use it (rmcp initializes it next).
                assert!(manager.has_session(&id).await.unwrap());
                id
            })
            .await;
        let ping: ClientJsonRpcMessage = serde_json::from_value(
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        )
        .unwrap();
        // Any other request that the guard did not admit finds nothing, though it exists.
        assert!(!manager.has_session(&created).await.unwrap());
        assert!(matches!(
            manager.create_stream(&created, ping).await,
            Err(SessionManagerError::NotFound)
        ));
        // A second creating request does not inherit the first one's session.
        let other = NewSession::new(
            Owner {
                subject: Some("mallory".into()),
                client_id: "c".into(),
            },
            None,
            None,
        );
        let (seen, _) = other.scope(manager.has_session(&created)).await;
        assert!(!seen.unwrap());
    }
}
