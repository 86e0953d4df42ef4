//! The token check of a protected resource (RFC 6750 §2.1; MCP authorization "Token
//! Handling"): the `Authorization: Bearer` header is the only place a token is read
//! (`access_token` in the query string is never looked at), the ledger must know it as an
//! active **access** token, its audience must be this resource (RFC 8707), and it must
//! carry the resource's base scopes. Refusals are challenges pointing to the RFC 9728
//! metadata: 401 (with `error="invalid_token"` only when a token was presented) or 403
//! `insufficient_scope`.
//!
//! The ledger is asked once per token while the token is remembered by the
//! [`TokenCache`](crate::actors::token_cache::TokenCache) in front of it: any revocation
//! made since hides every remembered answer, so a revoked token is refused on the next
//! request after the revocation was answered, as when the ledger is asked every time.

use std::sync::Arc;

use actix_web::http::{header, header::HeaderMap, StatusCode};

use super::challenge;
use crate::{
    actors::token_ledger::{IntrospectToken, TokenInfo},
    config::Settings,
    domain::{
        grant::TokenKind,
        secrets::{PresentedToken, TokenKey},
    },
    error::Error,
    services::Services,
};

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

/// The bearer token of a request's headers, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(parse_bearer)
}

/// Authenticates a request to the resource `services.settings` protects: the bearer token
/// is validated ([`validate`]), then held to [`admit`]'s rules. `issuer` names the metadata
/// in a challenge.
pub async fn authenticate(
    services: &Services,
    headers: &HeaderMap,
    issuer: &str,
) -> Result<Arc<TokenInfo>, Error> {
    let settings = &services.settings;
    let Some(token) = bearer(headers) else {
        return Err(challenge(
            issuer,
            StatusCode::UNAUTHORIZED,
            None,
            "a bearer token is required",
            &settings.mcp_scopes,
        ));
    };
    let info = validate(services, token).await?;
    admit(info, settings, issuer)
}

/// What the ledger says about `token` (`None`: not active): remembered in
/// `services.token_cache` for an access token, asked otherwise.
pub async fn validate(services: &Services, token: &str) -> Result<Option<Arc<TokenInfo>>, Error> {
    let cache = &services.token_cache;
    let key = TokenKey::of(token);
    if let Some(info) = cache.get(&key) {
        return Ok(Some(info));
    }
    // Read before asking: a revocation answered meanwhile makes this answer unservable.
    let epoch = cache.epoch();
    let token = PresentedToken::new(token.to_owned());
    let info = services
        .ask(&services.ledger, IntrospectToken { token })
        .await?
        .map_err(Error::from)?
        .map(Arc::new);
    if let Some(info) = info.as_ref().filter(|i| i.kind == TokenKind::Access) {
        cache.insert(key, Arc::clone(info), epoch);
    }
    Ok(info)
}

/// The rules on the ledger's answer about a presented token (`None`: not active): an access
/// token, for this resource, with the base scopes.
pub fn admit(
    info: Option<Arc<TokenInfo>>,
    settings: &Settings,
    issuer: &str,
) -> Result<Arc<TokenInfo>, Error> {
    let base = &settings.mcp_scopes;
    let Some(info) = info.filter(|i| i.kind == TokenKind::Access) else {
        return Err(challenge(
            issuer,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the access token is invalid, expired or revoked",
            base,
        ));
    };
    if !settings.is_own_resource(&info.resource) {
        return Err(challenge(
            issuer,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the access token was issued for another resource",
            base,
        ));
    }
    if !base.is_subset(&info.scopes) {
        return Err(challenge(
            issuer,
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the access token lacks the scopes this server requires",
            base,
        ));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, domain::scope::Scopes, error::Challenge};

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

    #[test]
    fn only_the_authorization_header_carries_a_token() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer t0k".parse().unwrap());
        assert_eq!(bearer(&headers), Some("t0k"));
        headers.insert(header::AUTHORIZATION, "Basic dTpw".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    fn info(kind: TokenKind, resource: &str, scopes: &[&str]) -> Option<Arc<TokenInfo>> {
        Some(Arc::new(TokenInfo {
            kind,
            client_id: "c".into(),
            subject: Some("alice".into()),
            scopes: Scopes::from_names(scopes.iter().copied()),
            resource: resource.into(),
            issued_at: 0,
            expires_at: 10,
        }))
    }

    fn refusal(result: Result<Arc<TokenInfo>, Error>) -> Challenge {
        match result {
            Err(Error::Challenge(c)) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    #[test]
    fn an_active_access_token_for_this_resource_with_the_base_scopes_passes() {
        let s = Config::default().settings(8000).unwrap();
        let ok = admit(
            info(TokenKind::Access, &s.resource, &["mcp:read"]),
            &s,
            "http://i",
        );
        assert_eq!(ok.unwrap().subject.as_deref(), Some("alice"));
    }

    #[test]
    fn inactive_refresh_foreign_or_narrow_tokens_are_challenged() {
        let s = Config::default().settings(8000).unwrap();
        let c = refusal(admit(None, &s, "http://i"));
        assert_eq!(
            (c.status, c.error),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
        assert_eq!(
            c.resource_metadata,
            "http://i/.well-known/oauth-protected-resource/mcp"
        );
        let refresh = info(TokenKind::Refresh, &s.resource, &["mcp:read"]);
        let c = refusal(admit(refresh, &s, "http://i"));
        assert_eq!(
            (c.status, c.error),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
        let foreign = info(
            TokenKind::Access,
            "https://other.example/mcp",
            &["mcp:read"],
        );
        let c = refusal(admit(foreign, &s, "http://i"));
        assert_eq!(
            (c.status, c.error),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
        assert!(c.description.contains("another resource"));
        let narrow = info(TokenKind::Access, &s.resource, &["other"]);
        let c = refusal(admit(narrow, &s, "http://i"));
        assert_eq!(
            (c.status, c.error),
            (StatusCode::FORBIDDEN, Some("insufficient_scope"))
        );
        assert_eq!(c.scope, "mcp:read");
    }
}
