//! What a valid token may do (MCP authorization): tools see the verified caller, a write
//! tool asks for step-up (403 `insufficient_scope`), revoked and expired tokens stop
//! working on the next request, sessions answer only their own principal and are capped per
//! owner, and a token for another resource is refused (RFC 8707 audience).

use super::*;

#[actix_web::test]
async fn tools_see_the_verified_caller() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    let who: Value =
        serde_json::from_str(&tool_text(&mcp.call_tool("whoami", json!({})).await)).unwrap();
    assert_eq!(who["subject"], DEMO_USER);
    assert_eq!(who["client_id"], DEMO_CLIENT_ID);
    assert_eq!(who["scopes"], json!(["mcp:read", "mcp:write"]));
    assert_eq!(
        tool_text(&mcp.call_tool("add", json!({"a": 2, "b": 3.5})).await),
        "5.5"
    );
    assert_eq!(
        tool_text(&mcp.call_tool("echo", json!({"text": "héllo"})).await),
        "héllo"
    );
}

#[actix_web::test]
async fn write_tool_needs_step_up() {
    let app = spawn_app().await;
    let read_only = user_token(&app, "mcp:read").await;
    let mut mcp = Mcp::new(&app, &read_only);
    mcp.initialize("2025-11-25").await;

    // The tool is listed, with its requirement documented.
    let list = rpc_result(&mcp.request("tools/list", json!({})).await.body);
    let sign = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sign_guestbook")
        .cloned()
        .unwrap();
    assert!(sign["description"].as_str().unwrap().contains("mcp:write"));

    let reply = mcp
        .call_tool("sign_guestbook", json!({"message": "hi"}))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let c = challenge(&reply);
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"mcp:read mcp:write\""), "{c}");
    assert!(c.contains("resource_metadata="), "{c}");
    // Reading still works with the read-only token.
    assert_eq!(
        tool_text(&mcp.call_tool("read_guestbook", json!({})).await),
        "the guestbook is empty"
    );

    // After stepping up, the same call succeeds.
    let full = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &full);
    mcp.initialize("2025-11-25").await;
    assert!(tool_text(
        &mcp.call_tool("sign_guestbook", json!({"message": "hi"}))
            .await
    )
    .starts_with("signed"));
    assert_eq!(
        tool_text(&mcp.call_tool("read_guestbook", json!({})).await),
        "demo_user: hi"
    );
}

/// MCP authorization "Scope Challenge Handling" (SEP-2350): the scope of a step-up
/// challenge is what the token has plus what the call needs, so the client asks once and
/// loses nothing; `offline_access` (SEP-2207), kept on the grant, is never named.
#[actix_web::test]
async fn a_step_up_challenge_is_the_union_and_never_names_offline_access() {
    let app = spawn_app_with(|c| {
        c.scopes = vec!["mcp:read".into(), "mcp:write".into(), "profile".into()];
    })
    .await;
    let token = user_token(&app, "mcp:read profile offline_access").await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    let reply = mcp
        .call_tool("sign_guestbook", json!({"message": "hi"}))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let c = challenge(&reply);
    assert!(c.contains("scope=\"mcp:read mcp:write profile\""), "{c}");
    assert!(!c.contains("offline_access"), "{c}");

    // Nor on a 401.
    let anonymous = Mcp::new(&app, "not-a-token");
    let reply = anonymous.request("tools/list", json!({})).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(!challenge(&reply).contains("offline_access"));
}

#[actix_web::test]
async fn a_revoked_token_is_refused_on_the_next_request() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    assert_eq!(mcp.request("tools/list", json!({})).await.status, 200);
    let revoked = app.revoke(&token, None, Some(DEMO_BASIC)).await;
    assert_eq!(revoked.status(), 200);
    let reply = mcp.request("tools/list", json!({})).await;
    assert_eq!(reply.status, 401);
    assert!(challenge(&reply).contains("error=\"invalid_token\""));
}

#[actix_web::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    app.clock.advance(std::time::Duration::from_secs(3601));
    assert_eq!(mcp.request("tools/list", json!({})).await.status, 401);
}

#[actix_web::test]
async fn a_session_answers_only_its_own_principal() {
    let app = spawn_app().await;
    let user = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &user);
    mcp.initialize("2025-11-25").await;
    // Another principal (the client acting for itself) presenting the session id.
    let mut other = Mcp::new(&app, &app.demo_client_token().await);
    other.session = mcp.session.clone();
    let reply = other.request("tools/list", json!({})).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    // The owner is unaffected.
    assert_eq!(mcp.request("tools/list", json!({})).await.status, 200);
}

#[actix_web::test]
async fn sessions_per_owner_are_capped() {
    let app = spawn_app_with(|c| c.mcp_max_sessions_per_owner = 2).await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut first = Mcp::new(&app, &token);
    first.initialize("2025-11-25").await;
    let mut second = Mcp::new(&app, &token);
    second.initialize("2025-11-25").await;
    let mut third = Mcp::new(&app, &token);
    third.initialize("2025-11-25").await;
    // The least recently used session was closed to make room.
    let mut gone = 404;
    for _ in 0..50 {
        gone = first.request("tools/list", json!({})).await.status;
        if gone == 404 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(gone, 404);
    assert_eq!(third.request("tools/list", json!({})).await.status, 200);
}

#[actix_web::test]
async fn a_token_for_another_resource_is_refused() {
    // Same data directory, but the server comes back under another public URL: the old
    // token's audience is no longer this resource.
    let moved = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&moved);
    let mut app = spawn_app_with(move |c| {
        if flag.load(Ordering::SeqCst) {
            c.public_url = Some(Url::parse("http://localhost:1").unwrap());
            c.allowed_hosts = vec!["127.0.0.1".into()];
        }
    })
    .await;
    let token = user_token(&app, ALL_SCOPES).await;
    moved.store(true, Ordering::SeqCst);
    app.restart().await;
    let reply = Reply::read(
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header(header::ACCEPT, ACCEPT_BOTH)
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(challenge(&reply).contains("error=\"invalid_token\""));
}
