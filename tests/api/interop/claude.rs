//! Claude Code and claude.ai / Claude Desktop connectors (research §1.1, §1.2, §2.4).

use super::*;

/// Claude Code's document, verbatim but for `client_id`: portless loopback redirect URIs.
fn claude_code_metadata() -> Value {
    json!({
        "client_name": "Claude Code",
        "client_uri": "https://claude.ai",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

#[actix_web::test]
async fn claude_code_document() {
    let app = document_app().await;
    let host = DocumentHost::start().await;
    let client_id = publish(
        &host,
        "/oauth/claude-code-client-metadata",
        claude_code_metadata(),
    );
    // Claude Code only uses a document when both of these are advertised.
    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert!(metadata["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("none")));

    // The runtime redirect has an ephemeral port on each host name; each host is its own
    // registration. The resource carries a trailing slash, as Claude Code sends for some
    // configurations (anthropics/claude-code#52871).
    let resource = format!("{}/", app.resource());
    for redirect in [
        "http://localhost:49152/callback",
        "http://127.0.0.1:61001/callback",
    ] {
        let flow = Flow {
            resource: Some(&resource),
            ..Flow::public(&client_id, redirect)
        };
        let out = run_flow(&app, &flow).await;
        assert_eq!(scopes_seen(&out.whoami), ALL_SCOPES);
        // The home page host from `client_uri`, as text.
        assert!(
            out.page.contains("<strong>claude.ai</strong>"),
            "{}",
            out.page
        );
    }
    // Another path on loopback is not the registered one.
    let (_, challenge) = pkce_pair();
    let reply = Reply::read(
        app.get_authorize(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", "http://127.0.0.1:61001/other"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .await,
    )
    .await;
    assert_error_page(&reply);
}

/// claude.ai's connector document, verbatim but for `client_id`: it lists the jwt-bearer
/// grant. Refused with an error page before issue 13.
#[actix_web::test]
async fn claude_ai_document() {
    let app = document_app().await;
    let host = DocumentHost::start().await;
    let client_id = publish(
        &host,
        "/oauth/mcp-oauth-client-metadata",
        json!({
            "client_name": "Claude",
            "client_uri": "https://claude.ai",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none"
        }),
    );
    let out = run_flow(
        &app,
        &Flow::public(&client_id, "https://claude.ai/api/mcp/auth_callback"),
    )
    .await;
    assert!(
        out.page.contains("sent to <strong>claude.ai</strong>"),
        "{}",
        out.page
    );
    assert!(out.refreshed["refresh_token"].is_string());
}

/// claude.ai's registration from Anthropic's servers (wire capture, PostHog#48397): it asks
/// for `client_secret_post`, which this server supports, so it gets a secret and uses it.
#[actix_web::test]
async fn claude_ai_registration() {
    let app = spawn_app().await;
    let registered = app
        .register_ok(&json!({
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Claude"
        }))
        .await;
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_post"
    );
    let client_id = str_field(&registered, "client_id");
    let secret = str_field(&registered, "client_secret");
    let flow = Flow {
        auth: Auth::Post(&secret),
        resource: Some(&app.resource()),
        ..Flow::public(&client_id, "https://claude.ai/api/mcp/auth_callback")
    };
    run_flow(&app, &flow).await;
}
