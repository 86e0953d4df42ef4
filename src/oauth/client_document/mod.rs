//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document-00/-01; MCP
//! 2025-11-25 authorization, "Client ID Metadata Documents"): the rules for a `client_id`
//! that is a URL (§3), for the JSON document found there (§4.1), and for how long a fetched
//! document may be cached (§4.4, following RFC 9111 freshness) or, past that, kept as the
//! last good copy for when a refetch fails ([`cache_policy`]). Pure functions: the fetch
//! itself, with its address checks and limits, is in [`crate::fetch`]; the cache is kept by
//! the client documents actor (`actors::client_documents`).
//!
//! This file holds the URL and document rules; `freshness.rs` the cache lifetime
//! ([`cache_policy`], RFC 9111).
//!
//! A document client is always a public client: the draft forbids shared secrets in a
//! document (§4.1) and we do not support `private_key_jwt`, so `token_endpoint_auth_method`
//! must be absent or `none`, or `token_endpoint_auth_methods_supported` (RP metadata
//! choices; ChatGPT prefers `private_key_jwt` and lists `none`) must offer `none`. Like a
//! registration, a document is a request: grant and response types this server does not
//! support (claude.ai's and ChatGPT's jwt-bearer, VS Code's device_code, `id_token`) are
//! dropped, as long as the authorization code grant remains.

use std::borrow::Cow;

use serde_json::Value;
use url::Url;

use crate::{
    config::Settings,
    domain::client::{Client, ClientOrigin},
    oauth::registration::{self, MetadataSource},
};

mod freshness;

pub use freshness::{cache_policy, CachePolicy, DEFAULT_CACHE_LIFETIME};

/// Longest `client_id` URL accepted (the draft recommends short URLs; every stored record
/// carries the client id).
pub const MAX_URL_LEN: usize = 1024;

