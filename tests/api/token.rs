//! The token endpoint (OAuth 2.1 §3.2, §4.1.3, §4.2): client authentication, the
//! authorization_code and client_credentials grants, and the request-level errors.
//! Refresh is in `refresh.rs`.

use std::time::Duration;

use crate::helpers::{
    assert_basic_challenge, assert_no_store, assert_token_error, pkce_pair, scope_set, spawn_app,
    str_field, Reply, TestApp, ALL_SCOPES, DEMO_BASIC, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URI, DEMO_REDIRECT_URI_IP,
};

/// POSTs an authorization_code request for a fresh demo code, with extra form fields and
/// the given auth; `code` and `code_verifier` come first.
async fn redeem(
    app: &TestApp,
    code: &str,
    verifier: &str,
    extra: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Reply {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(extra);
    Reply::read(app.token_request(&form, basic).await).await
}

// ----- authorization_code: success -------------------------------------------------------------

#[actix_web::test]
async fn code_exchange_with_basic_auth_returns_tokens() {
    let app = spawn_app().await;
    let (code, verifier, redirect_uri) = app.obtain_code().await;

    // Basic only: client_id need not repeat in the body (OAuth 2.1 §3.2.2).
    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[("redirect_uri", redirect_uri.as_str())],
        Some(DEMO_BASIC),
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_no_store(&reply);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = reply.json();
    // 256-bit tokens in base64url are 43 characters.
    assert!(str_field(&body, "access_token").len() >= 43, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(str_field(&body, "refresh_token").len() >= 43, "{body}");
    assert_eq!(scope_set(&str_field(&body, "scope")), scope_set(ALL_SCOPES));
    assert_ne!(body["access_token"], body["refresh_token"]);
}

#[actix_web::test]
async fn code_exchange_with_client_secret_post() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ],
        None,
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["access_token"].is_string());
}

#[actix_web::test]
async fn redirect_uri_may_be_omitted_at_the_token_endpoint() {
    // OAuth 2.1 clients do not send redirect_uri to /token; only a *different* one is an error.
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(&app, &code, &verifier, &[], Some(DEMO_BASIC)).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn our_own_resource_is_accepted_at_the_token_endpoint() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;
    let resource = app.resource();

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[("resource", resource.as_str())],
        Some(DEMO_BASIC),
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

// ----- authorization_code: grant errors --------------------------------------------------------

#[actix_web::test]
async fn missing_code_verifier_is_invalid_request() {
    let app = spawn_app().await;
    let (code, _, _) = app.obtain_code().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
    ];

    let reply = Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await).await;

    assert_token_error(&reply, 400, "invalid_request");
}

#[actix_web::test]
async fn wrong_code_verifier_is_invalid_grant() {
    let app = spawn_app().await;
    let (code, _, _) = app.obtain_code().await;
    // Well-formed, just not the one behind the challenge.
    let (other_verifier, _) = pkce_pair();

    let reply = redeem(&app, &code, &other_verifier, &[], Some(DEMO_BASIC)).await;

    assert_token_error(&reply, 400, "invalid_grant");
}

#[actix_web::test]
async fn expired_code_is_invalid_grant() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    app.clock.advance(Duration::from_secs(61));
    let reply = redeem(&app, &code, &verifier, &[], Some(DEMO_BASIC)).await;

    assert_token_error(&reply, 400, "invalid_grant");
}

#[actix_web::test]
async fn unknown_code_is_invalid_grant() {
    let app = spawn_app().await;
    let (verifier, _) = pkce_pair();

    let reply = redeem(&app, "no-such-code", &verifier, &[], Some(DEMO_BASIC)).await;

    assert_token_error(&reply, 400, "invalid_grant");
}

#[actix_web::test]
async fn code_issued_to_another_client_is_invalid_grant() {
    let app = spawn_app().await;
    let (other_id, other_secret) = app.register_confidential(&[DEMO_REDIRECT_URI]).await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[],
        Some((other_id.as_str(), other_secret.as_str())),
    )
    .await;

    assert_token_error(&reply, 400, "invalid_grant");
}

#[actix_web::test]
async fn different_redirect_uri_is_invalid_grant() {
    // The code was issued for DEMO_REDIRECT_URI; the other registered URI must not do.
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[("redirect_uri", DEMO_REDIRECT_URI_IP)],
        Some(DEMO_BASIC),
    )
    .await;

    assert_token_error(&reply, 400, "invalid_grant");
}

#[actix_web::test]
async fn foreign_resource_is_invalid_target() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[("resource", "https://other.example/mcp")],
        Some(DEMO_BASIC),
    )
    .await;

    assert_token_error(&reply, 400, "invalid_target");
}

