//! The guard in front of `/mcp`, run on every request (POST, GET, DELETE):
//!
//! 1. DNS-rebinding defence: a foreign `Host` or `Origin` gets 403 (Streamable HTTP
//!    "Security Warning"; checked before authentication so the answer does not depend on
//!    the token).
//! 2. Bearer authentication (RFC 6750 §2.1, header only; MCP authorization "Token
//!    Handling"): the token must be an active access token of the ledger, issued for this
//!    resource (RFC 8707 audience). Otherwise 401 with a challenge pointing to the RFC 9728
//!    metadata; `error="invalid_token"` only when a token was presented.
//! 3. Base scopes (403 `insufficient_scope`).
//! 4. Session binding: a session initialized by another principal answers 404 as if unknown.
//!    The session actor's answer ([`AdmitRequest`]) then serves rmcp's own session lookups
//!    for the rest of the request.
//! 5. The POST body (bounded) is read by [`peek`]: one JSON-RPC object, no duplicate keys,
//!    bounded nesting, members other than `method` and the target ignored whatever their
//!    types. A body it cannot read that far gets 400 (a JSON-RPC error): unparsed input is
//!    never a reason to skip a check.
//! 6. Per-target scopes: a `tools/call`, `prompts/get` or `resources/read` (and the other
//!    methods naming a resource URI) whose tool, prompt or resource needs scopes the token
//!    lacks gets 403 `insufficient_scope` with the scopes to request (MCP authorization,
//!    "Scope Challenge Handling"). [`crate::mcp::Scoped`] checks the same again at dispatch.
//! 7. An `initialize` naming no session may create one, owned by this caller from the start
//!    ([`NewSession`]); when the session table is full it gets 503 with `Retry-After`.
//!
//! The verified [`Caller`] goes into the request extensions, from where rmcp-actix-web's
//! hook hands it to handlers and to the dispatch-side backstop.

use std::borrow::Cow;

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{header, Method, StatusCode},
    middleware::Next,
    web::{Bytes, BytesMut},
    HttpMessage as _, HttpResponse,
};
use futures_util::StreamExt as _;

use crate::{
    actors::{
        mcp_sessions::{
            Admission, AdmitRequest, AdmittedSession, NewSession, Owner, SessionLimits,
        },
        token_ledger::IntrospectToken,
    },
    domain::{grant::TokenKind, scope::Scopes, secrets::PresentedToken},
    error::{Challenge, Error},
    mcp::{
        peek::{peek, TargetKind},
        Caller, ToolScopes,
    },
    services::Services,
};
use rmcp::transport::streamable_http_server::session::SessionId;

const SESSION_HEADER: &str = "mcp-session-id";

/// What [`Guard::admit`] lets through: permission to create a session (an `initialize`),
/// and the session admission to serve the request with.
type Admitted = (Option<NewSession>, Option<AdmittedSession>);

/// The state the guard needs; one per mounted endpoint.
pub struct Guard {
    /// The ledger and the session actor are asked through [`Services::ask`] (timeout and
    /// metrics included).
    services: Services,
    tool_scopes: ToolScopes,
}

impl Guard {
    /// A guard using `services`' ledger, session actor and settings.
    pub fn new(services: &Services, tool_scopes: ToolScopes) -> Self {
        Self {
            services: services.clone(),
            tool_scopes,
        }
    }

    fn challenge(
        &self,
        issuer: &str,
        status: StatusCode,
        error: Option<&'static str>,
        description: &'static str,
        scope: &Scopes,
    ) -> Error {
        Error::Challenge(Challenge {
            status,
            error,
            description: Cow::Borrowed(description),
            scope: scope.to_string(),
            resource_metadata: format!("{issuer}/.well-known/oauth-protected-resource/mcp"),
        })
    }