/// Why a document client cannot be used. The text is shown on the authorization error
/// page and in `error_description` at the token endpoint; it names the rule, never an
/// internal address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientDocumentError {
    /// The `client_id` is not an acceptable document URL (draft §3).
    #[error("the client_id URL {0}")]
    Url(Cow<'static, str>),
    /// The URL's host is not one this server trusts (`client_metadata_trusted_hosts`).
    #[error("this server does not accept client metadata documents from the client_id URL's host")]
    Untrusted,
    /// The URL's host is, or resolves to, an address this server does not fetch from
    /// (loopback, private, link-local and other special-use ranges; draft-01 §6.5).
    #[error("the client_id URL's host is not a public address, so it is not fetched")]
    Blocked,
    /// The fetch got a deliberate answer that is not a document: a status other than the
    /// transient ones, a redirect, a document too large.
    #[error("the client metadata document could not be fetched: {0}")]
    Fetch(Cow<'static, str>),
    /// The fetch failed in a way the host may recover from on its own (see
    /// [`crate::fetch`]): the last good copy may stand in for a while.
    #[error("the client metadata document could not be fetched: {0}")]
    Unavailable(Cow<'static, str>),
    /// The document was fetched but is not acceptable.
    #[error("the client metadata document is not acceptable: {0}")]
    Invalid(Cow<'static, str>),
    /// Too many documents are being fetched at once.
    #[error("too many client metadata documents are being fetched; try again shortly")]
    Busy,
}

/// Whether `client_id` is URL-shaped, i.e. names a metadata document rather than a
/// registered client. Registered client ids never start like this (every id we mint is
/// base64url, and the only fixed one is `demo_client`), so the two cannot collide
/// (draft-01 §6.9).
pub fn is_document_url(client_id: &str) -> bool {
    let lower = |n: usize| client_id.get(..n).map(str::to_ascii_lowercase);
    lower(8).as_deref() == Some("https://") || lower(7).as_deref() == Some("http://")
}

/// Checks a `client_id` against the URL rules of draft §3: https (http only when
/// `allow_http`, a development setting), a path, no dot segments, no fragment, no
/// username or password. The URL must also be in the normalized form we would fetch, so
/// that the `client_id` string, the URL fetched and the document's `client_id` are the
/// same string.
pub fn document_url(client_id: &str, allow_http: bool) -> Result<Url, ClientDocumentError> {
    let bad = |m: &'static str| Err(ClientDocumentError::Url(Cow::Borrowed(m)));
    if client_id.len() > MAX_URL_LEN {
        return bad("is too long");
    }
    let Ok(url) = Url::parse(client_id) else {
        return bad("is not a valid URL");
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return bad("must use https"),
    }
    if url.fragment().is_some() {
        return bad("must not contain a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not contain a username or password");
    }
    // The parsed URL has its dot segments resolved already, so look at the string as sent.
    if raw_path(client_id).split('/').any(is_dot_segment) {
        return bad("must not contain . or .. path segments");
    }
    if url.path() == "/" {
        return bad("must contain a path (e.g. https://app.example/client.json)");
    }
    if url.as_str() != client_id {
        return bad("must be in normalized form (lowercase scheme and host, no default port, percent-encoding as needed)");
    }
    Ok(url)
}

/// Whether `url`'s host is on the trust list (`app.example`, or `*.example.com` for names
/// under it; the apex itself is listed separately); an empty list trusts every host.
pub fn host_trusted(url: &Url, trusted: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    trusted.is_empty()
        || trusted.iter().any(|t| match t.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|label| label.ends_with('.') && label.len() > 1),
            None => host == t,
        })
}

/// The path part of an absolute URL string as written (after the authority, before any
/// query or fragment).
fn raw_path(s: &str) -> &str {
    let s = s.split(['?', '#']).next().unwrap_or_default();
    let after_scheme = s.split_once("://").map_or(s, |(_, rest)| rest);
    after_scheme
        .find('/')
        .and_then(|i| after_scheme.get(i..))
        .unwrap_or_default()
}

fn is_dot_segment(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase().replace("%2e", ".");
    s == "." || s == ".."
}

/// Validates a fetched document for `url` (draft §4.1, MCP's required fields) into the
/// client it describes, issued at `now` (Unix seconds). Redirect URIs, grant types, scope
/// and the other RFC 7591 fields follow the same rules as dynamic registration.
pub fn parse_document(
    url: &str,
    body: &[u8],
    settings: &Settings,
    now: i64,
) -> Result<Client, ClientDocumentError> {
    let invalid = |m: Cow<'static, str>| ClientDocumentError::Invalid(m);
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("it is not a JSON object".into()));
    };
    // Simple string comparison (RFC 3986 §6.2.1), as the draft requires.
    match doc.get("client_id") {
        Some(Value::String(id)) if id == url => {}
        Some(Value::String(_)) => {
            return Err(invalid(
                "its client_id does not equal the URL it was fetched from".into(),
            ))
        }
        _ => return Err(invalid("it has no client_id".into())),
    }
    let new = registration::validate(&doc, settings, MetadataSource::Document)
        .map_err(|e| invalid(e.into_parts().1))?;
    Ok(new.into_client(
        url.to_owned(),
        None,
        &settings.default_scopes,
        now,
        ClientOrigin::Document,
    ))
}

