//! Client addresses behind proxies: `X-Forwarded-For` / `Forwarded` are ignored from untrusted
//! peers and key the login throttle and the registration limit only from trusted proxies.

use super::*;

/// A wrong-password post for `user` as if forwarded for `client` (`X-Forwarded-For`).
async fn guess_via(app: &TestApp, page: &ConsentPage, user: &str, client: &str) -> u16 {
    let fields = [
        ("username", user),
        ("password", "wrong"),
        ("action", "approve"),
    ];
    post(
        app,
        page,
        page.cookie.as_deref(),
        &fields,
        &[("x-forwarded-for", client)],
    )
    .await
    .status
}

#[actix_web::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(|c| c.login_max_failures_per_address = 2).await;
    let page = demo_page(&app).await;
    assert_eq!(guess_via(&app, &page, "u1", "198.51.100.1").await, 400);
    assert_eq!(guess_via(&app, &page, "u2", "198.51.100.1").await, 400);
    // Another claimed address changes nothing: the peer is locked out.
    assert_eq!(guess_via(&app, &page, "u3", "198.51.100.2").await, 429);
    let forwarded = [("forwarded", "for=198.51.100.3")];
    let fields = [("username", "u4"), ("password", "x"), ("action", "approve")];
    let reply = post(&app, &page, page.cookie.as_deref(), &fields, &forwarded).await;
    assert_eq!(reply.status, 429);
}

#[actix_web::test]
async fn forwarded_for_from_a_trusted_proxy_keys_the_login_throttle() {
    let app = spawn_app_with(|c| {
        c.login_max_failures_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let page = demo_page(&app).await;
    assert_eq!(guess_via(&app, &page, "u1", "198.51.100.1").await, 400);
    // A client-supplied entry left of the proxy's is not believed.
    assert_eq!(
        guess_via(&app, &page, "u2", "203.0.113.9, 198.51.100.1").await,
        400
    );
    assert_eq!(guess_via(&app, &page, "u3", "198.51.100.1").await, 429);
    // Another client behind the same proxy is not locked out.
    assert_eq!(guess_via(&app, &page, "u4", "198.51.100.2").await, 400);
    let reply = post(
        &app,
        &page,
        page.cookie.as_deref(),
        APPROVE,
        &[("forwarded", "for=\"[2001:db8::1]:4711\"")],
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
}

async fn register_via(app: &TestApp, client: &str) -> u16 {
    let body = json!({ "redirect_uris": ["https://app.example/cb"], "client_name": "x" });
    app.client
        .post(app.url("/register"))
        .header("x-forwarded-for", client)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_web::test]
async fn the_registration_limit_uses_the_forwarded_client_only_from_trusted_proxies() {
    let trusted = spawn_app_with(|c| {
        c.registrations_per_hour = 1;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    assert_eq!(register_via(&trusted, "198.51.100.1").await, 201);
    assert_eq!(register_via(&trusted, "198.51.100.1").await, 429);
    assert_eq!(register_via(&trusted, "198.51.100.2").await, 201);

    let untrusted = spawn_app_with(|c| c.registrations_per_hour = 1).await;
    assert_eq!(register_via(&untrusted, "198.51.100.1").await, 201);
    assert_eq!(register_via(&untrusted, "198.51.100.2").await, 429);
}

#[actix_web::test]
async fn ipv6_clients_are_counted_by_their_64() {
    let app = spawn_app_with(|c| {
        c.login_max_failures_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let page = demo_page(&app).await;
    // Two addresses of one /64 (an attacker rotating through its own prefix) share a count.
    assert_eq!(guess_via(&app, &page, "u1", "2001:db8:1:2::1").await, 400);
    assert_eq!(
        guess_via(&app, &page, "u2", "2001:db8:1:2:ffff::9").await,
        400
    );
    assert_eq!(
        guess_via(&app, &page, "u3", "2001:db8:1:2::abcd").await,
        429
    );
    // The neighbouring /64 is someone else.
    assert_eq!(guess_via(&app, &page, "u4", "2001:db8:1:3::1").await, 400);
}
