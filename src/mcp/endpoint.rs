//! [`McpEndpoint`]: an rmcp `ServerHandler` served at `/mcp` over Streamable HTTP
//! (rmcp-actix-web), with our session actor, bearer protection, DNS-rebinding defence and
//! CORS, plus the RFC 9728 protected-resource metadata it points clients to. The handler is
//! wrapped in [`Scoped`], so per-tool, per-resource and per-prompt scopes are enforced at
//! dispatch as well as by the guard.

use std::{borrow::Cow, sync::Arc};

use actix_cors::Cors;
use actix_web::{http::header, middleware::from_fn, web};
use rmcp::{model::ProtocolVersion, ServerHandler};
use rmcp_actix_web::transport::StreamableHttpService;

use super::{
    guard::Guard,
    sessions::{ActorSessionManager, SessionLimits},
    Caller, Scoped, ToolScopes,
};
use crate::{
    metrics::{Endpoint, Metrics},
    services::Services,
};

/// Protocol versions served: the three session-based revisions and the stateless
/// 2026-07-28 one. (2024-11-05 used the older HTTP+SSE transport, which is not served.)
pub fn supported_protocol_versions() -> Cow<'static, [ProtocolVersion]> {
    Cow::Borrowed(&[
        ProtocolVersion::V_2025_03_26,
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ])
}

/// An MCP server mounted at `/mcp`, protected by this crate's authorization server.
pub struct McpEndpoint<S> {
    service: StreamableHttpService<Scoped<S>, ActorSessionManager>,
    guard: Arc<Guard>,
    metrics: Arc<Metrics>,
}

impl<S> Clone for McpEndpoint<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            guard: Arc::clone(&self.guard),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<S> std::fmt::Debug for McpEndpoint<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpEndpoint")
    }
}

impl<S: ServerHandler + Send + 'static> McpEndpoint<S> {
    /// Serves the handlers `factory` builds (one per session, or per request on the
    /// stateless path), requiring the per-tool, per-resource and per-prompt scopes in
    /// `tool_scopes`: the guard answers 403 with a step-up challenge, and each handler is
    /// wrapped in [`Scoped`], which refuses the same calls at dispatch. Build once, outside
    /// `HttpServer::new`, and call [`McpEndpoint::configure`] in each worker.
    pub fn new<F>(services: &Services, factory: F, tool_scopes: ToolScopes) -> Self
    where
        F: Fn() -> S + Send + Sync + 'static,
    {
        Self::build(services, factory, tool_scopes, false)
    }

    /// Like [`McpEndpoint::new`], and also records which HTTP stream carries each request,
    /// so a tool can close its own SSE stream and wait for the client to resume it
    /// (SEP-1699; see [`super::sessions::CloseRequestStream`]). Costs one more actor
    /// round-trip per request.
    pub fn with_stream_tracking<F>(services: &Services, factory: F, tool_scopes: ToolScopes) -> Self
    where
        F: Fn() -> S + Send + Sync + 'static,
    {
        Self::build(services, factory, tool_scopes, true)
    }

    fn build<F>(services: &Services, factory: F, tool_scopes: ToolScopes, track: bool) -> Self
    where
        F: Fn() -> S + Send + Sync + 'static,
    {
        let cfg = &services.settings.config;
        let limits = SessionLimits::from_config(cfg);
        let manager = ActorSessionManager::new(services.sessions.clone(), &limits)
            .with_stream_tracking(track);
        let (scopes, base) = (tool_scopes.clone(), services.settings.mcp_scopes.clone());
        let service = StreamableHttpService::builder()
            .service_factory(Arc::new(move || {
                Ok(Scoped::new(factory(), scopes.clone(), base.clone()))
            }))
            .session_manager(Arc::new(manager))
            .stateful_mode(true)
            // Stateless (2026-07-28) requests whose handler answers with no message before
            // its result get one `application/json` body instead of an SSE stream (Streamable
            // HTTP: the server may answer either; clients MUST accept both). rmcp falls back
            // to SSE as soon as the handler sends a notification or request first, so no
            // message is lost. Session-based requests are not affected. About a third of a
            // stateless call's cost (the SSE priming event, a second write, the stream task).
            .json_response(true)
            // Host and Origin are checked by our guard, against the configured lists, before
            // authentication; an empty list turns rmcp's own loopback-only check off.
            .allowed_hosts(Vec::new())
            .max_request_body_bytes(cfg.mcp_max_body_bytes)
            .on_request_fn(|req, ext| {
                use actix_web::HttpMessage as _;
                if let Some(caller) = req.extensions().get::<Caller>() {
                    ext.insert(caller.clone());
                }
            })
            .build();
        let guard = Arc::new(Guard::new(services, tool_scopes));
        Self {
            service,
            guard,
            metrics: Arc::clone(&services.metrics),
        }
    }

    /// Mounts `/mcp` and the protected-resource metadata documents.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let guard = Arc::clone(&self.guard);
        cfg.service(
            self.service
                .clone()
                .scope_with_path("/mcp")
                .wrap(from_fn(move |req, next| {
                    let guard = Arc::clone(&guard);
                    async move { guard.check(req, next).await }
                }))
                .wrap(mcp_cors())
                .wrap(crate::http::track(&self.metrics, Endpoint::Mcp)),
        );
        crate::http::well_known::configure_resource_metadata(cfg, &self.metrics);
    }
}

/// CORS for browser-based MCP clients (MCP Inspector and web agents): the MCP headers are
/// allowed, and the session id and challenge are readable by scripts.
fn mcp_cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods(["GET", "POST", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("mcp-session-id"),
            header::HeaderName::from_static("mcp-protocol-version"),
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("mcp-method"),
            header::HeaderName::from_static("mcp-name"),
        ])
        .expose_headers([
            header::HeaderName::from_static("mcp-session-id"),
            header::WWW_AUTHENTICATE,
        ])
        .max_age(86_400)
}
