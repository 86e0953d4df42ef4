//! The guard's fast path: an authenticated request asks neither the token ledger nor the
//! session actor once the token has been validated (the validated token is remembered, the
//! session table is read without a message), and yet any revocation answered before a
//! request starts refuses that request: a revoked access token, a grant revoked through its
//! refresh token, and a grant revoked by refresh-token reuse.

use super::*;

/// The access and refresh token of one grant of demo_user.
async fn user_pair(app: &TestApp) -> (String, String) {
    let (code, verifier) = app
        .obtain_code_for(DEMO_CLIENT_ID, DEMO_REDIRECT_URI, ALL_SCOPES)
        .await;
    let reply = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    (
        str_field(&tokens, "access_token"),
        str_field(&tokens, "refresh_token"),
    )
}

fn waits(text: &str, actor: &str) -> f64 {
    sample(
        text,
        &format!("oauth_mcp_actor_wait_seconds_count{{actor=\"{actor}\"}}"),
    )
}

#[actix_web::test]
async fn a_validated_token_in_its_own_session_asks_no_actor() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    let before = scrape(&app).await;
    for _ in 0..5 {
        assert_eq!(
            tool_text(&mcp.call_tool("add", json!({"a": 1, "b": 2})).await),
            "3"
        );
    }
    let after = scrape(&app).await;
    assert_eq!(
        waits(&after, "token_ledger"),
        waits(&before, "token_ledger")
    );
    // The one session question between the two scrapes is the second scrape's own count.
    assert!(waits(&after, "mcp_sessions") - waits(&before, "mcp_sessions") <= 1.0);
}

#[actix_web::test]
async fn a_grant_revoked_through_its_refresh_token_stops_its_access_token_on_the_next_request() {
    let app = spawn_app().await;
    let (access, refresh) = user_pair(&app).await;
    let mut mcp = Mcp::new(&app, &access);
    mcp.initialize("2025-11-25").await;
    let other = user_token(&app, ALL_SCOPES).await;
    let mut unaffected = Mcp::new(&app, &other);
    unaffected.initialize("2025-11-25").await;
    for _ in 0..3 {
        assert_eq!(
            mcp.call_tool("add", json!({"a": 1, "b": 2})).await.status,
            200
        );
    }
    let revoked = app.revoke(&refresh, None, Some(DEMO_BASIC)).await;
    assert_eq!(revoked.status(), 200);
    let reply = mcp.call_tool("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(challenge(&reply).contains("error=\"invalid_token\""));
    // Another grant's token is asked about again and still works.
    assert_eq!(
        tool_text(&unaffected.call_tool("add", json!({"a": 1, "b": 2})).await),
        "3"
    );
}

#[actix_web::test]
async fn a_grant_revoked_by_refresh_token_reuse_stops_its_access_token_on_the_next_request() {
    let app = spawn_app().await;
    let (access, refresh) = user_pair(&app).await;
    let mut mcp = Mcp::new(&app, &access);
    mcp.initialize("2025-11-25").await;
    assert_eq!(
        mcp.call_tool("add", json!({"a": 1, "b": 2})).await.status,
        200
    );
    assert_eq!(app.refresh(&refresh, None).await.status, 200);
    // Past the grace window, the rotated token presented again revokes the grant.
    app.clock.advance(std::time::Duration::from_secs(11));
    assert_eq!(
        mcp.call_tool("add", json!({"a": 1, "b": 2})).await.status,
        200
    );
    assert_eq!(app.refresh(&refresh, None).await.status, 400);
    let reply = mcp.call_tool("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
}
