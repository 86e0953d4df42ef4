//! What a successful registration answers (RFC 7591 §3.2.1): full client information for a
//! confidential client, no secret for a public one, unique ids, the redirect URIs allowed
//! (https, loopback or a private-use scheme), `client_credentials` only when enabled, and
//! the effective metadata when requested values were replaced (RFC 7591 §3.2.1).

use super::*;

#[actix_web::test]
async fn confidential_registration_returns_full_client_information() {
    let app = spawn_app().await;
    let request = json!({
        "redirect_uris": ["https://app.example/callback"],
        "client_name": "My App",
        // Clients do not choose their own credentials.
        "client_id": "chosen-by-client",
        "client_secret": "chosen-by-client",
    });

    let reply = register(&app, &request).await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    // The response carries a client secret (OAuth 2.1 §3.2.3).
    assert_no_store(&reply);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = reply.json();
    let client_id = str_field(&body, "client_id");
    let client_secret = str_field(&body, "client_secret");
    assert_ne!(client_id, "chosen-by-client");
    assert_ne!(client_secret, "chosen-by-client");
    assert!(
        client_secret.len() >= 32,
        "secret too short: {client_secret}"
    );
    assert_eq!(body["client_id_issued_at"], START_UNIX);
    // 0 = the secret never expires (RFC 7591 §3.2.1).
    assert_eq!(body["client_secret_expires_at"], 0);
    // RFC 7591 §2: the default method is client_secret_basic.
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        body["redirect_uris"],
        json!(["https://app.example/callback"])
    );
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["client_name"], "My App");
    assert_eq!(scope_set(&str_field(&body, "scope")), scope_set(ALL_SCOPES));
}

#[actix_web::test]
async fn client_ids_are_unique() {
    let app = spawn_app().await;
    let request = json!({ "redirect_uris": ["https://app.example/callback"] });

    let first = register(&app, &request).await.json();
    let second = register(&app, &request).await.json();

    assert_ne!(first["client_id"], second["client_id"]);
    assert_ne!(first["client_secret"], second["client_secret"]);
}

#[actix_web::test]
async fn public_registration_gets_no_secret() {
    let app = spawn_app().await;

    let reply = register(
        &app,
        &json!({
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body["client_id"].is_string());
    assert!(
        body.get("client_secret").is_none(),
        "public client got a secret: {body}"
    );
}

#[actix_web::test]
async fn allowed_redirect_uris_are_https_or_loopback() {
    let app = spawn_app().await;

    for uri in [
        "https://app.example/callback",
        "https://app.example:8443/oauth/cb?tenant=1",
        "http://localhost/callback",
        "http://localhost:33418/callback",
        "http://127.0.0.1:9/cb",
        "http://[::1]:1234/cb",
    ] {
        let reply = register(&app, &json!({ "redirect_uris": [uri] })).await;
        assert_eq!(reply.status, 201, "{uri} refused: {}", reply.body);
    }
}

#[actix_web::test]
async fn client_credentials_for_registered_clients_only_when_enabled() {
    // With open registration, client_credentials would hand anyone an MCP token with no
    // user behind it; it is an operator's choice.
    let request = json!({
        "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["authorization_code", "client_credentials"],
    });
    let app = spawn_app().await;
    let reply = register(&app, &request).await;
    assert_oauth_error(&reply, 400, "invalid_client_metadata");
    assert!(reply.body.contains("client_credentials"), "{}", reply.body);

    let app = spawn_app_with(|c| c.registered_client_credentials = true).await;
    let client = app.register_ok(&request).await;
    let (id, secret) = (
        str_field(&client, "client_id"),
        str_field(&client, "client_secret"),
    );
    let reply = Reply::read(
        app.token_request(
            &[("grant_type", "client_credentials")],
            Some((id.as_str(), secret.as_str())),
        )
        .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn unsupported_requested_metadata_is_replaced_and_the_answer_says_so() {
    // RFC 7591 §3.2.1: the request is a request; the server registers what it supports and
    // answers the effective metadata. Each of these was refused before issue 13.
    let app = spawn_app().await;
    let cases = [
        (
            json!({ "redirect_uris": ["https://app.example/cb"],
                    "grant_types": ["authorization_code", "implicit", "urn:ietf:params:oauth:grant-type:device_code"],
                    "response_types": ["code", "id_token"] }),
            "grant_types",
            json!(["authorization_code"]),
        ),
        (
            json!({ "redirect_uris": ["https://app.example/cb"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks_uri": "https://app.example/jwks.json" }),
            "token_endpoint_auth_method",
            json!("none"),
        ),
        (
            json!({ "redirect_uris": ["https://app.example/cb"], "scope": "mcp:read mcp:admin" }),
            "scope",
            json!("mcp:read"),
        ),
        (
            json!({ "redirect_uris": ["https://app.example/cb"], "scope": "mcp:read offline_access" }),
            "scope",
            json!("mcp:read offline_access"),
        ),
        (
            json!({ "redirect_uris": ["https://app.example/cb"], "application_type": "web" }),
            "application_type",
            json!("web"),
        ),
    ];
    for (request, field, effective) in cases {
        let reply = register(&app, &request).await;
        assert_eq!(reply.status, 201, "{request}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body[field], effective, "{request}: {body}");
        assert_eq!(body["response_types"], json!(["code"]), "{body}");
        for dropped in ["jwks_uri", "token_endpoint_auth_methods_supported"] {
            assert!(body.get(dropped).is_none(), "{dropped} in {body}");
        }
        if body["token_endpoint_auth_method"] == "none" {
            assert!(body.get("client_secret").is_none(), "{body}");
        }
    }
}

#[actix_web::test]
async fn private_use_redirect_uris_are_accepted_unless_turned_off() {
    // RFC 8252 §7.1. Refused before issue 13 (`myapp://cb` was in the refusal list).
    let body = json!({
        "client_name": "Cursor",
        "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"],
        "token_endpoint_auth_method": "none",
    });
    let app = spawn_app().await;
    let reply = register(&app, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let off = spawn_app_with(|c| c.private_use_redirects = false).await;
    let reply = register(&off, &body).await;
    assert_oauth_error(&reply, 400, "invalid_redirect_uri");
    assert!(reply.body.contains("private-use"), "{}", reply.body);
}
