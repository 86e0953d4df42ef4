//! Streamable HTTP transport rules (MCP "Transports"): every protocol version's handshake,
//! stateless 2026-07-28 requests, the `MCP-Protocol-Version` header, session status codes
//! (400/404), 406/415/413, the Host/Origin allow-lists (DNS rebinding), and the bound on SSE
//! streams per session.

use super::*;

#[actix_web::test]
async fn every_session_protocol_version_completes_the_handshake() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let mut mcp = Mcp::new(&app, &token);
        let init = mcp.initialize(version).await;
        assert_eq!(init["result"]["protocolVersion"], version);
        assert_eq!(init["result"]["serverInfo"]["name"], "oauth-mcp");
        let list = mcp.request("tools/list", json!({})).await;
        assert_eq!(list.status, 200, "{version}: {}", list.body);
        let names: Vec<String> = rpc_result(&list.body)["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        for expected in ["add", "echo", "read_guestbook", "sign_guestbook", "whoami"] {
            assert!(names.iter().any(|n| n == expected), "{version}: {names:?}");
        }
    }
}

#[actix_web::test]
async fn stateless_2026_07_28_requests_work_without_a_session() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "api-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}, "_meta": meta}});
    let reply = Reply::read(
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header(header::ACCEPT, ACCEPT_BOTH)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        reply.header("mcp-session-id").is_none(),
        "no session on 2026-07-28"
    );
    assert!(tool_text(&reply).contains("demo_user"));
}

#[actix_web::test]
async fn a_stateless_result_is_one_json_body_and_a_session_result_an_event_stream() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "api-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": meta}});
    let reply = Reply::read(
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header(header::ACCEPT, ACCEPT_BOTH)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "add")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        reply.header("content-type")
    );
    let result: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(result["result"]["content"][0]["text"], "3");
    // A session-based call still answers on an event stream.
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    let reply = mcp.call_tool("add", json!({"a": 1, "b": 2})).await;
    assert!(reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream")));
}

#[actix_web::test]
async fn unsupported_protocol_version_header_is_400() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    mcp.version = "1999-01-01".into();
    let reply = mcp.request("tools/list", json!({})).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[actix_web::test]
async fn session_lifecycle_status_codes() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;

    // Missing session id on a non-initialize request.
    let anonymous = Mcp::new(&app, &token);
    assert_eq!(anonymous.request("tools/list", json!({})).await.status, 400);

    // Unknown session id.
    let mut stranger = Mcp::new(&app, &token);
    stranger.session = Some("no-such-session".into());
    assert_eq!(stranger.request("tools/list", json!({})).await.status, 404);

    // GET opens the standalone SSE stream.
    let get = app
        .client
        .get(app.url("/mcp"))
        .bearer_auth(&token)
        .header(header::ACCEPT, "text/event-stream")
        .header("mcp-session-id", mcp.session.as_deref().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert!(get.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(get);

    // DELETE ends the session; afterwards it is unknown.
    let deleted = app
        .client
        .delete(app.url("/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", mcp.session.as_deref().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(mcp.request("tools/list", json!({})).await.status, 404);
}

#[actix_web::test]
async fn transport_refusals_406_415_413() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let post = || app.client.post(app.url("/mcp")).bearer_auth(&token);
    let r = post()
        .header(header::ACCEPT, "text/html")
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    let r = post()
        .header(header::ACCEPT, ACCEPT_BOTH)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(initialize_body("2025-11-25").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(2 * 1024 * 1024)}});
    let r = post()
        .header(header::ACCEPT, ACCEPT_BOTH)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[actix_web::test]
async fn foreign_host_or_origin_is_refused() {
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    // Refused before authentication: no token needed to get the 403.
    let r = app
        .client
        .post(app.url("/mcp"))
        .header(header::HOST, format!("evil.example:{}", app.port))
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header(header::ACCEPT, ACCEPT_BOTH)
        .header(header::ORIGIN, "http://evil.example")
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A loopback origin (a local browser tool) on a loopback server is allowed, and CORS
    // exposes the session id and the challenge.
    let r = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header(header::ACCEPT, ACCEPT_BOTH)
        .header(header::ORIGIN, "http://localhost:6274")
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("mcp-session-id") && exposed.contains("www-authenticate"),
        "{exposed}"
    );
}

#[actix_web::test]
async fn sse_streams_per_session_are_bounded() {
    // One standalone GET stream per session carries notifications; further GETs get idle
    // "shadow" streams, at most 32 (rmcp): opening more closes the oldest, so one session
    // cannot hold an unbounded number of connections open.
    let app = spawn_app().await;
    let token = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &token);
    mcp.initialize("2025-11-25").await;
    let session = mcp.session.clone().unwrap();
    let open = || {
        app.client
            .get(app.url("/mcp"))
            .bearer_auth(&token)
            .header(header::ACCEPT, "text/event-stream")
            .header("mcp-session-id", session.as_str())
            .header("mcp-protocol-version", "2025-11-25")
            .send()
    };
    let primary = open().await.unwrap();
    assert_eq!(primary.status(), 200);
    let mut oldest_shadow = open().await.unwrap();
    assert_eq!(oldest_shadow.status(), 200);
    let mut others = Vec::new();
    for _ in 0..32 {
        let res = open().await.unwrap();
        assert_eq!(res.status(), 200);
        others.push(res);
    }
    // The 33rd shadow stream pushed the oldest one out: its body ends.
    // (Its priming event or keep-alives may come first.)
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(_)) = oldest_shadow.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the oldest shadow stream is still open");
    // ... while the newest stays open.
    let newest = others.last_mut().unwrap();
    let newest_ended = tokio::time::timeout(std::time::Duration::from_millis(800), async {
        while let Ok(Some(_)) = newest.chunk().await {}
    })
    .await;
    assert!(newest_ended.is_err(), "the newest shadow stream ended too");
    drop((primary, others));
}
