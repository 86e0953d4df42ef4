//! Races the single-owner actor design must win: one code, many simultaneous redemptions
//! (OAuth 2.1 §4.1.3: a code is used at most once), and parallel reuse of one refresh token
//! without a grace window. Parallel refreshes inside the window (which converge on one
//! pair) are in `refresh.rs`.

use futures_util::future::join_all;

use crate::helpers::{spawn_app, spawn_app_with, str_field, Reply, TestApp, DEMO_BASIC};

const PARALLEL: usize = 16;

/// Sends the same token request `PARALLEL` times at once; answers the successful replies and
/// asserts every other one is `invalid_grant`.
async fn race(app: &TestApp, form: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let responses =
        join_all((0..PARALLEL).map(|_| app.token_request(form, Some(DEMO_BASIC)))).await;
    let mut winners = Vec::new();
    for response in responses {
        let reply = Reply::read(response).await;
        match reply.status {
            200 => winners.push(reply.json()),
            400 => assert_eq!(reply.json()["error"], "invalid_grant", "{}", reply.body),
            other => panic!("unexpected status {other}: {}", reply.body),
        }
    }
    winners
}

#[actix_web::test]
async fn a_code_is_redeemed_at_most_once_under_concurrency_and_never_into_a_revoked_grant() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];

    let winners = race(&app, &form).await;
    // The first redemption burns the code; every other one is a replay, which revokes the
    // grant. If a replay's revocation reaches the ledger before the first redemption's
    // tokens are minted, that exchange is refused too (`invalid_grant`: no tokens dead from
    // birth); otherwise it answers 200 and the revocation kills its tokens. Which of the
    // two happens is up to the scheduler; neither may hand out a live token. (The ledger's
    // `no_token_is_minted_into_a_revoked_grant...` test pins the first order down.)
    assert!(
        winners.len() <= 1,
        "the code was redeemed {} times",
        winners.len()
    );
    for winner in &winners {
        for kind in ["access_token", "refresh_token"] {
            assert!(!app.is_active(&str_field(winner, kind)).await, "{kind}");
        }
    }
}

#[actix_web::test]
async fn parallel_reuse_outside_the_grace_window_has_one_winner_and_revokes_the_grant() {
    // With no grace window, only the first rotation counts; every other use of the same
    // refresh token is reuse (OAuth 2.1 §4.3.1), which revokes the whole grant.
    let app = spawn_app_with(|c| c.refresh_grace = std::time::Duration::ZERO).await;
    let tokens = app.exchange_code_demo().await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];

    let winners = race(&app, &form).await;
    assert_eq!(winners.len(), 1, "{} rotations of one token", winners.len());
    for kind in ["access_token", "refresh_token"] {
        assert!(
            !app.is_active(&str_field(&winners[0], kind)).await,
            "the reuse did not revoke the winner's {kind}"
        );
    }
    assert!(!app.is_active(&str_field(&tokens, "access_token")).await);
}

#[actix_web::test]
async fn registrations_and_revocations_racing_issuance_lose_nothing() {
    let app = spawn_app_with(|c| c.registrations_per_hour = 1_000).await;
    let cc = [("grant_type", "client_credentials")];
    // Tokens to revoke, issued up front.
    let mut doomed = Vec::new();
    for _ in 0..PARALLEL {
        let reply = Reply::read(app.token_request(&cc, Some(DEMO_BASIC)).await).await;
        doomed.push(str_field(&reply.json(), "access_token"));
    }

    let issue = join_all((0..PARALLEL).map(|_| app.token_request(&cc, Some(DEMO_BASIC))));
    let revoke = join_all(doomed.iter().map(|t| app.revoke(t, None, Some(DEMO_BASIC))));
    let app = &app;
    let register = join_all((0..PARALLEL).map(|i| async move {
        let body = serde_json::json!({
            "redirect_uris": ["https://app.example/cb"],
            "client_name": format!("racer {i}"),
        });
        app.register(&body).await
    }));
    let (issued, revoked, registered) = futures_util::join!(issue, revoke, register);

    let mut fresh = Vec::new();
    for response in issued {
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        fresh.push(str_field(&reply.json(), "access_token"));
    }
    for response in revoked {
        assert_eq!(response.status(), 200);
    }
    let mut client_ids = std::collections::HashSet::new();
    for response in registered {
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert!(client_ids.insert(str_field(&reply.json(), "client_id")));
    }
    // Every acknowledged revocation holds, every new token is live.
    for token in &doomed {
        assert!(!app.is_active(token).await, "a revoked token is active");
    }
    for token in &fresh {
        assert!(app.is_active(token).await, "an issued token was lost");
    }
}
