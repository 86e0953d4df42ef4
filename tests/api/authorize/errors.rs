//! Errors of the authorization request (OAuth 2.1 §4.1.2.1): shown locally as a page while
//! the client or redirect URI is not trusted (never redirected: no open redirector), and
//! redirected with `error`, `state` and `iss` (RFC 9207) once they are: response type, PKCE,
//! scope, resource (RFC 8707), duplicated parameters, loopback ports (RFC 8252 §7.3).

use super::*;

#[actix_web::test]
async fn unknown_client_gets_an_error_page_not_a_redirect() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "client_id", "no_such_client");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn missing_client_id_gets_an_error_page() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    remove_param(&mut params, "client_id");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn unregistered_redirect_uris_get_an_error_page() {
    // Exact matching (OAuth 2.1 §2.3.1); only the loopback port is relaxed.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    for redirect_uri in [
        "https://evil.example/callback",
        "http://127.0.0.1:8765/other",
        "http://localhost:8765/callback/",
        "http://localhost:8765/callback?x=1",
    ] {
        let mut params = demo_authorize_params(&challenge, STATE);
        set_param(&mut params, "redirect_uri", redirect_uri);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_error_page(&reply);
    }
}

#[actix_web::test]
async fn omitted_redirect_uri_is_an_error_when_two_are_registered() {
    // OAuth 2.1 §2.3.2: redirect_uri may only be omitted when exactly one is registered;
    // demo_client has two.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    remove_param(&mut params, "redirect_uri");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn duplicated_client_id_or_redirect_uri_gets_an_error_page() {
    // OAuth 2.1 §3.1: parameters must not repeat; for these two we cannot even trust
    // where to redirect, so the error stays local.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    for duplicated in [
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", DEMO_REDIRECT_URI),
    ] {
        let mut params = demo_authorize_params(&challenge, STATE);
        params.push(duplicated);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_error_page(&reply);
    }
}

#[actix_web::test]
async fn loopback_redirect_accepts_any_port() {
    // RFC 8252 §7.3: native apps listen on an ephemeral port, so only the port may differ.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(
        &mut params,
        "redirect_uri",
        "http://127.0.0.1:45678/callback",
    );

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn response_type_token_is_unsupported() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "response_type", "token");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(
        &app,
        &reply,
        DEMO_REDIRECT_URI,
        "unsupported_response_type",
        STATE,
    );
}

#[actix_web::test]
async fn missing_code_challenge_is_rejected() {
    // PKCE is mandatory for every client (OAuth 2.1 §4.1.1, MCP authorization).
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    remove_param(&mut params, "code_challenge");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
}

#[actix_web::test]
async fn plain_or_missing_challenge_method_is_rejected() {
    // Only S256 is supported; an absent method means `plain` (RFC 7636 §4.3), which we refuse.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    let mut plain = demo_authorize_params(&challenge, STATE);
    set_param(&mut plain, "code_challenge_method", "plain");
    let mut missing = demo_authorize_params(&challenge, STATE);
    remove_param(&mut missing, "code_challenge_method");

    for params in [plain, missing] {
        let reply = Reply::read(app.get_authorize(&params).await).await;
        assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
    }
}

#[actix_web::test]
async fn malformed_code_challenge_is_rejected() {
    // code-challenge = 43*128 unreserved characters (RFC 7636 §4.2).
    let app = spawn_app().await;
    let too_short = "a".repeat(42);
    let too_long = "a".repeat(129);
    let bad_chars = "!".repeat(43);
    let standard_base64 = format!("{}+/", "a".repeat(41));

    for challenge in [&too_short, &too_long, &bad_chars, &standard_base64] {
        let params = demo_authorize_params(challenge, STATE);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
    }
}

#[actix_web::test]
async fn unknown_scope_is_invalid_scope() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "scope", "mcp:read mcp:admin");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_scope", STATE);
}

#[actix_web::test]
async fn foreign_resource_is_invalid_target() {
    // RFC 8707: we only issue tokens for our own MCP endpoint.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let bare_issuer = app.issuer().to_owned();

    for resource in ["https://other.example/mcp", bare_issuer.as_str()] {
        let mut params = demo_authorize_params(&challenge, STATE);
        set_param(&mut params, "resource", resource);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_target", STATE);
    }
}

#[actix_web::test]
async fn our_own_resource_is_accepted() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let resource = app.resource();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "resource", &resource);

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn duplicated_scope_is_invalid_request() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    params.push(("scope", "mcp:read"));

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
}

#[actix_web::test]
async fn state_is_echoed_exactly() {
    // The client compares state byte for byte; reserved and non-ASCII characters must survive.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let state = "a b&c=d/é+%20?#";
    let mut params = demo_authorize_params(&challenge, state);
    set_param(&mut params, "response_type", "token");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(
        &app,
        &reply,
        DEMO_REDIRECT_URI,
        "unsupported_response_type",
        state,
    );
}
