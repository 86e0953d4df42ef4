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
//! 5. Per-tool scopes: the body of a `tools/call` is read (bounded) to find the tool; a
//!    token lacking its scopes gets 403 `insufficient_scope` with the scopes to request.
//!
//! The verified [`Caller`] goes into the request extensions, from where rmcp-actix-web's
//! hook hands it to tool handlers. After an `initialize`, the new session's owner is
//! recorded with the session actor.

use std::borrow::Cow;

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{header, Method, StatusCode},
    middleware::Next,
    web::{Bytes, BytesMut},
    HttpMessage as _,
};
use futures_util::StreamExt as _;
use serde::Deserialize;

use crate::{
    actors::token_ledger::IntrospectToken,
    app::Services,
    domain::{scope::Scopes, secrets::PresentedToken},
    error::{Challenge, Error},
    mcp::{
        sessions::{Admission, AdmitRequest, AdmittedSession, Owner, RecordInitialize},
        Caller, ToolScopes,
    },
    storage::TokenKind,
};
use rmcp::transport::streamable_http_server::session::SessionId;

const SESSION_HEADER: &str = "mcp-session-id";

/// The parts of a JSON-RPC message the guard looks at.
#[derive(Deserialize)]
struct Peek {
    method: Option<String>,
    params: Option<PeekParams>,
}

#[derive(Deserialize)]
struct PeekParams {
    name: Option<String>,
    #[serde(rename = "protocolVersion")]
    protocol_version: Option<String>,
    #[serde(rename = "clientInfo")]
    client_info: Option<PeekClient>,
}

#[derive(Deserialize)]
struct PeekClient {
    name: Option<String>,
    version: Option<String>,
}

/// What [`Guard::admit`] lets through: the `initialize` to record, and the session
/// admission to serve the request with.
type Admitted = (Option<(PeekParams, Owner)>, Option<AdmittedSession>);

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
        let (initialize, session) = match self.admit(&mut req).await {
            Ok(a) => a,
            Err(e) => return Ok(req.error_response(e).map_into_right_body()),
        };
        let res = match session {
            Some(session) => session.scope(next.call(req)).await?,
            None => next.call(req).await?,
        };
        if let Some((params, owner)) = initialize {
            let id = res
                .headers()
                .get(SESSION_HEADER)
                .and_then(|h| h.to_str().ok());
            if let Some(id) = id {
                let client_info = params.client_info.map(|c| {
                    format!(
                        "{} {}",
                        c.name.unwrap_or_default(),
                        c.version.unwrap_or_default()
                    )
                    .trim()
                    .to_owned()
                });
                let msg = RecordInitialize {
                    id: id.into(),
                    owner,
                    protocol_version: params.protocol_version,
                    client_info,
                };
                if let Err(e) = self.services.ask(&self.services.sessions, msg).await {
                    tracing::warn!(request_id = %crate::http::request_id(), error = %e, "could not record the MCP session owner");
                }
            }
        }
        Ok(res.map_into_left_body())
    }

    /// The checks. On success the caller is in the request extensions; for an `initialize`
    /// the parameters and owner to record come back, and for a request naming a session,
    /// the session actor's answer about it.
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
        let issuer = settings.issuer_for_host(host.as_deref());
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

        let mut initialize = None;
        if req.method() == Method::POST {
            let body = read_body(req, settings.config.mcp_max_body_bytes).await?;
            if let Ok(peek) = serde_json::from_slice::<Peek>(&body) {
                match peek.method.as_deref() {
                    Some("tools/call") => {
                        let tool = peek
                            .params
                            .as_ref()
                            .and_then(|p| p.name.as_deref())
                            .unwrap_or_default();
                        if let Some(needed) = self.tool_scopes.for_tool(tool) {
                            if !needed.is_subset(&caller.scopes) {
                                // Ask for everything needed at once: the base scopes, the
                                // tool's, and what the token already has.
                                let wanted = Scopes::from_names(
                                    base.iter().chain(needed.iter()).chain(caller.scopes.iter()),
                                );
                                return Err(self.challenge(
                                    &issuer,
                                    StatusCode::FORBIDDEN,
                                    Some("insufficient_scope"),
                                    "this tool needs a scope the access token lacks",
                                    &wanted,
                                ));
                            }
                        }
                    }
                    Some("initialize") if session.is_none() => initialize = peek.params,
                    _ => {}
                }
            }
            req.set_payload(Payload::from(body));
        }
        req.extensions_mut().insert(caller);
        Ok((initialize.map(|p| (p, owner)), admitted))
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
