//! The session binding of `/mcp` (Streamable HTTP "Session Management"; security best
//! practices, "Session Hijacking"): a session id never authenticates; a request naming a
//! session is served only if the session belongs to the caller, and one initialized by
//! another principal answers 404 as if unknown. The answer then serves rmcp's own session
//! lookups for the rest of the request ([`AdmittedSession`]). An `initialize` naming no
//! session may create one owned by the caller ([`crate::actors::mcp_sessions::NewSession`]); when the table is full, the
//! refusal is 503 with `Retry-After` ([`full`]).

use actix_web::{
    http::{header, header::HeaderMap, StatusCode},
    HttpResponse,
};
use rmcp::transport::streamable_http_server::session::SessionId;

use crate::{
    actors::mcp_sessions::{Admission, AdmittedSession, Owner, SessionLimits},
    config::Settings,
    error::Error,
    http::bearer::transport,
    services::Services,
};

/// The header naming a session.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// The session a request names, if any (a value that is not visible ASCII names none).
pub fn named(headers: &HeaderMap) -> Option<SessionId> {
    headers
        .get(SESSION_HEADER)
        .and_then(|h| h.to_str().ok())
        .map(SessionId::from)
}

/// Admits a request naming session `id` for `owner`: the admission (with the handle, or
/// none for an unknown session, which rmcp then answers 404), or 404 for another
/// principal's session. Read from the session directory: no message to the actor.
pub fn admit(services: &Services, id: SessionId, owner: &Owner) -> Result<AdmittedSession, Error> {
    let handle = match services.session_directory.admit(&id, owner) {
        Admission::Admitted(handle) => Some(handle),
        Admission::Unknown => None,
        // Do not confirm that the session exists (security best practices,
        // "Session Hijacking").
        Admission::Foreign => return Err(transport(StatusCode::NOT_FOUND, "Session not found")),
    };
    Ok(AdmittedSession::new(id, handle))
}

/// The answer to an `initialize` refused because the session table is full (rmcp answered
/// 500 for it): 503 with `Retry-After` the idle-sweep interval, when a slot frees at the
/// latest.
pub fn full(settings: &Settings) -> HttpResponse {
    let retry = SessionLimits::from_config(&settings.config)
        .sweep_interval()
        .as_secs();
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, retry.to_string()))
        .json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32603,
                "message": "Service Unavailable: too many MCP sessions, retry later",
            },
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_header_names_a_session_only_when_readable() {
        let mut headers = HeaderMap::new();
        assert!(named(&headers).is_none());
        headers.insert(
            header::HeaderName::from_static(SESSION_HEADER),
            "abc".parse().unwrap(),
        );
        assert_eq!(named(&headers).as_deref(), Some("abc"));
        headers.insert(
            header::HeaderName::from_static(SESSION_HEADER),
            header::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        assert!(named(&headers).is_none());
    }

    #[actix_web::test]
    async fn a_full_table_is_a_503_with_retry_after() {
        let settings = crate::Config::default().settings(8000).unwrap();
        let res = full(&settings);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "60");
    }
}
