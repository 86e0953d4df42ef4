//! Bearer protection of a resource this server serves over HTTP, as the checks a guard runs
//! in order, each in its own module with its own tests:
//!
//! 1. [`origin`]: the DNS-rebinding defence (a foreign `Host` or `Origin` gets 403;
//!    Streamable HTTP "Security Warning"), checked before authentication so the answer does
//!    not depend on the token.
//! 2. [`token`]: bearer authentication (RFC 6750 §2.1, header only): an active access token
//!    of the ledger, issued for this resource (RFC 8707 audience), carrying the base scopes.
//!    Otherwise 401 with a challenge pointing to the RFC 9728 metadata, or 403
//!    `insufficient_scope`.
//! 3. Per-target scopes: the protected protocol's own check, answered with a [`challenge`]
//!    naming the scopes to request. For `/mcp` that check, the reading of the body it needs
//!    and the session binding are MCP's (`crate::mcp::guard`), which runs these checks
//!    first: `http` knows nothing about MCP (docs/architecture.md, "Allowed imports").

pub mod origin;
pub mod token;

use std::borrow::Cow;

use actix_web::{
    dev::ServiceRequest,
    http::{header, StatusCode},
    web::{Bytes, BytesMut},
    HttpMessage as _,
};
use futures_util::StreamExt as _;

pub use token::parse_bearer;

use crate::{
    domain::scope::Scopes,
    error::{Challenge, Error},
};

/// A `WWW-Authenticate: Bearer` refusal pointing to the protected-resource metadata of
/// `/mcp` under `issuer` (RFC 9728 §5.1), asking for `scope`. `offline_access` is never
/// named: it is a scope of the grant, not of the resource (SEP-2207), so a step-up union
/// that met it (an operator's tool scopes, say) drops it here, the one place challenges are
/// made.
pub fn challenge(
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
        scope: scope.for_access_token().to_string(),
        resource_metadata: format!("{issuer}/.well-known/oauth-protected-resource/mcp"),
    })
}

/// A transport-level refusal (a JSON-RPC error body with `status`).
pub fn transport(status: StatusCode, message: &'static str) -> Error {
    Error::Transport {
        status,
        message: Cow::Borrowed(message),
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413 (a declared length over
/// the limit is refused before anything is read).
pub async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<Bytes, Error> {
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
    use super::*;

    #[test]
    fn a_challenge_never_names_offline_access() {
        let scope = Scopes::from_names(["mcp:read", "offline_access", "mcp:write"]);
        let Error::Challenge(c) = challenge(
            "https://as.example",
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "more",
            &scope,
        ) else {
            panic!("not a challenge");
        };
        assert_eq!(c.scope, "mcp:read mcp:write");
    }
}
