//! The official SDK clients' scope shapes (research §2.6-§2.8, §3.2): `offline_access`
//! (SEP-2207) added to the registration and the authorization request once the server
//! advertises it, `prompt=consent`, and MCP Inspector's `scope: ""`.

use super::*;

/// Python `mcp` 2.3.0's registration body (its model defaults; no auth method, so
/// `client_secret_basic`), with the scope it builds from our metadata. Refused before
/// issue 13 (`scope may contain only: mcp:read mcp:write`), and `offline_access` at
/// `/authorize` was `invalid_scope`.
#[actix_web::test]
async fn python_sdk_with_offline_access() {
    let app = spawn_app().await;
    let asm = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(asm["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("offline_access")));
    let prm = app
        .get_json("/.well-known/oauth-protected-resource/mcp")
        .await;
    assert!(!prm.to_string().contains("offline_access"), "{prm}");

    let scope = "mcp:read mcp:write offline_access";
    let registered = app
        .register_ok(&json!({
            "redirect_uris": ["http://localhost:3030/callback"],
            "client_name": "Example MCP Client",
            "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token"],
            "application_type": "native",
            "scope": scope
        }))
        .await;
    assert_eq!(registered["scope"], scope);
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    let client_id = str_field(&registered, "client_id");
    let secret = str_field(&registered, "client_secret");
    let resource = app.resource();
    let flow = Flow {
        auth: Auth::Basic(&secret),
        scope: Some(scope),
        resource: Some(&resource),
        extra: &[("prompt", "consent")],
        ..Flow::public(&client_id, "http://localhost:3030/callback")
    };
    let out = run_flow(&app, &flow).await;
    assert!(
        out.page
            .contains("<code>offline_access</code> (stay connected"),
        "{}",
        out.page
    );

    // Kept on the grant, never in the access token: not in the token response's scope,
    // not at the MCP server, not in introspection; the refresh token carries it.
    assert_eq!(out.tokens["scope"], ALL_SCOPES);
    assert_eq!(out.refreshed["scope"], ALL_SCOPES);
    assert_eq!(scopes_seen(&out.whoami), ALL_SCOPES);
    let introspect = |token: String| {
        let app = &app;
        let (id, secret) = (client_id.clone(), secret.clone());
        async move {
            let reply = Reply::read(
                app.introspect_request(&[("token", &token)], Some((&id, &secret)))
                    .await,
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.json()
        }
    };
    let access = introspect(str_field(&out.refreshed, "access_token")).await;
    assert_eq!(access["scope"], ALL_SCOPES);
    assert_eq!(access["aud"], resource);
    let refresh = introspect(str_field(&out.refreshed, "refresh_token")).await;
    assert_eq!(refresh["scope"], scope);

    // Asking for it again on refresh narrows nothing and is not `invalid_scope`.
    let reply = Reply::read(
        app.token_request(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &str_field(&out.refreshed, "refresh_token")),
                ("scope", "mcp:read offline_access"),
            ],
            Some((&client_id, &secret)),
        )
        .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "mcp:read");
}

/// The resource with a trailing slash (`…/mcp/`) is ours at `/authorize` and `/token`;
/// the token is bound to `…/mcp`. `invalid_target` before issue 13.
#[actix_web::test]
async fn a_resource_with_a_trailing_slash_binds_the_canonical_resource() {
    let app = spawn_app().await;
    let (client_id, secret) = app
        .register_confidential(&["http://localhost:3030/callback"])
        .await;
    let resource = format!("{}/", app.resource());
    let flow = Flow {
        auth: Auth::Basic(&secret),
        resource: Some(&resource),
        ..Flow::public(&client_id, "http://localhost:3030/callback")
    };
    let out = run_flow(&app, &flow).await;
    let reply = Reply::read(
        app.introspect_request(
            &[("token", &str_field(&out.tokens, "access_token"))],
            Some((&client_id, &secret)),
        )
        .await,
    )
    .await;
    assert_eq!(reply.json()["aud"], app.resource());
}

/// MCP Inspector with "Request refresh token" off: `grant_types` without `refresh_token`
/// and `scope: ""`. Asking for `offline_access` gives no refresh token to a client that may
/// not use one; `scope: ""` means no scope requested.
#[actix_web::test]
async fn inspector_without_the_refresh_grant() {
    let app = spawn_app().await;
    let registered = app
        .register_ok(&json!({
            "redirect_uris": ["http://127.0.0.1:6274/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "client_name": "MCP Inspector",
            "client_uri": "https://github.com/modelcontextprotocol/inspector",
            "scope": "",
            "application_type": "native"
        }))
        .await;
    assert_eq!(registered["scope"], ALL_SCOPES);
    let client_id = str_field(&registered, "client_id");
    let (code, verifier) = app
        .obtain_code_for(
            &client_id,
            "http://127.0.0.1:6274/oauth/callback",
            "mcp:read offline_access",
        )
        .await;
    let reply = Reply::read(
        app.token_request(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(tokens["scope"], "mcp:read");
    let who = whoami(&app, &str_field(&tokens, "access_token")).await;
    assert_eq!(scopes_seen(&who), "mcp:read");
}
