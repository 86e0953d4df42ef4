//! Bounds on registration: body size (413), the per-address rate limit, unused clients
//! removed after their time to live, and a full registry answering 503
//! `temporarily_unavailable`.

use super::*;

#[actix_web::test]
async fn oversized_body_is_rejected_with_413() {
    let app = spawn_app().await;
    let request = json!({
        "redirect_uris": ["https://app.example/cb"],
        "client_name": "x".repeat(70 * 1024),
    });

    let reply = register(&app, &request).await;

    assert_eq!(reply.status, 413, "{}", reply.body);
}

#[actix_web::test]
async fn registration_is_rate_limited_per_address() {
    let app = spawn_app_with(|config| config.registrations_per_hour = 2).await;
    let request = json!({ "redirect_uris": ["https://app.example/cb"] });

    assert_eq!(register(&app, &request).await.status, 201);
    assert_eq!(register(&app, &request).await.status, 201);
    let third = register(&app, &request).await;

    assert_eq!(third.status, 429, "{}", third.body);
}

#[actix_web::test]
async fn a_registered_client_never_issued_a_token_is_removed_after_the_ttl() {
    let app = spawn_app_with(|c| c.unused_client_ttl = Duration::from_secs(3600)).await;
    let redirect = "http://127.0.0.1:3000/cb";
    // Different metadata: an identical repeat would answer the same client.
    let unused_redirect = "http://127.0.0.1:3001/cb";
    let unused = app.register_public(&[unused_redirect]).await;
    let used = app.register_public(&[redirect]).await;
    let (code, verifier) = app.obtain_code_for(&used, redirect, ALL_SCOPES).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", used.as_str()),
        ("redirect_uri", redirect),
    ];
    let reply = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refresh_token = str_field(&reply.json(), "refresh_token");

    // Within the TTL nothing goes; a sweep after it removes only the client never used.
    app.clock.advance(Duration::from_secs(3599));
    assert_eq!(app.sweep_clients().await, 0);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.sweep_clients().await, 1);
    assert_eq!(app.sweep_clients().await, 0);
    let (_, challenge) = pkce_pair();
    let reply = Reply::read(
        app.get_authorize(&public_params(&unused, unused_redirect, &challenge))
            .await,
    )
    .await;
    assert_error_page(&reply);
    assert!(reply.body.contains("unknown client_id"), "{}", reply.body);
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", used.as_str()),
    ];
    let refreshed = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    // The mark survives a restart; the removal too.
    let mut app = app;
    app.restart().await;
    app.clock.advance(Duration::from_secs(10 * 3600));
    assert_eq!(app.sweep_clients().await, 0);
    let reply = Reply::read(
        app.get_authorize(&public_params(&used, redirect, &challenge))
            .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn a_full_registry_answers_503_temporarily_unavailable() {
    let app = spawn_app_with(|c| {
        c.max_registered_clients = 2;
        c.unused_client_ttl = Duration::from_secs(60);
    })
    .await;
    let request = json!({ "redirect_uris": ["https://app.example/cb"] });
    assert_eq!(register(&app, &request).await.status, 201);
    assert_eq!(register(&app, &request).await.status, 201);
    let full = register(&app, &request).await;
    assert_oauth_error(&full, 503, "temporarily_unavailable");
    // The demo client (added by the operator) does not count, and room is made again as
    // unused registrations expire.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.sweep_clients().await, 2);
    assert_eq!(register(&app, &request).await.status, 201);
}
