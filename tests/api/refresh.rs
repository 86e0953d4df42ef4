//! The refresh_token grant (OAuth 2.1 §4.3): rotation with a short grace window in which
//! presenting the rotated token again is idempotent (the same successor pair, so parallel
//! refreshes converge and a replay gains nothing), reuse detection after it that revokes the
//! whole grant, scope narrowing that does not stick, and client binding.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{
    assert_inactive, assert_no_store, assert_token_error, aud_contains, scope_set, spawn_app,
    str_field, Reply, ALL_SCOPES, DEMO_BASIC, DEMO_CLIENT_ID, DEMO_REDIRECT_URI,
};

/// Concurrent refreshes in the parallel case.
const PARALLEL: usize = 8;

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

/// The parts of a token response that make up the pair a client holds.
fn pair(body: &Value) -> (String, String, Value, String) {
    (
        str_field(body, "access_token"),
        str_field(body, "refresh_token"),
        body["expires_in"].clone(),
        str_field(body, "scope"),
    )
}

#[actix_web::test]
async fn parallel_refreshes_in_the_grace_window_converge_on_one_pair() {
    // Several processes sharing one credential store refresh with the same token at once:
    // every one of them must get the same successor pair, so the grant keeps a single live
    // branch (and no answer is a branch of its own that reuse detection never sees).
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];

    let responses =
        join_all((0..PARALLEL).map(|_| app.token_request(&form, Some(DEMO_BASIC)))).await;

    let mut answers = Vec::new();
    for response in responses {
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_no_store(&reply);
        answers.push(pair(&reply.json()));
    }
    let first = answers[0].clone();
    assert!(
        answers.iter().all(|a| *a == first),
        "parallel refreshes forked the grant into {} different pairs",
        answers
            .iter()
            .map(|a| &a.1)
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
    let (access, refresh, expires_in, scope) = first;
    assert_eq!(expires_in, 3600);
    assert_eq!(scope_set(&scope), scope_set(ALL_SCOPES));
    assert!(app.is_active(&access).await);
    assert!(app.is_active(&refresh).await);
    assert!(!app.is_active(&refresh_token).await, "rotated out");
    // The one branch goes on normally.
    let next = app.refresh(&refresh, None).await;
    assert_eq!(next.status, 200, "{}", next.body);
}

#[actix_web::test]
async fn a_replay_in_the_grace_window_gains_nothing_the_client_does_not_hold() {
    // A thief who replays a leaked refresh request inside the window gets exactly what the
    // legitimate client got, and keeps getting that same, meanwhile rotated, pair: no branch
    // of his own, and his copy dies with the client's rotation.
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let leaked = str_field(&tokens, "refresh_token");
    let client = app.refresh(&leaked, None).await;
    assert_eq!(client.status, 200, "{}", client.body);
    let (access1, refresh1, _, scope1) = pair(&client.json());

    app.clock.advance(Duration::from_secs(4));
    let replay = app.refresh(&leaked, None).await;

    assert_eq!(replay.status, 200, "{}", replay.body);
    let replay = replay.json();
    assert_eq!(str_field(&replay, "access_token"), access1);
    assert_eq!(str_field(&replay, "refresh_token"), refresh1);
    assert_eq!(str_field(&replay, "scope"), scope1);
    // The same expiry as the first answer, counted from now.
    assert_eq!(replay["expires_in"], 3600 - 4);

    // The client rotates on; a later replay, still inside the leaked token's window, hands
    // out the same pair again, whose refresh token is now rotated out.
    app.clock.advance(Duration::from_secs(2));
    let client = app.refresh(&refresh1, None).await;
    assert_eq!(client.status, 200, "{}", client.body);
    let (access2, refresh2, _, _) = pair(&client.json());
    let replay = app.refresh(&leaked, None).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    let (a, r, _, _) = pair(&replay.json());
    assert_eq!((a, r), (access1.clone(), refresh1.clone()));
    assert!(
        !app.is_active(&refresh1).await,
        "the thief's copy is rotated out"
    );
    // Inside its own window, the rotated copy only yields the client's current pair.
    let thief = app.refresh(&refresh1, None).await;
    assert_eq!(thief.status, 200, "{}", thief.body);
    let (a, r, _, _) = pair(&thief.json());
    assert_eq!((a, r), (access2.clone(), refresh2.clone()));
    // Past that window it is reuse, which revokes the whole grant.
    app.clock.advance(PAST_GRACE);
    assert_token_error(&app.refresh(&refresh1, None).await, 400, "invalid_grant");
    for token in [&access1, &access2, &refresh2] {
        assert!(!app.is_active(token).await, "the grant survived reuse");
    }
}

#[actix_web::test]
async fn a_replay_gets_the_first_answer_whatever_scope_it_asks_for() {
    // The pair is fixed by the first rotation: a replay asking for another (allowed) scope
    // gets that pair, and its `scope` says what the access token carries (RFC 6749 §5.1).
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let old = str_field(&tokens, "refresh_token");
    let first = app.refresh(&old, Some("mcp:read")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = pair(&first.json());

    let again = app.refresh(&old, None).await;

    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(pair(&again.json()), first);
    assert_eq!(first.3, "mcp:read");
    // Widening beyond the grant is refused as ever.
    assert_token_error(
        &app.refresh(&old, Some("mcp:admin")).await,
        400,
        "invalid_scope",
    );
}

#[actix_web::test]
async fn a_revoked_successor_is_not_handed_out_again() {
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let old = str_field(&tokens, "refresh_token");
    let first = app.refresh(&old, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let (access1, refresh1, _, _) = pair(&first.json());
    // The client revokes the access token it got (logout of one session, say).
    let revoked = Reply::read(app.revoke(&access1, None, Some(DEMO_BASIC)).await).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);

    let replay = app.refresh(&old, None).await;

    assert_token_error(&replay, 400, "invalid_grant");
    assert!(!app.is_active(&access1).await, "a revoked token came back");
    // Nothing else changed: the client's refresh token still works.
    assert!(app.is_active(&refresh1).await);
    // And once the refresh token (so the grant) is revoked, a replay gets nothing either.
    let revoked = Reply::read(app.revoke(&refresh1, None, Some(DEMO_BASIC)).await).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_token_error(&app.refresh(&old, None).await, 400, "invalid_grant");
    assert!(!app.is_active(&refresh1).await);
}

#[actix_web::test]
async fn reuse_after_the_window_revokes_the_grant_and_the_replayed_pair() {
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let old = str_field(&tokens, "refresh_token");
    let first = app.refresh(&old, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let replay = app.refresh(&old, None).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    let (access, refresh, _, _) = pair(&replay.json());

    app.clock.advance(PAST_GRACE);
    let reuse = app.refresh(&old, None).await;

    assert_token_error(&reuse, 400, "invalid_grant");
    assert!(!app.is_active(&access).await);
    assert!(!app.is_active(&refresh).await);
    assert_token_error(&app.refresh(&refresh, None).await, 400, "invalid_grant");
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
