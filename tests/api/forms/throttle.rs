//! Guessing passwords: concurrent wrong passwords never pass the login limit, an unknown
//! user's lockout looks like a known user's, and a full password-check bound answers 503 with
//! `Retry-After`.

use super::*;

#[actix_web::test]
async fn concurrent_wrong_passwords_never_pass_the_limit() {
    // Room for every post at once, so only the throttle decides.
    let app = spawn_app_with(|c| c.password_hash_concurrency = 64).await;
    let page = demo_page(&app).await;
    let wrong = [
        ("username", DEMO_USER),
        ("password", "wrong"),
        ("action", "approve"),
    ];
    let replies = futures_util::future::join_all(
        (0..16).map(|_| post(&app, &page, page.cookie.as_deref(), &wrong, &[])),
    )
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    let checked = statuses.iter().filter(|s| **s == 400).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    // login_max_failures_per_user is 5: five passwords were checked, no more.
    assert_eq!((checked, throttled), (5, 11), "{statuses:?}");
    assert_eq!(
        sample(&scrape(&app).await, "oauth_mcp_login_failures_total"),
        5.0
    );
    let reply = post(&app, &page, page.cookie.as_deref(), APPROVE, &[]).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
}

#[actix_web::test]
async fn an_unknown_users_lockout_looks_like_a_known_users() {
    let app = spawn_app().await;
    let page = demo_page(&app).await;
    let mut lockouts = Vec::new();
    for user in [DEMO_USER, "no-such-user"] {
        for attempt in 1..=5 {
            let fields = [
                ("username", user),
                ("password", "wrong"),
                ("action", "approve"),
            ];
            let reply = post(&app, &page, page.cookie.as_deref(), &fields, &[]).await;
            assert_eq!(
                reply.status, 400,
                "{user} attempt {attempt}: {}",
                reply.body
            );
        }
        let fields = [("username", user), ("password", "x"), ("action", "approve")];
        lockouts.push(post(&app, &page, page.cookie.as_deref(), &fields, &[]).await);
    }
    let [known, unknown] = &lockouts[..] else {
        unreachable!()
    };
    assert_eq!(known.status, 429, "{}", known.body);
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body);
    for name in ["retry-after", "content-type", "cache-control", "set-cookie"] {
        assert_eq!(known.header(name), unknown.header(name), "{name}");
    }
}

#[actix_web::test]
async fn a_full_password_check_bound_answers_503_with_retry_after() {
    let app = spawn_app_with(|c| c.password_hash_concurrency = 1).await;
    let page = demo_page(&app).await;
    let held = app
        .services()
        .password_checks
        .clone()
        .try_acquire_owned()
        .unwrap();
    let reply = post(&app, &page, page.cookie.as_deref(), APPROVE, &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.header("location").is_none());
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    drop(held);
    let reply = post(&app, &page, page.cookie.as_deref(), APPROVE, &[]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
}
