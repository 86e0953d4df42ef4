//! The refresh_token grant (OAuth 2.1 §4.3): rotation with a short reuse grace window,
//! reuse detection that revokes the whole grant, scope narrowing that does not stick,
//! and client binding.

use std::time::Duration;

use crate::helpers::{
    assert_inactive, assert_no_store, assert_token_error, aud_contains, scope_set, spawn_app,
    str_field, Reply, ALL_SCOPES, DEMO_BASIC, DEMO_CLIENT_ID, DEMO_REDIRECT_URI,
};

/// `refresh_grace` defaults to 10 s; one second more is outside it.
const PAST_GRACE: Duration = Duration::from_secs(11);

#[actix_web::test]
async fn refresh_rotates_the_refresh_token() {
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let old_refresh = str_field(&tokens, "refresh_token");

    let reply = app.refresh(&old_refresh, None).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_no_store(&reply);
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(scope_set(&str_field(&body, "scope")), scope_set(ALL_SCOPES));
    let new_refresh = str_field(&body, "refresh_token");
    assert_ne!(new_refresh, old_refresh, "refresh token was not rotated");
    assert_ne!(body["access_token"], tokens["access_token"]);
    assert!(app.is_active(&str_field(&body, "access_token")).await);
    assert!(app.is_active(&new_refresh).await);
}

#[actix_web::test]
async fn reusing_a_rotated_refresh_token_revokes_the_grant() {
    // BCP 4.14.2: after the grace window, reuse of a rotated token means it was stolen; both
    // the thief's and the victim's tokens die.
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let first_access = str_field(&tokens, "access_token");
    let first_refresh = str_field(&tokens, "refresh_token");
    let rotated = app.refresh(&first_refresh, None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated = rotated.json();
    let newest_access = str_field(&rotated, "access_token");
    let newest_refresh = str_field(&rotated, "refresh_token");

    app.clock.advance(PAST_GRACE);
    let reuse = app.refresh(&first_refresh, None).await;

    assert_token_error(&reuse, 400, "invalid_grant");
    assert!(
        !app.is_active(&newest_refresh).await,
        "newest refresh token survived"
    );
    assert!(
        !app.is_active(&newest_access).await,
        "newest access token survived"
    );
    assert!(
        !app.is_active(&first_access).await,
        "first access token survived"
    );
    assert_token_error(
        &app.refresh(&newest_refresh, None).await,
        400,
        "invalid_grant",
    );
}

#[actix_web::test]
async fn reuse_within_the_grace_window_succeeds() {
    // Parallel tool calls often refresh with the same token at once; the loser must not
    // kill the session.
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let old_refresh = str_field(&tokens, "refresh_token");
    let first = app.refresh(&old_refresh, None).await;
    assert_eq!(first.status, 200, "{}", first.body);

    let again = app.refresh(&old_refresh, None).await;

    assert_eq!(again.status, 200, "{}", again.body);
    let again = again.json();
    assert!(app.is_active(&str_field(&again, "access_token")).await);
    // The grant is still alive: the refresh token just handed out keeps working.
    let next = app.refresh(&str_field(&again, "refresh_token"), None).await;
    assert_eq!(next.status, 200, "{}", next.body);
}

#[actix_web::test]
async fn narrowing_applies_to_the_access_token_only() {
    // OAuth 2.1 §4.3.1 + §4.3.3: a narrower scope affects this access token; the new
    // refresh token keeps the originally granted scope.
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;

    let narrowed = app
        .refresh(&str_field(&tokens, "refresh_token"), Some("mcp:read"))
        .await;

    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    let narrowed = narrowed.json();
    assert_eq!(narrowed["scope"], "mcp:read");
    let introspection = app.introspect(&str_field(&narrowed, "access_token")).await;
    assert_eq!(introspection["scope"], "mcp:read");

    let widened_back = app
        .refresh(&str_field(&narrowed, "refresh_token"), None)
        .await;

    assert_eq!(widened_back.status, 200, "{}", widened_back.body);
    let widened_back = widened_back.json();
    assert_eq!(
        scope_set(&str_field(&widened_back, "scope")),
        scope_set(ALL_SCOPES)
    );
}

#[actix_web::test]
async fn widening_the_scope_is_invalid_scope() {
    let app = spawn_app().await;
    // A grant for mcp:read only, then ask for more than that.
    let (code, verifier) = app
        .obtain_code_for(DEMO_CLIENT_ID, DEMO_REDIRECT_URI, "mcp:read")
        .await;
    let tokens = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let refresh_token = str_field(&tokens.json(), "refresh_token");

    for scope in ["mcp:admin", "mcp:read mcp:write", "mcp:write"] {
        let reply = app.refresh(&refresh_token, Some(scope)).await;
        assert_token_error(&reply, 400, "invalid_scope");
    }
}

#[actix_web::test]
async fn refresh_token_of_another_client_is_invalid_grant() {
    let app = spawn_app().await;
    let (other_id, other_secret) = app.register_confidential(&[DEMO_REDIRECT_URI]).await;
    let tokens = app.exchange_code_demo().await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];

    let reply = Reply::read(
        app.token_request(&form, Some((other_id.as_str(), other_secret.as_str())))
            .await,
    )
    .await;

    assert_token_error(&reply, 400, "invalid_grant");
}

#[actix_web::test]
async fn unknown_or_missing_refresh_token_is_rejected() {
    let app = spawn_app().await;

    assert_token_error(
        &app.refresh("no-such-token", None).await,
        400,
        "invalid_grant",
    );

    let form = [("grant_type", "refresh_token")];
    let reply = Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await).await;
    assert_token_error(&reply, 400, "invalid_request");
}

#[actix_web::test]
async fn access_token_expires_but_refresh_still_works() {
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let access_token = str_field(&tokens, "access_token");

    // access_token_ttl defaults to 3600 s.
    app.clock.advance(Duration::from_secs(3601));

    assert_inactive(&app.introspect(&access_token).await);
    // This is exactly what refresh tokens are for.
    let reply = app
        .refresh(&str_field(&tokens, "refresh_token"), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        app.is_active(&str_field(&reply.json(), "access_token"))
            .await
    );
}

#[actix_web::test]
async fn refresh_token_expires() {
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let refresh_token = str_field(&tokens, "refresh_token");

    // refresh_token_ttl defaults to 30 days.
    app.clock.advance(Duration::from_secs(30 * 24 * 3600 + 1));

    assert_inactive(&app.introspect(&refresh_token).await);
    assert_token_error(
        &app.refresh(&refresh_token, None).await,
        400,
        "invalid_grant",
    );
}

#[actix_web::test]
async fn refresh_token_is_bound_to_the_code_scope_and_user() {
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;

    let reply = app
        .refresh(&str_field(&tokens, "refresh_token"), None)
        .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let introspection = app
        .introspect(&str_field(&reply.json(), "access_token"))
        .await;
    assert_eq!(introspection["sub"], "demo_user");
    assert_eq!(introspection["client_id"], DEMO_CLIENT_ID);
    assert!(
        aud_contains(&introspection["aud"], &app.resource()),
        "{introspection}"
    );
}
