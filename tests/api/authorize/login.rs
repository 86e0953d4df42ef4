//! Signing in on the consent page: the CSRF cookie and field, wrong passwords (no code), and
//! the login throttle (per user, its lockout period, and per address across usernames).

use super::*;

#[actix_web::test]
async fn decision_without_csrf_cookie_is_rejected() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let page = app
        .consent_page(&demo_authorize_params(&challenge, STATE))
        .await;

    let reply = Reply::read(
        app.submit_consent(
            &page,
            None,
            &[
                ("username", DEMO_USER),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
            ],
        )
        .await,
    )
    .await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn decision_with_another_pages_csrf_cookie_is_rejected() {
    // The cookie must match the token embedded in *this* form, not just be present.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);
    let page = app.consent_page(&params).await;
    let other_page = app.consent_page(&params).await;
    assert_ne!(
        page.cookie, other_page.cookie,
        "each page load gets a fresh CSRF cookie"
    );

    let reply = Reply::read(
        app.submit_consent(
            &page,
            other_page.cookie.as_deref(),
            &[
                ("username", DEMO_USER),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
            ],
        )
        .await,
    )
    .await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn wrong_password_shows_an_error_and_issues_no_code() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    for (username, password) in [(DEMO_USER, "not-the-password"), ("nobody", DEMO_PASSWORD)] {
        let reply = Reply::read(
            app.login_and_consent(&params, username, password, true)
                .await,
        )
        .await;

        assert_error_page(&reply);
    }
}

#[actix_web::test]
async fn repeated_wrong_passwords_lock_the_user_out() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    // login_max_failures_per_user defaults to 5.
    for attempt in 1..=5 {
        let reply = Reply::read(
            app.login_and_consent(&params, DEMO_USER, "wrong", true)
                .await,
        )
        .await;
        assert_eq!(reply.status, 400, "attempt {attempt}: {}", reply.body);
    }
    // Locked out: even the right password is refused, without a code.
    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(
        reply.header("retry-after").is_some(),
        "429 without Retry-After"
    );
    assert!(reply.header("location").is_none());
}

#[actix_web::test]
async fn lockout_ends_after_the_lockout_period() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);
    for _ in 0..5 {
        app.login_and_consent(&params, DEMO_USER, "wrong", true)
            .await;
    }

    // login_lockout defaults to 15 minutes; the server reads time from the injected clock.
    app.clock
        .advance(std::time::Duration::from_secs(15 * 60 + 1));
    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(reply.location_query().contains_key("code"));
}

#[actix_web::test]
async fn failures_across_usernames_lock_out_the_address() {
    // Password spraying: many usernames from one address trips the per-address limit.
    let app = spawn_app_with(|config| config.login_max_failures_per_address = 3).await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    for username in ["alice", "bob", "carol"] {
        let reply = Reply::read(
            app.login_and_consent(&params, username, "wrong", true)
                .await,
        )
        .await;
        assert_eq!(reply.status, 400, "{username}: {}", reply.body);
    }
    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.header("retry-after").is_some());
}
