//! RFC 8414 authorization-server metadata, loopback host aliasing, and CORS
//! (allowed on metadata/token/register/revoke/introspect, never on /authorize).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Reply, TestApp};

const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
const ORIGIN: &str = "https://app.example";

async fn metadata_with_host(app: &TestApp, host: Option<&str>) -> Reply {
    let mut request = app.client.get(app.url(METADATA_PATH));
    if let Some(host) = host {
        request = request.header("Host", host);
    }
    Reply::read(request.send().await.expect("GET metadata")).await
}

/// Endpoint URLs of the metadata document all hang off `issuer`.
fn assert_endpoints_under(body: &Value, issuer: &str) {
    assert_eq!(body["issuer"], issuer);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("registration_endpoint", "/register"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
    ] {
        assert_eq!(body[field], format!("{issuer}{path}"), "{field} in {body}");
    }
}

#[actix_web::test]
async fn metadata_document_describes_the_server() {
    let app = spawn_app().await;

    let reply = metadata_with_host(&app, None).await;

    assert_eq!(reply.status, 200);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = reply.json();
    assert_endpoints_under(&body, app.issuer());
    assert_eq!(body["response_types_supported"], json!(["code"]));
    assert_eq!(
        body["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    // MCP clients MUST refuse a server that does not advertise S256.
    assert_eq!(body["code_challenge_methods_supported"], json!(["S256"]));
    // `offline_access` asks for a refresh token (SEP-2207); the SDK clients add it to their
    // request only when it is advertised here.
    assert_eq!(
        body["scopes_supported"],
        json!(["mcp:read", "mcp:write", "offline_access"])
    );
    // RFC 9207: we send `iss` on every authorization response, so we must say so.
    assert_eq!(body["authorization_response_iss_parameter_supported"], true);
    let auth_methods = body["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("token_endpoint_auth_methods_supported missing: {body}"));
    for method in ["client_secret_basic", "client_secret_post", "none"] {
        assert!(
            auth_methods.iter().any(|m| m == method),
            "{method} not advertised in {auth_methods:?}"
        );
    }
}

#[actix_web::test]
async fn issuer_has_no_trailing_slash_and_matches_the_well_known_url() {
    // RFC 8414 §3.3: the issuer must be byte-identical to the one the client derived the
    // well-known URL from; a trailing slash drift breaks strict clients.
    let app = spawn_app().await;

    let body = metadata_with_host(&app, None).await.json();

    let issuer = body["issuer"].as_str().unwrap_or_default();
    assert!(
        !issuer.ends_with('/'),
        "issuer {issuer:?} ends with a slash"
    );
    assert_eq!(issuer, format!("http://127.0.0.1:{}", app.port));
}

#[actix_web::test]
async fn localhost_host_header_gets_a_localhost_issuer() {
    // A client that reached us as `localhost` must see issuer and endpoints on `localhost`,
    // otherwise its issuer check fails.
    let app = spawn_app().await;
    let host = format!("localhost:{}", app.port);

    let reply = metadata_with_host(&app, Some(&host)).await;

    assert_eq!(reply.status, 200);
    assert_endpoints_under(&reply.json(), &format!("http://localhost:{}", app.port));
}

#[actix_web::test]
async fn ipv6_loopback_host_header_gets_an_ipv6_issuer() {
    let app = spawn_app().await;
    let host = format!("[::1]:{}", app.port);

    let reply = metadata_with_host(&app, Some(&host)).await;

    assert_eq!(reply.status, 200);
    assert_endpoints_under(&reply.json(), &format!("http://[::1]:{}", app.port));
}

#[actix_web::test]
async fn foreign_host_header_gets_the_configured_public_url() {
    // Host is attacker-controlled: only loopback aliases are honoured, anything else falls
    // back to the configured public URL so the metadata cannot be poisoned.
    let app = spawn_app().await;
    let host = format!("evil.example:{}", app.port);

    let reply = metadata_with_host(&app, Some(&host)).await;

    assert_eq!(reply.status, 200);
    assert_endpoints_under(&reply.json(), app.issuer());
}

#[actix_web::test]
async fn metadata_allows_any_origin() {
    let app = spawn_app().await;

    let reply = Reply::read(
        app.client
            .get(app.url(METADATA_PATH))
            .header("Origin", ORIGIN)
            .send()
            .await
            .expect("GET metadata"),
    )
    .await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
}

#[actix_web::test]
async fn browser_clients_can_preflight_the_json_endpoints() {
    // Browser-based MCP clients call these endpoints cross-origin with Basic auth, so the
    // preflight must allow `authorization` and `content-type`.
    let app = spawn_app().await;

    for path in ["/token", "/register", "/revoke", "/introspect"] {
        let reply = Reply::read(
            app.client
                .request(Method::OPTIONS, app.url(path))
                .header("Origin", ORIGIN)
                .header("Access-Control-Request-Method", "POST")
                .header(
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                )
                .send()
                .await
                .expect("OPTIONS preflight"),
        )
        .await;

        assert!(
            (200..300).contains(&reply.status),
            "preflight on {path} failed with {}: {}",
            reply.status,
            reply.body
        );
        let allow_origin = reply.header("access-control-allow-origin");
        assert!(
            matches!(allow_origin, Some("*") | Some(ORIGIN)),
            "preflight on {path}: access-control-allow-origin = {allow_origin:?}"
        );
    }
}

#[actix_web::test]
async fn authorize_endpoint_has_no_cors() {
    // OAuth 2.1 §3.1 / RFC 9700 §2.6: the authorization endpoint is for top-level navigation
    // only; CORS there would let scripts read the consent page.
    let app = spawn_app().await;

    let reply = Reply::read(
        app.client
            .get(app.url("/authorize"))
            .header("Origin", ORIGIN)
            .send()
            .await
            .expect("GET /authorize"),
    )
    .await;

    assert!(
        reply.header("access-control-allow-origin").is_none(),
        "/authorize answered with CORS headers"
    );
}
