//! Token revocation (RFC 7009) and introspection (RFC 7662).

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    assert_basic_challenge, assert_inactive, assert_no_store, assert_oauth_error, aud_contains,
    scope_set, spawn_app, str_field, Reply, TestApp, ALL_SCOPES, DEMO_BASIC, DEMO_CLIENT_ID,
    DEMO_REDIRECT_URI, DEMO_USER, START_UNIX,
};

/// Demo tokens: `(access_token, refresh_token)`.
async fn demo_tokens(app: &TestApp) -> (String, String) {
    let tokens: Value = app.exchange_code_demo().await;
    (
        str_field(&tokens, "access_token"),
        str_field(&tokens, "refresh_token"),
    )
}

// ----- revocation ------------------------------------------------------------------------------

#[actix_web::test]
async fn revoking_an_access_token_deactivates_it() {
    let app = spawn_app().await;
    let (access_token, _) = demo_tokens(&app).await;
    assert!(app.is_active(&access_token).await);

    let reply = Reply::read(
        app.revoke(&access_token, Some("access_token"), Some(DEMO_BASIC))
            .await,
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_no_store(&reply);
    assert_inactive(&app.introspect(&access_token).await);
}

#[actix_web::test]
async fn revoking_a_refresh_token_deactivates_the_grant() {
    // RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access tokens of
    // the same grant.
    let app = spawn_app().await;
    let (access_token, refresh_token) = demo_tokens(&app).await;

    let reply = Reply::read(app.revoke(&refresh_token, None, Some(DEMO_BASIC)).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_inactive(&app.introspect(&refresh_token).await);
    assert_inactive(&app.introspect(&access_token).await);
    let refresh = app.refresh(&refresh_token, None).await;
    assert_oauth_error(&refresh, 400, "invalid_grant");
}

#[actix_web::test]
async fn unknown_token_revocation_is_ok() {
    // RFC 7009 §2.2: invalid tokens do not cause an error; the client's goal is reached.
    let app = spawn_app().await;

    let reply = Reply::read(app.revoke("no-such-token", None, Some(DEMO_BASIC)).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_no_store(&reply);
}

#[actix_web::test]
async fn token_type_hint_is_never_fatal() {
    // RFC 7009 §2.1: a wrong or unknown hint only changes where the server looks first.
    let app = spawn_app().await;
    let (nonsense_hinted, _) = demo_tokens(&app).await;
    let (wrongly_hinted, _) = demo_tokens(&app).await;

    let nonsense = Reply::read(
        app.revoke(&nonsense_hinted, Some("banana"), Some(DEMO_BASIC))
            .await,
    )
    .await;
    let wrong = Reply::read(
        app.revoke(&wrongly_hinted, Some("refresh_token"), Some(DEMO_BASIC))
            .await,
    )
    .await;

    assert_eq!(nonsense.status, 200, "{}", nonsense.body);
    assert_eq!(wrong.status, 200, "{}", wrong.body);
    assert_inactive(&app.introspect(&nonsense_hinted).await);
    assert_inactive(&app.introspect(&wrongly_hinted).await);
}

#[actix_web::test]
async fn revocation_requires_valid_client_authentication() {
    let app = spawn_app().await;
    let (access_token, _) = demo_tokens(&app).await;

    let reply = Reply::read(
        app.revoke(&access_token, None, Some((DEMO_CLIENT_ID, "wrong")))
            .await,
    )
    .await;

    assert_basic_challenge(&reply);
    assert!(
        app.is_active(&access_token).await,
        "revoked despite failed auth"
    );
}

#[actix_web::test]
async fn a_client_cannot_revoke_another_clients_token() {
    // RFC 7009 §2.1: the server verifies the token was issued to the requesting client;
    // the answer stays 200 so the token's existence is not revealed.
    let app = spawn_app().await;
    let (other_id, other_secret) = app.register_confidential(&[DEMO_REDIRECT_URI]).await;
    let (access_token, refresh_token) = demo_tokens(&app).await;

    for token in [&access_token, &refresh_token] {
        let reply = Reply::read(
            app.revoke(
                token,
                None,
                Some((other_id.as_str(), other_secret.as_str())),
            )
            .await,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    assert!(app.is_active(&access_token).await);
    assert!(app.is_active(&refresh_token).await);
}

// ----- introspection ---------------------------------------------------------------------------

#[actix_web::test]
async fn a_client_cannot_introspect_another_clients_token() {
    // RFC 7662 §4: no token scanning. Another client's token looks like an unknown one.
    let app = spawn_app().await;
    let (other_id, other_secret) = app.register_confidential(&[DEMO_REDIRECT_URI]).await;
    let (access_token, refresh_token) = demo_tokens(&app).await;

    for token in [&access_token, &refresh_token] {
        let reply = Reply::read(
            app.introspect_request(
                &[("token", token.as_str())],
                Some((other_id.as_str(), other_secret.as_str())),
            )
            .await,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json(), serde_json::json!({ "active": false }));
    }
    // The owner still sees them.
    assert!(app.is_active(&access_token).await);
    assert!(app.is_active(&refresh_token).await);
}

#[actix_web::test]
async fn active_access_token_introspection() {
    let app = spawn_app().await;
    let (access_token, _) = demo_tokens(&app).await;

    let body = app.introspect(&access_token).await;

    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], DEMO_CLIENT_ID);
    assert_eq!(body["sub"], DEMO_USER);
    assert_eq!(
        body["scope"].as_str().map(scope_set),
        Some(scope_set(ALL_SCOPES))
    );
    // Audience-bound to our MCP endpoint even though the client sent no `resource`.
    assert!(aud_contains(&body["aud"], &app.resource()), "{body}");
    assert_eq!(body["iss"], app.issuer());
    // The clock has not moved since the token was issued.
    assert_eq!(body["iat"], START_UNIX);
    assert_eq!(body["exp"], START_UNIX + 3600);
}

#[actix_web::test]
async fn active_refresh_token_introspection() {
    let app = spawn_app().await;
    let (_, refresh_token) = demo_tokens(&app).await;

    let body = app.introspect(&refresh_token).await;

    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");
    assert_eq!(body["client_id"], DEMO_CLIENT_ID);
    assert_eq!(body["sub"], DEMO_USER);
    assert_eq!(body["iat"], START_UNIX);
    assert_eq!(body["exp"], START_UNIX + 30 * 24 * 3600);
}

#[actix_web::test]
async fn inactive_tokens_reveal_nothing() {
    // RFC 7662 §2.2: for an inactive token, only `active: false` is returned.
    let app = spawn_app().await;
    let (revoked, _) = demo_tokens(&app).await;
    let (expiring, _) = demo_tokens(&app).await;
    let revocation = Reply::read(app.revoke(&revoked, None, Some(DEMO_BASIC)).await).await;
    assert_eq!(revocation.status, 200);

    assert_inactive(&app.introspect("no-such-token").await);
    assert_inactive(&app.introspect(&revoked).await);
    app.clock.advance(Duration::from_secs(3601));
    assert_inactive(&app.introspect(&expiring).await);
}

#[actix_web::test]
async fn introspection_requires_client_authentication() {
    let app = spawn_app().await;
    let (access_token, _) = demo_tokens(&app).await;
    let public_id = app.register_public(&["http://127.0.0.1:9000/cb"]).await;

    // No authentication at all.
    let anonymous = Reply::read(
        app.introspect_request(&[("token", access_token.as_str())], None)
            .await,
    )
    .await;
    assert_oauth_error(&anonymous, 401, "invalid_client");

    // A public client cannot authenticate, so it cannot introspect either.
    let public = Reply::read(
        app.introspect_request(
            &[
                ("token", access_token.as_str()),
                ("client_id", public_id.as_str()),
            ],
            None,
        )
        .await,
    )
    .await;
    assert_oauth_error(&public, 401, "invalid_client");

    // Wrong secret over Basic gets the Basic challenge.
    let wrong = Reply::read(
        app.introspect_request(
            &[("token", access_token.as_str())],
            Some((DEMO_CLIENT_ID, "wrong")),
        )
        .await,
    )
    .await;
    assert_basic_challenge(&wrong);
}

#[actix_web::test]
async fn client_credentials_tokens_introspect_as_the_client() {
    let app = spawn_app().await;
    let form = [("grant_type", "client_credentials")];
    let reply = Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let body = app
        .introspect(&str_field(&reply.json(), "access_token"))
        .await;

    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], DEMO_CLIENT_ID);
    assert_eq!(body["token_type"], "Bearer");
    assert!(aud_contains(&body["aud"], &app.resource()), "{body}");
}
