//! Persistence across restarts: everything lives in sled, so a restarted server on the same
//! data directory must honour what the previous one issued, revoked and registered
//! (clients cache their registration and tokens and never re-register on their own).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::helpers::{
    assert_basic_challenge, assert_inactive, assert_token_error, spawn_app, spawn_app_with,
    str_field, Reply, DEMO_BASIC, DEMO_CLIENT_ID,
};

#[actix_web::test]
async fn state_survives_a_restart() {
    let mut app = spawn_app().await;
    let kept = app.exchange_code_demo().await;
    let kept_access = str_field(&kept, "access_token");
    let kept_refresh = str_field(&kept, "refresh_token");
    let revoked = app.exchange_code_demo().await;
    let revoked_access = str_field(&revoked, "access_token");
    let revocation = Reply::read(app.revoke(&revoked_access, None, Some(DEMO_BASIC)).await).await;
    assert_eq!(revocation.status, 200, "{}", revocation.body);
    let redirect_uri = "http://127.0.0.1:33420/callback";
    let (client_id, client_secret) = app.register_confidential(&[redirect_uri]).await;

    // Twice: the second start must not re-seed or duplicate the demo data either.
    for round in 1..=2 {
        app.restart().await;

        assert!(
            app.is_active(&kept_access).await,
            "round {round}: issued token lost"
        );
        assert!(
            app.is_active(&kept_refresh).await,
            "round {round}: refresh token lost"
        );
        assert_inactive(&app.introspect(&revoked_access).await);

        // The registered client still authenticates and completes a flow.
        let (code, verifier) = app
            .obtain_code_for(&client_id, redirect_uri, "mcp:read")
            .await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let reply = Reply::read(
            app.token_request(&form, Some((client_id.as_str(), client_secret.as_str())))
                .await,
        )
        .await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.body);

        // The demo client is still there with the same secret, and only that secret.
        let wrong = Reply::read(
            app.token_request(
                &[("grant_type", "client_credentials")],
                Some((DEMO_CLIENT_ID, "wrong")),
            )
            .await,
        )
        .await;
        assert_basic_challenge(&wrong);
        let fresh = app.exchange_code_demo().await;
        assert!(app.is_active(&str_field(&fresh, "access_token")).await);
    }

    // Grants issued before the restarts still rotate normally.
    let refreshed = app.refresh(&kept_refresh, None).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_ne!(str_field(&refreshed.json(), "refresh_token"), kept_refresh);
}

#[actix_web::test]
async fn used_codes_stay_used_after_a_restart() {
    // A code redeemed before the restart must not become redeemable again afterwards.
    let mut app = spawn_app().await;
    let (code, verifier, _) = app.obtain_code().await;
    let first = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(first.status, 200, "{}", first.body);

    app.restart().await;
    let replay = app.exchange_demo_code(&code, &verifier).await;

    assert_token_error(&replay, 400, "invalid_grant");
}

#[actix_web::test]
async fn a_revoked_grant_is_remembered_as_long_as_its_tokens_whatever_the_ttl_flags_now() {
    // Tokens issued under long lifetimes; then the server is restarted with short ones, and
    // the grant is revoked (here by a replay of its code). The revocation must outlive the
    // old, long-lived refresh token, not just what a token issued now would live.
    let short = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&short);
    let mut app = spawn_app_with(move |c| {
        if flag.load(Ordering::SeqCst) {
            c.access_token_ttl = Duration::from_secs(60);
            c.refresh_token_ttl = Duration::from_secs(3600);
        }
    })
    .await;
    let (code, verifier, _) = app.obtain_code().await;
    let tokens = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    // Lives 30 days (the default refresh TTL).
    let refresh_token = str_field(&tokens.json(), "refresh_token");

    short.store(true, Ordering::SeqCst);
    app.restart().await;
    let replay = app.exchange_demo_code(&code, &verifier).await;
    assert_token_error(&replay, 400, "invalid_grant");
    assert!(!app.is_active(&refresh_token).await);

    // Well past anything the short flags would keep, well within the old token's life.
    app.clock.advance(Duration::from_secs(2 * 24 * 3600));
    app.sweep().await;
    assert!(
        !app.is_active(&refresh_token).await,
        "the revocation was forgotten"
    );
    assert_token_error(
        &app.refresh(&refresh_token, None).await,
        400,
        "invalid_grant",
    );
    // Still remembered by the next process (the revocation is durable, not just cached).
    app.restart().await;
    app.sweep().await;
    assert!(
        !app.is_active(&refresh_token).await,
        "forgotten across a restart"
    );
}
