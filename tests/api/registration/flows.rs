//! The life of a registered client afterwards: its name escaped on the consent page, public
//! and confidential clients through the whole flow, a single redirect URI that may be
//! omitted, and early errors for its requests shown as a page, never redirected.

use super::*;

#[actix_web::test]
async fn consent_page_escapes_the_registered_client_name() {
    // Client names are attacker-chosen and shown to the user.
    let app = spawn_app().await;
    let redirect_uri = "http://127.0.0.1:9100/cb";
    let client = app
        .register_ok(&json!({
            "redirect_uris": [redirect_uri],
            "client_name": "<img src=x onerror=alert(1)>Evil",
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = str_field(&client, "client_id");
    let (_, challenge) = pkce_pair();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
    ];

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        !reply.body.contains("<img src=x"),
        "client name rendered unescaped"
    );
    assert!(reply.body.contains("Evil"));
}

#[actix_web::test]
async fn public_client_completes_the_whole_flow() {
    // The path an MCP client such as Claude Code takes: register with `none`, then
    // authorization code + PKCE, then refresh, all without a secret.
    let app = spawn_app().await;
    let redirect_uri = "http://127.0.0.1:33418/callback";
    let client_id = app.register_public(&[redirect_uri]).await;

    let (code, verifier) = app
        .obtain_code_for(&client_id, redirect_uri, ALL_SCOPES)
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri),
    ];
    let reply = Reply::read(app.token_request(&form, None).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    let access_token = str_field(&tokens, "access_token");
    assert_eq!(tokens["token_type"], "Bearer");
    // The token opens an MCP session (a public client cannot introspect).
    let init = app.mcp_initialize(&access_token).await;
    assert_eq!(init.status(), 200);
    assert!(init.headers().contains_key("mcp-session-id"));

    // Public clients refresh with client_id only, and get a rotated refresh token.
    let refresh_token = str_field(&tokens, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let refreshed = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_ne!(str_field(&refreshed.json(), "refresh_token"), refresh_token);
}

#[actix_web::test]
async fn public_client_may_omit_its_single_redirect_uri() {
    // OAuth 2.1 §2.3.2: with exactly one registered URI, redirect_uri may be omitted.
    let app = spawn_app().await;
    let redirect_uri = "http://127.0.0.1:33419/callback";
    let client_id = app.register_public(&[redirect_uri]).await;
    let (_, challenge) = pkce_pair();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
    ];

    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(
        reply
            .location()
            .as_str()
            .starts_with(&format!("{redirect_uri}?")),
        "{}",
        reply.location()
    );
}

#[actix_web::test]
async fn confidential_client_completes_the_flow_with_its_secret() {
    let app = spawn_app().await;
    let redirect_uri = "https://app.example/callback";
    let (client_id, client_secret) = app.register_confidential(&[redirect_uri]).await;
    let (code, verifier) = app
        .obtain_code_for(&client_id, redirect_uri, "mcp:read")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];

    // Wrong secret first: refused, and the code is not burned by it.
    let wrong = Reply::read(
        app.token_request(&form, Some((client_id.as_str(), "wrong")))
            .await,
    )
    .await;
    assert_oauth_error(&wrong, 401, "invalid_client");

    let reply = Reply::read(
        app.token_request(&form, Some((client_id.as_str(), client_secret.as_str())))
            .await,
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "mcp:read");
}

#[actix_web::test]
async fn early_errors_for_a_registered_client_are_shown_not_redirected() {
    // RFC 9700 §4.11.2: anyone can register a redirect URI, so a bad request for such a
    // client must not bounce the browser there before a person has seen the consent page.
    let app = spawn_app().await;
    let redirect_uri = "https://app.example/cb";
    let client_id = app.register_public(&[redirect_uri]).await;
    let (_, challenge) = pkce_pair();
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("response_type", Some("token"), "unsupported_response_type"),
        ("response_type", None, "response_type is required"),
        ("code_challenge", None, "code_challenge is required"),
        (
            "code_challenge_method",
            Some("plain"),
            "transform algorithm",
        ),
        ("scope", Some("admin"), "invalid_scope"),
        (
            "resource",
            Some("https://other.example/mcp"),
            "invalid_target",
        ),
    ];
    for (key, value, why) in cases {
        let mut params = public_params(&client_id, redirect_uri, &challenge);
        match value {
            Some(v) => set_param(&mut params, key, v),
            None => remove_param(&mut params, key),
        }
        let reply = Reply::read(app.get_authorize(&params).await).await;
        assert_error_page(&reply);
        assert!(reply.body.contains(why), "{key}: {}", reply.body);
    }
    // The demo client, added by the operator, keeps the redirect (OAuth 2.1 §4.1.2.1).
    let mut params = demo_authorize_params(&challenge, FLOW_STATE);
    set_param(&mut params, "response_type", "token");
    let reply = Reply::read(app.get_authorize(&params).await).await;
    assert_redirect_error(
        &app,
        &reply,
        DEMO_REDIRECT_URI,
        "unsupported_response_type",
        FLOW_STATE,
    );
    // After the user has interacted, a denial still goes back to the registered client.
    let params = public_params(&client_id, redirect_uri, &challenge);
    let denied = app
        .login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, false)
        .await;
    let reply = Reply::read(denied).await;
    assert_redirect_error(&app, &reply, redirect_uri, "access_denied", FLOW_STATE);
}

#[actix_web::test]
async fn control_characters_and_userinfo_in_the_requested_redirect_uri_get_an_error_page() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    for uri in [
        "http://localhost:8765/callback\u{0}",
        "http://localhost:8765/callback\r\nx",
        "http://demo@localhost:8765/callback",
    ] {
        let mut params = demo_authorize_params(&challenge, FLOW_STATE);
        set_param(&mut params, "redirect_uri", uri);
        let reply = Reply::read(app.get_authorize(&params).await).await;
        assert_error_page(&reply);
    }
}