#[actix_web::test]
async fn replayed_code_fails_and_revokes_what_it_issued() {
    // OAuth 2.1 §4.1.3: a second redemption means the code leaked; the tokens issued from it
    // are revoked as well.
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;
    let first = redeem(&app, &code, &verifier, &[], Some(DEMO_BASIC)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let tokens = first.json();
    let access_token = str_field(&tokens, "access_token");
    let refresh_token = str_field(&tokens, "refresh_token");
    assert!(app.is_active(&access_token).await);

    let replay = redeem(&app, &code, &verifier, &[], Some(DEMO_BASIC)).await;

    assert_token_error(&replay, 400, "invalid_grant");
    assert!(
        !app.is_active(&access_token).await,
        "access token survived the replay"
    );
    assert!(
        !app.is_active(&refresh_token).await,
        "refresh token survived the replay"
    );
    assert_token_error(
        &app.refresh(&refresh_token, None).await,
        400,
        "invalid_grant",
    );
}

// ----- client authentication -------------------------------------------------------------------

#[actix_web::test]
async fn wrong_secret_with_basic_is_invalid_client_with_a_challenge() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(&app, &code, &verifier, &[], Some((DEMO_CLIENT_ID, "wrong"))).await;

    assert_basic_challenge(&reply);
    assert_no_store(&reply);
}

#[actix_web::test]
async fn wrong_secret_in_body_is_invalid_client() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[("client_id", DEMO_CLIENT_ID), ("client_secret", "wrong")],
        None,
    )
    .await;

    assert_token_error(&reply, 401, "invalid_client");
}

#[actix_web::test]
async fn unknown_client_is_invalid_client() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let with_basic = redeem(&app, &code, &verifier, &[], Some(("no_such_client", "x"))).await;
    assert_basic_challenge(&with_basic);

    let with_post = redeem(
        &app,
        &code,
        &verifier,
        &[("client_id", "no_such_client"), ("client_secret", "x")],
        None,
    )
    .await;
    assert_token_error(&with_post, 401, "invalid_client");
}

#[actix_web::test]
async fn basic_and_body_secret_together_is_invalid_request() {
    // OAuth 2.1 §2.4: a client MUST NOT use more than one authentication method per request.
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ],
        Some(DEMO_BASIC),
    )
    .await;

    assert_token_error(&reply, 400, "invalid_request");
}

#[actix_web::test]
async fn confidential_client_without_secret_is_invalid_client() {
    // A confidential client may not downgrade itself to `none`.
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    let reply = redeem(
        &app,
        &code,
        &verifier,
        &[("client_id", DEMO_CLIENT_ID)],
        None,
    )
    .await;

    assert_token_error(&reply, 401, "invalid_client");
}

#[actix_web::test]
async fn failed_client_auth_does_not_burn_the_code() {
    // Authentication happens before the code is consumed, so a typo in the secret does not
    // cost the user another login.
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;
    let rejected = redeem(&app, &code, &verifier, &[], Some((DEMO_CLIENT_ID, "wrong"))).await;
    assert_eq!(rejected.status, 401);

    let reply = redeem(&app, &code, &verifier, &[], Some(DEMO_BASIC)).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

// ----- client_credentials ----------------------------------------------------------------------

#[actix_web::test]
async fn client_credentials_issues_an_access_token_only() {
    let app = spawn_app().await;
    let form = [("grant_type", "client_credentials")];

    let reply = Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_no_store(&reply);
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(str_field(&body, "access_token").len() >= 43);
    // OAuth 2.1 §4.2.2: no refresh token for client_credentials.
    assert!(body.get("refresh_token").is_none(), "{body}");
    let introspection = app.introspect(&str_field(&body, "access_token")).await;
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["client_id"], DEMO_CLIENT_ID);
}

#[actix_web::test]
async fn client_credentials_is_refused_for_public_clients() {
    // A public client has no credentials, so it cannot vouch for itself.
    let app = spawn_app().await;
    let public_id = app.register_public(&["http://127.0.0.1:9000/cb"]).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", public_id.as_str()),
    ];

    let reply = Reply::read(app.token_request(&form, None).await).await;

    assert_token_error(&reply, 400, "unauthorized_client");
}

// ----- request-level errors --------------------------------------------------------------------

#[actix_web::test]
async fn password_grant_is_unsupported() {
    // RFC 9700 §2.4: the resource owner password credentials grant MUST NOT be used.
    let app = spawn_app().await;
    let form = [
        ("grant_type", "password"),
        ("username", "demo_user"),
        ("password", "demo_password"),
    ];

    let reply = Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await).await;

    assert_token_error(&reply, 400, "unsupported_grant_type");
}

#[actix_web::test]
async fn missing_grant_type_is_invalid_request() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;
    let form = [
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];

    let reply = Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await).await;

    assert_token_error(&reply, 400, "invalid_request");
}

#[actix_web::test]
async fn duplicated_parameters_are_invalid_request() {
    // OAuth 2.1 §3.2: request parameters MUST NOT be included more than once.
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;

    for duplicated in ["grant_type", "code", "code_verifier"] {
        let value = match duplicated {
            "grant_type" => "authorization_code",
            "code" => code.as_str(),
            _ => verifier.as_str(),
        };
        let reply = redeem(
            &app,
            &code,
            &verifier,
            &[(duplicated, value)],
            Some(DEMO_BASIC),
        )
        .await;
        assert_token_error(&reply, 400, "invalid_request");
    }
}