    /// Runs the checks, then the wrapped service. Refusals are rendered here (not returned
    /// as errors) so that the CORS middleware around us still decorates them: a browser
    /// client must be able to read `WWW-Authenticate` on a 401.
    pub async fn check<B: MessageBody>(
        &self,
        mut req: ServiceRequest,
        next: Next<B>,
    ) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
        let (new_session, session) = match self.admit(&mut req).await {
            Ok(a) => a,
            Err(e) => return Ok(req.error_response(e).map_into_right_body()),
        };
        let res = match (session, new_session) {
            (Some(session), _) => session.scope(next.call(req)).await?,
            (None, Some(new)) => {
                let (res, full) = new.scope(next.call(req)).await;
                let res = res?;
                if full {
                    // rmcp answered 500 for the refused session; say what happened.
                    // A slot frees when a session ends: at the latest, the next idle sweep.
                    let limits = SessionLimits::from_config(&self.services.settings.config);
                    let retry = limits.sweep_interval().as_secs();
                    let refusal = HttpResponse::ServiceUnavailable()
                        .insert_header((header::RETRY_AFTER, retry.to_string()))
                        .json(serde_json::json!({
                            "jsonrpc": "2.0",
                            "id": null,
                            "error": {
                                "code": -32603,
                                "message": "Service Unavailable: too many MCP sessions, retry later",
                            },
                        }));
                    return Ok(res.into_response(refusal).map_into_right_body());
                }
                res
            }
            (None, None) => next.call(req).await?,
        };
        Ok(res.map_into_left_body())
    }

    /// The checks. On success the caller is in the request extensions; for an `initialize`
    /// naming no session, the permission to create one owned by the caller comes back, and
    /// for a request naming a session, the session actor's answer about it.
    async fn admit(&self, req: &mut ServiceRequest) -> Result<Admitted, Error> {
        let settings = &self.services.settings;
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        match host.as_deref() {
            Some(h) if settings.host_allowed(h) => {}
            _ => {
                return Err(transport(
                    StatusCode::FORBIDDEN,
                    "Forbidden: Host header is not allowed",
                ));
            }
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            if !origin.to_str().is_ok_and(|o| settings.origin_allowed(o)) {
                return Err(transport(
                    StatusCode::FORBIDDEN,
                    "Forbidden: Origin header is not allowed",
                ));
            }
        }
        let issuer = super::issuer(req.request(), settings);
        let base = &settings.mcp_scopes;

        // Only the Authorization header carries tokens; `access_token` in the query string is
        // never looked at (MCP authorization "Token Requirements").
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_bearer)
            .map(str::to_owned);
        let Some(token) = token else {
            return Err(self.challenge(
                &issuer,
                StatusCode::UNAUTHORIZED,
                None,
                "a bearer token is required",
                base,
            ));
        };
        let info = self
            .services
            .ask(
                &self.services.ledger,
                IntrospectToken {
                    token: PresentedToken::new(token),
                },
            )
            .await?
            .map_err(Error::from)?;
        let Some(info) = info.filter(|i| i.kind == TokenKind::Access) else {
            return Err(self.challenge(
                &issuer,
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token is invalid, expired or revoked",
                base,
            ));
        };
        if !settings.is_own_resource(&info.resource) {
            return Err(self.challenge(
                &issuer,
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token was issued for another resource",
                base,
            ));
        }
        if !base.is_subset(&info.scopes) {
            return Err(self.challenge(
                &issuer,
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
                "the access token lacks the scopes this server requires",
                base,
            ));
        }
        let caller = Caller {
            subject: info.subject,
            client_id: info.client_id,
            scopes: info.scopes,
        };
        let owner = Owner {
            subject: caller.subject.clone(),
            client_id: caller.client_id.clone(),
        };

        let session = req
            .headers()
            .get(SESSION_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let mut admitted = None;
        if let Some(id) = &session {
            let id = SessionId::from(id.as_str());
            let msg = AdmitRequest {
                id: id.clone(),
                owner: owner.clone(),
            };
            let handle = match self.services.ask(&self.services.sessions, msg).await? {
                Admission::Admitted(handle) => Some(handle),
                Admission::Unknown => None,
                // Do not confirm that the session exists (security best practices,
                // "Session Hijacking").
                Admission::Foreign => {
                    return Err(transport(StatusCode::NOT_FOUND, "Session not found"))
                }
            };
            admitted = Some(AdmittedSession::new(id, handle));
        }

        let mut new_session = None;
        if req.method() == Method::POST {
            let body = read_body(req, settings.config.mcp_max_body_bytes).await?;
            // Fail closed: a body we cannot read far enough to decide is refused, never
            // passed on unchecked.
            let peek = peek(&body).map_err(|e| {
                tracing::debug!(request_id = %crate::http::request_id(), error = %e, "unreadable MCP request body");
                transport(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: the body must be one JSON-RPC message without duplicate keys",
                )
            })?;
            if let Some(target) = &peek.target {
                let checked =
                    self.tool_scopes
                        .check(base, &caller.scopes, target.kind, &target.name);
                if let Err(wanted) = checked {
                    let description = match target.kind {
                        TargetKind::Tool => "this tool needs a scope the access token lacks",
                        TargetKind::Resource => {
                            "this resource needs a scope the access token lacks"
                        }
                        TargetKind::Prompt => "this prompt needs a scope the access token lacks",
                    };
                    return Err(self.challenge(
                        &issuer,
                        StatusCode::FORBIDDEN,
                        Some("insufficient_scope"),
                        description,
                        &wanted,
                    ));
                }
            }
            if peek.is_initialize() && session.is_none() {
                new_session = Some(NewSession::new(
                    owner,
                    peek.protocol_version,
                    peek.client_info,
                ));
            }
            req.set_payload(Payload::from(body));
        }
        req.extensions_mut().insert(caller);
        Ok((new_session, admitted))
    }
}

/// The token of an `Authorization: Bearer <token>` header value (RFC 6750 §2.1): the scheme
/// is matched case-insensitively and the token is trimmed; `None` for another scheme, no
/// space after the scheme, or an empty token.
pub fn parse_bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.trim()).filter(|t| !t.is_empty())
}

fn transport(status: StatusCode, message: &'static str) -> Error {
    Error::Transport {
        status,
        message: Cow::Borrowed(message),
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<Bytes, Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(transport(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload Too Large",
        ));
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| transport(StatusCode::BAD_REQUEST, "Bad Request: unreadable body"))?;
        if body.len() + chunk.len() > limit {
            return Err(transport(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::parse_bearer;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bEaReR   abc  "), Some("abc"));
        assert_eq!(parse_bearer("Bearer  "), None);
        assert_eq!(parse_bearer("Bearer"), None);
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer(" Bearer abc"), None);
        assert_eq!(parse_bearer(""), None);
    }
}
