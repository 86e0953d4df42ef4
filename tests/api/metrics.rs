//! `GET /metrics` (Prometheus text format) and request ids.

use crate::helpers::{
    demo_authorize_params, on_postgres, pkce_pair, sample, scrape, spawn_app, spawn_app_with,
    Reply, DEMO_BASIC, DEMO_CLIENT_ID, DEMO_PASSWORD, DEMO_USER,
};

#[actix_web::test]
async fn metrics_count_requests_errors_tokens_and_logins() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    assert_eq!(
        sample(&before, "oauth_mcp_http_requests_total{endpoint=\"token\"}"),
        0.0
    );

    // One client_credentials token, one refused refresh.
    let ok = Reply::read(
        app.token_request(&[("grant_type", "client_credentials")], Some(DEMO_BASIC))
            .await,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let bad = Reply::read(
        app.token_request(
            &[("grant_type", "refresh_token"), ("refresh_token", "nope")],
            Some(DEMO_BASIC),
        )
        .await,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    // One revocation (of the token just issued).
    let token = ok.json()["access_token"].as_str().unwrap().to_owned();
    let revoked = Reply::read(app.revoke(&token, None, Some(DEMO_BASIC)).await).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    // One failed login.
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, "s");
    let retry = app
        .login_and_consent(&params, DEMO_USER, "wrong password", true)
        .await;
    // The form is shown again with an error (a 4xx page).
    assert!(retry.status().is_client_error(), "{}", retry.status());
    // One unauthenticated MCP request.
    let mcp = app
        .client
        .post(app.url("/mcp"))
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(mcp.status(), 401);

    let text = scrape(&app).await;
    for (series, value) in [
        ("oauth_mcp_http_requests_total{endpoint=\"token\"}", 2.0),
        (
            "oauth_mcp_http_errors_total{endpoint=\"token\",status=\"400\",error=\"invalid_grant\"}",
            1.0,
        ),
        (
            "oauth_mcp_http_errors_total{endpoint=\"mcp\",status=\"401\",error=\"invalid_token\"}",
            1.0,
        ),
        ("oauth_mcp_http_requests_total{endpoint=\"mcp\"}", 1.0),
        ("oauth_mcp_http_requests_total{endpoint=\"authorize\"}", 1.0),
        ("oauth_mcp_http_requests_total{endpoint=\"authorize_decision\"}", 1.0),
        (
            "oauth_mcp_http_errors_total{endpoint=\"authorize_decision\",status=\"400\",error=\"\"}",
            1.0,
        ),
        (
            "oauth_mcp_tokens_issued_total{grant_type=\"client_credentials\"}",
            1.0,
        ),
        ("oauth_mcp_login_failures_total", 1.0),
        ("oauth_mcp_token_revocations_total", 1.0),
        ("oauth_mcp_mcp_sessions", 0.0),
        ("oauth_mcp_undecodable_revocations_total", 0.0),
    ] {
        assert_eq!(sample(&text, series), value, "{series} in\n{text}");
    }
    // Every token request asked the registry and the ledger (or failed there), and the
    // flusher ran for the issued token.
    assert!(
        sample(
            &text,
            "oauth_mcp_actor_wait_seconds_count{actor=\"client_registry\"}"
        ) >= 2.0
    );
    assert!(
        sample(
            &text,
            "oauth_mcp_actor_wait_seconds_count{actor=\"token_ledger\"}"
        ) >= 2.0
    );
    if !on_postgres() {
        // sled's flushes (group commit); on PostgreSQL each reply waits for its COMMIT.
        assert!(sample(&text, "oauth_mcp_flush_seconds_count{db=\"sled\"}") >= 1.0);
    }
    // Nothing per user or per client, and no secrets.
    for needle in [DEMO_USER, DEMO_CLIENT_ID, DEMO_PASSWORD, "wrong password"] {
        assert!(!text.contains(needle), "{needle} exposed in\n{text}");
    }
}

#[actix_web::test]
async fn metrics_can_be_turned_off() {
    let app = spawn_app_with(|c| c.metrics = false).await;
    let reply = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(reply.status(), 404);
}

#[actix_web::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let get = |id: Option<&'static str>| {
        let mut request = app
            .client
            .get(app.url("/.well-known/oauth-authorization-server"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let echoed = get(Some("proxy-7f3a.1_b")).await.expect("GET");
    assert_eq!(echoed.headers()["x-request-id"], "proxy-7f3a.1_b");

    // Unsafe or absent ids are replaced by a fresh one.
    for id in [None, Some("two words"), Some("a\"quote")] {
        let res = get(id).await.expect("GET");
        let fresh = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(fresh.len(), 16, "{fresh}");
        assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()), "{fresh}");
    }
    let a = get(None).await.expect("GET").headers()["x-request-id"].clone();
    let b = get(None).await.expect("GET").headers()["x-request-id"].clone();
    assert_ne!(a, b);
}