/// The hostname a document client's `client_id` names, shown on the consent page (draft
/// §6.4: the authorization interface should display it); `None` for registered clients.
pub fn document_host(client: &Client) -> Option<String> {
    if !is_document_url(&client.client_id) {
        return None;
    }
    Url::parse(&client.client_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        domain::client::{AuthMethod, GrantType},
    };

    fn settings() -> Settings {
        Config::default().settings(8000).unwrap()
    }

    #[test]
    fn url_shape_is_recognised_case_insensitively() {
        assert!(is_document_url("https://app.example/c.json"));
        assert!(is_document_url("HTTPS://app.example/c.json"));
        assert!(is_document_url("http://127.0.0.1:9/c.json"));
        assert!(!is_document_url("demo_client"));
        assert!(!is_document_url("https:/x"));
        assert!(!is_document_url(""));
    }

    #[test]
    fn document_url_rules() {
        let ok = "https://app.example/oauth/client.json";
        assert_eq!(document_url(ok, false).unwrap().as_str(), ok);
        assert!(document_url("https://app.example/c.json?v=2", false).is_ok());
        assert!(document_url("https://app.example:8443/c.json", false).is_ok());
        for (bad, why) in [
            ("http://app.example/c.json", "https"),
            ("https://app.example", "path"),
            ("https://app.example/", "path"),
            ("https://app.example/c.json#x", "fragment"),
            ("https://u:p@app.example/c.json", "username"),
            ("https://u@app.example/c.json", "username"),
            ("https://app.example/a/../c.json", ". or .."),
            ("https://app.example/./c.json", ". or .."),
            ("https://app.example/a/%2E%2e/c.json", ". or .."),
            ("https://App.Example/c.json", "normalized"),
            ("https://app.example:443/c.json", "normalized"),
            ("https://app.example/a b", "normalized"),
            ("https://", "valid URL"),
        ] {
            let err = document_url(bad, false).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!("https://app.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(document_url(&long, false)
            .unwrap_err()
            .to_string()
            .contains("too long"));
        assert!(document_url("http://127.0.0.1:9/c.json", true).is_ok());
    }

    const URL: &str = "https://app.example/client.json";

    fn doc(extra: &str) -> String {
        format!(
            r#"{{"client_id":"{URL}","client_name":"Example","redirect_uris":["http://127.0.0.1:3000/cb"]{extra}}}"#
        )
    }

    fn parse(body: &str) -> Result<Client, ClientDocumentError> {
        parse_document(URL, body.as_bytes(), &settings(), 7)
    }

    #[test]
    fn a_minimal_document_is_a_public_client() {
        let c = parse(&doc("")).unwrap();
        assert_eq!(c.client_id, URL);
        assert_eq!(c.client_name.as_deref(), Some("Example"));
        assert_eq!(c.auth_method, AuthMethod::None);
        assert!(!c.is_confidential());
        assert_eq!(c.redirect_uris, ["http://127.0.0.1:3000/cb"]);
        assert_eq!(c.scopes, settings().default_scopes);
        assert_eq!(c.issued_at, 7);
        assert!(parse(&doc(r#","token_endpoint_auth_method":"none""#)).is_ok());
    }

    #[test]
    fn documents_are_refused_for_each_rule() {
        for (body, why) in [
            ("[]".to_owned(), "JSON object"),
            ("not json".to_owned(), "JSON object"),
            (
                r#"{"client_name":"x","redirect_uris":["https://a.example/cb"]}"#.to_owned(),
                "no client_id",
            ),
            (
                doc("").replace(URL, "https://app.example/other.json"),
                "does not equal",
            ),
            (
                doc("").replace(URL, "https://APP.example/client.json"),
                "does not equal",
            ),
            (doc(r#","client_secret":"s""#), "client_secret"),
            (doc(r#","client_secret_expires_at":0"#), "client_secret"),
            (
                doc(r#","token_endpoint_auth_method":"client_secret_basic""#),
                "token_endpoint_auth_method",
            ),
            (
                doc(r#","token_endpoint_auth_method":"private_key_jwt""#),
                "token_endpoint_auth_method",
            ),
            (
                doc(r#","grant_types":["client_credentials"]"#),
                "must include authorization_code",
            ),
            (
                doc(r#","grant_types":["urn:ietf:params:oauth:grant-type:jwt-bearer"]"#),
                "must include authorization_code",
            ),
            (
                doc(r#","response_types":["id_token"]"#),
                "response_types must include code",
            ),
            (
                doc(r#","token_endpoint_auth_methods_supported":["private_key_jwt"]"#),
                "token_endpoint_auth_method",
            ),
            (
                doc(
                    r#","token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_methods_supported":["private_key_jwt","tls_client_auth"]"#,
                ),
                "token_endpoint_auth_method",
            ),
            (
                doc("").replace(r#""client_name":"Example","#, ""),
                "client_name",
            ),
            (
                doc("").replace("http://127.0.0.1:3000/cb", "http://evil.example/cb"),
                "redirect URI",
            ),
            (doc(r#","scope":7"#), "scope"),
        ] {
            let err = parse(&body).unwrap_err();
            assert!(
                matches!(&err, ClientDocumentError::Invalid(m) if m.contains(why)),
                "{body}: {err}"
            );
        }
    }

    /// ChatGPT's document (research §1.5, frozen by a peer from the live document): unknown
    /// grant and response types, `private_key_jwt` preferred with `none` offered, a JWKS.
    #[test]
    fn a_document_is_a_request_unsupported_metadata_is_dropped() {
        let c = parse(&doc(
            r#","grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "response_types":["code","id_token"],"token_endpoint_auth_method":"private_key_jwt",
            "token_endpoint_auth_methods_supported":["none","private_key_jwt"],
            "token_endpoint_auth_signing_alg":"RS256","jwks_uri":"https://app.example/jwks.json",
            "logo_uri":"https://cdn.example/logo.png","client_uri":"https://app.example/",
            "application_type":"native","software_id":"x","software_version":"1",
            "policy_uri":"https://app.example/p","tos_uri":"https://app.example/t",
            "scope":"mcp:* mcp:read offline_access""#,
        ))
        .unwrap();
        assert_eq!(c.auth_method, AuthMethod::None);
        assert_eq!(
            c.grant_types,
            [GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(c.scopes.to_string(), "mcp:read offline_access");
        assert_eq!(c.extra["application_type"], "native");
        assert_eq!(c.extra["logo_uri"], "https://cdn.example/logo.png");
        for dropped in [
            "jwks_uri",
            "token_endpoint_auth_methods_supported",
            "token_endpoint_auth_signing_alg",
        ] {
            assert!(!c.extra.contains_key(dropped), "{dropped}");
        }
        // Only unknown scopes: the default scopes.
        let c = parse(&doc(r#","scope":"mcp:*""#)).unwrap();
        assert_eq!(c.scopes, settings().default_scopes);
        // An application_type other than native or web is dropped, not refused.
        let c = parse(&doc(r#","application_type":"desktop""#)).unwrap();
        assert!(!c.extra.contains_key("application_type"));
        // A list offering none is enough, whatever the preference.
        let c = parse(&doc(r#","token_endpoint_auth_methods_supported":["none"]"#)).unwrap();
        assert_eq!(c.auth_method, AuthMethod::None);
    }

    #[test]
    fn trusted_hosts() {
        let url = |s: &str| Url::parse(s).unwrap();
        let list = ["app.example".to_owned(), "*.vendor.example".to_owned()];
        assert!(host_trusted(&url("https://anything.example/c.json"), &[]));
        assert!(host_trusted(&url("https://app.example/c.json"), &list));
        assert!(host_trusted(&url("https://a.vendor.example/c.json"), &list));
        assert!(host_trusted(
            &url("https://a.b.vendor.example/c.json"),
            &list
        ));
        assert!(!host_trusted(&url("https://vendor.example/c.json"), &list));
        assert!(!host_trusted(
            &url("https://evilvendor.example/c.json"),
            &list
        ));
        assert!(!host_trusted(
            &url("https://app.example.evil/c.json"),
            &list
        ));
        assert!(!host_trusted(&url("https://sub.app.example/c.json"), &list));
    }

    #[test]
    fn document_host_only_for_document_clients() {
        let c = parse(&doc("")).unwrap();
        assert_eq!(document_host(&c).as_deref(), Some("app.example"));
        let mut registered = c.clone();
        registered.client_id = "demo_client".into();
        assert_eq!(document_host(&registered), None);
    }
}
