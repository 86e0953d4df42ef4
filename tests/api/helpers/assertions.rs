//! Assertions on the error shapes of the OAuth endpoints: JSON errors (RFC 6749 §5.2), the
//! Basic challenge, `no-store`, the `/authorize` error page and error redirects (RFC 9207),
//! inactive introspection answers.

use serde_json::{json, Value};

use super::{Reply, TestApp};

/// JSON error `{"error": .., "error_description": ..}` with the given status and code. The
/// description (when present) must stay within the RFC 6749 charset: no `"` and no `\`.
pub fn assert_oauth_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(
        reply.status, status,
        "expected {status} {error}, got body: {}",
        reply.body
    );
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "error content-type: {content_type}"
    );
    let body = reply.json();
    assert_eq!(body["error"], error, "wrong error code in {body}");
    if let Some(description) = body.get("error_description") {
        let description = description
            .as_str()
            .unwrap_or_else(|| panic!("error_description is not a string: {body}"));
        assert!(
            !description.contains('"') && !description.contains('\\'),
            "error_description outside the allowed charset: {description:?}"
        );
    }
}

/// Token endpoint error: as [`assert_oauth_error`], plus `Cache-Control: no-store` and a
/// present `error_description`.
pub fn assert_token_error(reply: &Reply, status: u16, error: &str) {
    assert_oauth_error(reply, status, error);
    assert_no_store(reply);
    assert!(
        reply.json()["error_description"].is_string(),
        "missing error_description: {}",
        reply.body
    );
}

/// `invalid_client` after Basic auth: 401 plus a `WWW-Authenticate: Basic ...` challenge.
pub fn assert_basic_challenge(reply: &Reply) {
    assert_oauth_error(reply, 401, "invalid_client");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Basic"),
        "WWW-Authenticate should start with Basic, got {challenge:?}"
    );
}

pub fn assert_no_store(reply: &Reply) {
    let cache_control = reply.header("cache-control").unwrap_or_default();
    assert!(
        cache_control.contains("no-store"),
        "Cache-Control should contain no-store, got {cache_control:?}"
    );
}

/// The error page /authorize shows before client and redirect URI are trusted: a 400 HTML
/// page that never redirects (OAuth 2.1 §4.1.2.1, no open redirector).
pub fn assert_error_page(reply: &Reply) {
    assert_eq!(reply.status, 400, "expected the error page: {}", reply.body);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "error page content-type: {content_type}"
    );
    assert!(
        reply.header("location").is_none(),
        "the error page must not redirect"
    );
}

/// An authorization error delivered by `303` to `redirect_uri` with `error`, the exact
/// `state`, and `iss` (RFC 9207), and no code.
pub fn assert_redirect_error(
    app: &TestApp,
    reply: &Reply,
    redirect_uri: &str,
    error: &str,
    state: &str,
) {
    assert_eq!(
        reply.status, 303,
        "expected a 303 error redirect: {}",
        reply.body
    );
    let location = reply.location();
    assert!(
        location.as_str().starts_with(&format!("{redirect_uri}?")),
        "redirected to {location}, expected {redirect_uri}"
    );
    let query = reply.location_query();
    assert_eq!(
        query.get("error").map(String::as_str),
        Some(error),
        "{location}"
    );
    assert_eq!(
        query.get("state").map(String::as_str),
        Some(state),
        "{location}"
    );
    assert_eq!(
        query.get("iss").map(String::as_str),
        Some(app.issuer()),
        "{location}"
    );
    assert!(
        !query.contains_key("code"),
        "an error redirect carries no code"
    );
}

/// RFC 7662 answer for anything that is not an active token: exactly `{"active": false}`.
pub fn assert_inactive(body: &Value) {
    assert_eq!(body, &json!({ "active": false }));
}
