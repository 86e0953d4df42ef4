//! The MCP server at `/mcp`: rmcp's Streamable HTTP transport (through rmcp-actix-web)
//! behind our bearer protection, with sessions owned by the [`sessions::McpSessions`] actor.
//!
//! - [`McpEndpoint`] mounts any rmcp `ServerHandler` at `/mcp` (ours, [`demo::DemoServer`],
//!   or an embedding application's own) with authentication, sessions and identity.
//! - [`Caller`] is the verified identity of the current request; tools read it with
//!   [`caller`].
//! - [`ToolScopes`] declares which scopes each tool, resource and prompt needs; the bearer
//!   middleware answers `403 insufficient_scope` for a `tools/call`, `resources/read` or
//!   `prompts/get` the token may not make (MCP authorization, "Scope Challenge Handling"),
//!   so clients can step up; [`Scoped`], which [`McpEndpoint`] wraps around every handler,
//!   refuses the same calls again at dispatch, from rmcp's own parse of the request.
//! - [`guard::Guard`] runs in front of every `/mcp` request: the HTTP layer's origin and
//!   token checks ([`crate::http::bearer`]), then the session binding, the reading of the
//!   body ([`peek`]) and the per-target scopes.

pub mod demo;
pub mod endpoint;
pub mod guard;
pub mod peek;
pub mod scoped;
/// The MCP session actor and its rmcp bridge live with the other actors
/// ([`crate::actors::mcp_sessions`]); this path is kept for embedders.
pub use crate::actors::mcp_sessions as sessions;

use std::{collections::HashMap, sync::Arc};

use rmcp::{service::RequestContext, RoleServer};

pub use endpoint::McpEndpoint;
pub use peek::{Target, TargetKind};
pub use scoped::Scoped;

use crate::domain::scope::Scopes;

/// The verified caller of an MCP request, taken from its access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The resource owner (`None` for client_credentials tokens).
    pub subject: Option<String>,
    /// The OAuth client that holds the token.
    pub client_id: String,
    /// The token's scopes.
    pub scopes: Scopes,
}

impl Caller {
    /// True when the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// The caller of the request a tool, resource or prompt handler is serving.
pub fn caller(ctx: &RequestContext<RoleServer>) -> Option<Caller> {
    rmcp_actix_web::transport::on_request_extensions(&ctx.extensions)
        .and_then(|ext| ext.get::<Caller>())
        .cloned()
}

#[expect(
    deprecated,
    reason = "logging is deprecated by SEP-2577 but part of every session-based protocol version we serve"
)]
/// Sends a log notification (`notifications/message`) on the POST stream of the tool call
/// `ctx` is serving, so clients that never open the GET stream still see it, in order,
/// before the result. Needs an endpoint built with stream tracking
/// ([`McpEndpoint::with_stream_tracking`]); otherwise, or when the call's stream is gone,
/// it falls back to rmcp's routing (the session's GET stream).
pub async fn notify_log(
    ctx: &RequestContext<RoleServer>,
    sessions: &actix::Addr<sessions::McpSessions>,
    param: rmcp::model::LoggingMessageNotificationParam,
) -> Result<(), rmcp::service::ServiceError> {
    use rmcp::model::{Notification, ServerJsonRpcMessage, ServerNotification};
    use rmcp::transport::streamable_http_server::session::ServerSseMessage;
    let session = ctx
        .extensions
        .get::<rmcp_actix_web::transport::http::request::Parts>()
        .and_then(|p| p.headers.get("mcp-session-id"))
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let request_id = serde_json::to_string(&ctx.id).unwrap_or_default();
    if let Some(id) = session {
        let msg = sessions::RequestChannel {
            id: id.into(),
            request_id,
        };
        if let Ok(Some(tx)) = sessions.send(msg).await {
            let notification = ServerJsonRpcMessage::notification(
                ServerNotification::LoggingMessageNotification(Notification::new(param.clone())),
            );
            if tx
                .send(ServerSseMessage::from_message(notification))
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    ctx.peer.notify_logging_message(param).await
}

/// Scopes required per tool, resource and prompt. Every MCP request needs the endpoint's
/// base scopes; a tool, resource or prompt listed here needs its own scopes in addition.
///
/// Enforced twice, on the same map: by the bearer guard before rmcp sees the request (HTTP
/// 403 `insufficient_scope` with the scopes to request, so the client can step up), and by
/// [`Scoped`] around the handler when rmcp dispatches it (a JSON-RPC error). Names and URIs
/// are compared exactly, as the JSON strings decode: a handler that matches resource URIs
/// loosely (case, trailing slashes, templates) must check [`caller`]'s scopes itself for the
/// variants it accepts.
#[derive(Debug, Clone, Default)]
pub struct ToolScopes {
    tools: Arc<HashMap<String, Scopes>>,
    resources: Arc<HashMap<String, Scopes>>,
    prompts: Arc<HashMap<String, Scopes>>,
}

impl ToolScopes {
    /// No per-tool, per-resource or per-prompt requirements.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `scopes` for calls of `tool` (`tools/call`). (`offline_access` can never be
    /// met here: access tokens never carry it, SEP-2207, so a tool requiring it is refused
    /// to everyone.)
    pub fn require<I, S>(mut self, tool: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.tools).insert(tool.to_owned(), Scopes::from_names(scopes));
        self
    }

    /// Requires `scopes` to read the resource at `uri` (`resources/read`, and
    /// `resources/subscribe`, `skills/get` and `resources/directory/read` naming it).
    pub fn require_resource<I, S>(mut self, uri: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.resources).insert(uri.to_owned(), Scopes::from_names(scopes));
        self
    }

    /// Requires `scopes` to get the prompt `name` (`prompts/get`).
    pub fn require_prompt<I, S>(mut self, name: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.prompts).insert(name.to_owned(), Scopes::from_names(scopes));
        self
    }

    /// The scopes `tool` requires beyond the base scopes.
    pub fn for_tool(&self, tool: &str) -> Option<&Scopes> {
        self.tools.get(tool)
    }

    /// The scopes the resource at `uri` requires beyond the base scopes.
    pub fn for_resource(&self, uri: &str) -> Option<&Scopes> {
        self.resources.get(uri)
    }

    /// The scopes the prompt `name` requires beyond the base scopes.
    pub fn for_prompt(&self, name: &str) -> Option<&Scopes> {
        self.prompts.get(name)
    }

    /// The scopes `kind` `name` requires beyond the base scopes.
    pub fn for_target(&self, kind: TargetKind, name: &str) -> Option<&Scopes> {
        match kind {
            TargetKind::Tool => self.for_tool(name),
            TargetKind::Resource => self.for_resource(name),
            TargetKind::Prompt => self.for_prompt(name),
        }
    }

    /// May a caller holding `held` use `kind` `name` on an endpoint requiring `base`? On
    /// refusal, the scopes to ask for: the base scopes, the target's and what the token
    /// already has, so one step-up grants everything at once.
    pub fn check(
        &self,
        base: &Scopes,
        held: &Scopes,
        kind: TargetKind,
        name: &str,
    ) -> Result<(), Scopes> {
        let needed = self.for_target(kind, name);
        if base.is_subset(held) && needed.is_none_or(|n| n.is_subset(held)) {
            return Ok(());
        }
        let none = Scopes::default();
        Err(Scopes::from_names(
            base.iter()
                .chain(needed.unwrap_or(&none).iter())
                .chain(held.iter()),
        ))
    }
}
