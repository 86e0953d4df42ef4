//! Races the single-owner actor design must win: one code, many simultaneous redemptions
//! (OAuth 2.1 §4.1.3: a code is used at most once), and parallel refreshes inside the
//! grace window.

use futures_util::future::join_all;

use crate::helpers::{spawn_app, str_field, Reply, DEMO_BASIC};

const PARALLEL: usize = 16;

#[actix_web::test]
async fn a_code_is_redeemed_exactly_once_under_concurrency() {
    let app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];

    let responses =
        join_all((0..PARALLEL).map(|_| app.token_request(&form, Some(DEMO_BASIC)))).await;

    let mut winners = Vec::new();
    for response in responses {
        let reply = Reply::read(response).await;
        match reply.status {
            200 => winners.push(reply.json()),
            400 => assert_eq!(reply.json()["error"], "invalid_grant", "{}", reply.body),
            other => panic!("unexpected status {other}: {}", reply.body),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "the code was redeemed {} times",
        winners.len()
    );
    // The replays revoked the grant, whether they reached the ledger before or after the
    // winner's tokens were minted.
    for kind in ["access_token", "refresh_token"] {
        assert!(
            !app.is_active(&str_field(&winners[0], kind)).await,
            "{kind}"
        );
    }
}

#[actix_web::test]
async fn parallel_refreshes_within_the_grace_window_all_succeed() {
    // Several tool calls noticing an expired access token at once must not kill the grant.
    let app = spawn_app().await;
    let tokens = app.exchange_code_demo().await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];

    let responses =
        join_all((0..PARALLEL / 2).map(|_| app.token_request(&form, Some(DEMO_BASIC)))).await;

    let mut refresh_tokens = Vec::new();
    for response in responses {
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        refresh_tokens.push(str_field(&reply.json(), "refresh_token"));
    }
    // Whichever refresh token the server considers current, the grant itself must be alive.
    let mut alive = false;
    for token in &refresh_tokens {
        alive |= app.is_active(token).await;
    }
    assert!(alive, "parallel refreshes revoked the grant");
}
