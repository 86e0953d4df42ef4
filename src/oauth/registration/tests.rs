//! Tests of [`super`].

use super::*;
use crate::config::Config;

fn settings() -> Settings {
    Config::default().settings(8000).unwrap()
}

fn code(body: &str) -> Option<ErrorCode> {
    parse(body.as_bytes(), &settings()).err().map(|e| e.code())
}

#[test]
fn defaults() {
    let c = parse(
        br#"{"redirect_uris":["http://localhost:3000/cb"],"client_id":"mine"}"#,
        &settings(),
    )
    .unwrap();
    assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(
        c.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert!(c.scopes.is_none());
}

#[test]
fn refusals() {
    assert_eq!(code("nope"), Some(ErrorCode::InvalidClientMetadata));
    // A right-to-left override (or an isolate) in the name that the consent page shows.
    for name in ["Good\u{202E}ppa live", "A\u{2067}B", "x\u{200F}"] {
        let body =
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "client_name": name});
        assert_eq!(
            code(&body.to_string()),
            Some(ErrorCode::InvalidClientMetadata),
            "{name:?}"
        );
    }
    assert_eq!(code("{}"), Some(ErrorCode::InvalidRedirectUri));
    assert_eq!(
        code(r#"{"redirect_uris":["http://evil.example/cb"]}"#),
        Some(ErrorCode::InvalidRedirectUri)
    );
    assert_eq!(
        code(r#"{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}"#),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code(
            r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}"#
        ),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code(r#"{"redirect_uris":["https://a.example/cb"],"grant_types":["password"]}"#),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code(r#"{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}"#),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code(r#"{"redirect_uris":["https://a.example/cb"],"scope":"a\"b"}"#),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code(r#"{"redirect_uris":["javascript://x/%0aalert(1)"]}"#),
        Some(ErrorCode::InvalidRedirectUri)
    );
}

fn ok(body: &str) -> NewClient {
    parse(body.as_bytes(), &settings()).unwrap()
}

#[test]
fn unsupported_requested_metadata_is_replaced() {
    // RFC 7591 §3.2.1: the server may replace requested values; the response shows what
    // the client got.
    let c = ok(
        r#"{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code","implicit","urn:ietf:params:oauth:grant-type:device_code"],"response_types":["code","id_token"]}"#,
    );
    assert_eq!(c.grant_types, [GrantType::AuthorizationCode]);
    let c = ok(
        r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}"#,
    );
    assert_eq!(c.auth_method, AuthMethod::None);
    let c = ok(
        r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_methods_supported":["private_key_jwt","client_secret_post","none"]}"#,
    );
    assert_eq!(c.auth_method, AuthMethod::ClientSecretPost);
    let c = ok(
        r#"{"redirect_uris":["https://a.example/cb"],"scope":"mcp:read mcp:admin offline_access"}"#,
    );
    assert_eq!(c.scopes.unwrap().to_string(), "mcp:read offline_access");
    let c = ok(r#"{"redirect_uris":["https://a.example/cb"],"scope":"offline_access"}"#);
    assert_eq!(
        c.scopes.unwrap().to_string(),
        "mcp:read mcp:write offline_access"
    );
    let c = ok(r#"{"redirect_uris":["https://a.example/cb"],"scope":""}"#);
    assert!(c.scopes.is_none());
}

#[test]
fn private_use_and_application_type() {
    // Cursor's three redirect URIs in one request, with application_type web.
    let cursor = r#"{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"],"token_endpoint_auth_method":"none","application_type":"web"}"#;
    let c = ok(cursor);
    assert_eq!(c.redirect_uris.len(), 3);
    assert_eq!(c.extra["application_type"], "web");
    let mut config = Config::default();
    config.private_use_redirects = false;
    let off = config.settings(8000).unwrap();
    let err = parse(cursor.as_bytes(), &off).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRedirectUri);
}

#[test]
fn private_use_redirects_are_for_public_clients() {
    for method in [
        r#","token_endpoint_auth_method":"client_secret_basic""#,
        r#","token_endpoint_auth_method":"client_secret_post""#,
        // RFC 7591 §2: omitted means client_secret_basic.
        "",
    ] {
        let body = format!(
            r#"{{"redirect_uris":["http://127.0.0.1/cb","cursor://anysphere.cursor-mcp/oauth/callback"]{method}}}"#
        );
        let err = parse(body.as_bytes(), &settings()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRedirectUri, "{body}");
        assert!(err.description().contains("public clients"), "{body}");
    }
    // The same confidential client without the private-use URI is fine.
    ok(
        r#"{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#,
    );
}
