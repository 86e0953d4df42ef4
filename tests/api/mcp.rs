//! The MCP endpoint over real HTTP: the 401 challenge and discovery documents, step-up,
//! audience and revocation checks, session binding and lifecycle, transport status codes,
//! DNS-rebinding defence, every protocol version's handshake, and an end-to-end client run
//! (discovery → registration → login page → PKCE → tool calls).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use reqwest::{header, RequestBuilder};
use serde_json::{json, Value};
use url::Url;

use crate::helpers::*;

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A token for demo_user through the real code flow, with `scope`.
async fn user_token(app: &TestApp, scope: &str) -> String {
    let (code, verifier) = app
        .obtain_code_for(DEMO_CLIENT_ID, DEMO_REDIRECT_URI, scope)
        .await;
    let reply = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    str_field(&reply.json(), "access_token")
}

/// A client_credentials token of demo_client (no user).
async fn client_token(app: &TestApp) -> String {
    let reply = Reply::read(
        app.token_request(&[("grant_type", "client_credentials")], Some(DEMO_BASIC))
            .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    str_field(&reply.json(), "access_token")
}

fn initialize_body(version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "api-test", "version": "1.0"}}
    })
}

/// A small MCP client speaking raw Streamable HTTP.
struct Mcp<'a> {
    app: &'a TestApp,
    token: String,
    session: Option<String>,
    version: String,
}

impl<'a> Mcp<'a> {
    fn new(app: &'a TestApp, token: &str) -> Self {
        Self {
            app,
            token: token.to_owned(),
            session: None,
            version: "2025-11-25".into(),
        }
    }

    fn post(&self) -> RequestBuilder {
        let mut req = self
            .app
            .client
            .post(self.app.url("/mcp"))
            .bearer_auth(&self.token)
            .header(header::ACCEPT, ACCEPT_BOTH)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", &self.version);
        }
        req
    }

    async fn initialize(&mut self, version: &str) -> Value {
        let reply = Reply::read(
            self.post()
                .json(&initialize_body(version))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200, "initialize: {}", reply.body);
        let session = reply
            .header("mcp-session-id")
            .expect("a session id")
            .to_owned();
        assert!(
            session.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII session id"
        );
        self.session = Some(session);
        self.version = version.to_owned();
        let notified = self
            .post()
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            notified.status(),
            202,
            "notifications are accepted with 202"
        );
        rpc_result(&reply.body)
    }

    async fn request(&self, method: &str, params: Value) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": params});
        Reply::read(self.post().json(&body).send().await.unwrap()).await
    }

    async fn call_tool(&self, name: &str, arguments: Value) -> Reply {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }
}

fn tool_text(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "tool call: {}", reply.body);
    let msg = rpc_result(&reply.body);
    msg["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {msg}"))
        .to_owned()
}

fn challenge(reply: &Reply) -> String {
    reply
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on {}: {}", reply.status, reply.body))
        .to_owned()
}

#[actix_web::test]
async fn requests_without_a_token_get_a_discoverable_challenge() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let reply = Reply::read(
            app.client
                .request(method.clone(), app.url("/mcp"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 401, "{method}");
        let c = challenge(&reply);
        assert!(c.starts_with("Bearer "), "{c}");
        let prm = format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            app.address
        );
        assert!(c.contains(&prm), "{c}");
        assert!(c.contains("scope=\"mcp:read\""), "{c}");
        assert!(
            !c.contains("error="),
            "no error code without a token (RFC 6750 §3.1): {c}"
        );
    }
}

#[actix_web::test]
async fn a_bad_or_misplaced_token_is_invalid_token() {
    let app = spawn_app().await;
    let reply = Reply::read(
        app.client
            .post(app.url("/mcp"))
            .bearer_auth("not-a-token")
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
    let c = challenge(&reply);
    assert!(c.contains("error=\"invalid_token\""), "{c}");
    assert!(c.contains("resource_metadata="), "{c}");
    assert_eq!(reply.json()["error"], "invalid_token");

    // A token in the query string is never accepted.
    let token = user_token(&app, ALL_SCOPES).await;
    let reply = Reply::read(
        app.client
            .post(format!("{}?access_token={token}", app.url("/mcp")))
            .header(header::ACCEPT, ACCEPT_BOTH)
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(!challenge(&reply).contains("error="));

    // A refresh token is not an access token.
    let tokens = app.exchange_code_demo().await;
    let reply = Reply::read(
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(str_field(&tokens, "refresh_token"))
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
}

#[actix_web::test]
async fn protected_resource_metadata_points_to_the_authorization_server() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let reply = Reply::read(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(reply.status, 200, "{path}");
        let doc = reply.json();
        assert_eq!(doc["resource"], format!("{}/mcp", app.address));
        assert_eq!(doc["authorization_servers"], json!([app.address]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:read", "mcp:write"]));
    }
    // The resource is the URL exactly as the client reached it.
    let reply = Reply::read(
        app.client
            .get(app.url("/.well-known/oauth-protected-resource/mcp"))
            .header(header::HOST, format!("localhost:{}", app.port))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply.json()["resource"],
        format!("http://localhost:{}/mcp", app.port)
    );
    assert_eq!(
        reply.json()["authorization_servers"],
        json!([format!("http://localhost:{}", app.port)])
    );
}

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
async fn browser_clients_can_preflight_and_read_the_challenge() {
    let app = spawn_app().await;
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/mcp"))
        .header(header::ORIGIN, "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // The 401 carries CORS headers too, or a browser client could not read the challenge.
    let r = app
        .client
        .post(app.url("/mcp"))
        .header(header::ORIGIN, "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("access-control-allow-origin"));
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("www-authenticate"));
}

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
    let mut other = Mcp::new(&app, &client_token(&app).await);
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

/// What a real MCP client does, step by step, from nothing but the MCP URL.
#[actix_web::test]
async fn end_to_end_discovery_registration_login_and_tool_calls() {
    let app = spawn_app().await;
    let mcp_url = app.url("/mcp");

    // 1. The unauthenticated request points to the protected-resource metadata.
    let reply = Reply::read(
        app.client
            .post(&mcp_url)
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
    let c = challenge(&reply);
    let prm_url = c
        .split("resource_metadata=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    // 2. Protected-resource metadata → authorization server metadata.
    let prm = app.get_json(&prm_url).await;
    assert_eq!(prm["resource"], mcp_url);
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    let asm = app
        .get_json(&format!("{issuer}/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(asm["issuer"], issuer);
    assert!(asm["code_challenge_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("S256")));

    // 3. Dynamic registration of a public client with a loopback redirect.
    let redirect = "http://127.0.0.1:9999/callback";
    let registered: Value = app
        .client
        .post(asm["registration_endpoint"].as_str().unwrap())
        .json(&json!({"client_name": "E2E Agent", "redirect_uris": [redirect], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = str_field(&registered, "client_id");

    // 4. Login and consent through the HTML page, PKCE S256, resource indicator; the
    //    redirect may use another loopback port than the registered one.
    let (verifier, challenge_value) = pkce_pair();
    let callback = "http://127.0.0.1:45123/callback";
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", callback),
        ("code_challenge", challenge_value.as_str()),
        ("code_challenge_method", "S256"),
        ("scope", "mcp:read"),
        ("state", "e2e"),
        ("resource", mcp_url.as_str()),
    ];
    let approved = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let query = approved.location_query();
    assert_eq!(query["iss"], issuer);
    assert_eq!(query["state"], "e2e");

    // 5. Code exchange as a public client.
    let tokens = Reply::read(
        app.client
            .post(asm["token_endpoint"].as_str().unwrap())
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", query["code"].as_str()),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", callback),
                ("resource", mcp_url.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let access = str_field(&tokens.json(), "access_token");

    // 6. MCP session and tool calls with the token.
    let mut mcp = Mcp::new(&app, &access);
    mcp.initialize("2025-06-18").await;
    assert_eq!(
        tool_text(&mcp.call_tool("add", json!({"a": 20, "b": 22})).await),
        "42"
    );
    let who: Value =
        serde_json::from_str(&tool_text(&mcp.call_tool("whoami", json!({})).await)).unwrap();
    assert_eq!(who["client_id"], client_id);
    assert_eq!(who["subject"], DEMO_USER);

    // 7. Stepping up is needed for the write tool.
    assert_eq!(
        mcp.call_tool("sign_guestbook", json!({"message": "x"}))
            .await
            .status,
        403
    );

    // Resources and prompts are there too.
    let res = rpc_result(
        &mcp.request("resources/read", json!({"uri": "oauth-mcp://server/info"}))
            .await
            .body,
    );
    assert!(res["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("oauth-mcp"));
    let prompt = rpc_result(
        &mcp.request(
            "prompts/get",
            json!({"name": "greet", "arguments": {"name": "Ada"}}),
        )
        .await
        .body,
    );
    assert!(prompt["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .contains("Ada"));
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

// ----- Round 2: fail-closed authorization (issue 11, item 1) ------------------------------

impl Mcp<'_> {
    /// Posts `body` as is (raw bytes, so duplicate keys and broken JSON reach the server).
    async fn raw(&self, body: &str) -> Reply {
        Reply::read(self.post().body(body.to_owned()).send().await.unwrap()).await
    }
}

/// The guestbook as a full-scope reader sees it.
async fn guestbook(app: &TestApp) -> String {
    let full = user_token(app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(app, &full);
    mcp.initialize("2025-11-25").await;
    tool_text(&mcp.call_tool("read_guestbook", json!({})).await)
}

/// The original exploit: one member of an unexpected type in `params` made the guard's own
/// parse fail, the guard then checked no tool scope, and rmcp (which ignores unknown
/// members) ran the write tool for a read-only token.
#[actix_web::test]
async fn an_odd_member_in_params_does_not_skip_the_tool_scope_check() {
    let app = spawn_app().await;
    let read_only = user_token(&app, "mcp:read").await;
    let mut mcp = Mcp::new(&app, &read_only);
    mcp.initialize("2025-11-25").await;
    let reply = mcp
        .request(
            "tools/call",
            json!({"name": "sign_guestbook", "arguments": {"message": "pwned"}, "protocolVersion": 1}),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(challenge(&reply).contains("scope=\"mcp:read mcp:write\""));
    assert_eq!(guestbook(&app).await, "the guestbook is empty");
}

/// Variants of one JSON-RPC request naming `target` in `params[field]` (`method` is
/// `tools/call`, `resources/read` or `prompts/get`; `rest` holds the other params members,
/// e.g. `"arguments":{..}`), each with the status a token lacking the target's scope must
/// get: 403 (step-up challenge) for every variant the guard can read, whatever the odd
/// members, and 400 for those it must not guess about. Raw text, so duplicate keys reach
/// the server as written.
pub(crate) fn odd_requests(
    method: &str,
    field: &str,
    target: &str,
    rest: &str,
) -> Vec<(&'static str, String, u16)> {
    let other = if field == "uri" { "name" } else { "uri" };
    let escaped_method = method.replace('/', "\\/");
    let escaped_target = {
        let mut chars = target.chars();
        let first = chars.next().unwrap();
        format!("\\u{:04x}{}", first as u32, chars.as_str())
    };
    let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let msg = |method: &str, params: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":2,"method":"{method}","params":{params}}}"#)
    };
    let params = |extra: &str| format!(r#"{{"{field}":"{target}",{rest}{extra}}}"#);
    let plain = msg(method, &params(""));
    vec![
        ("plain", plain.clone(), 403),
        (
            "odd member types in params",
            msg(
                method,
                &params(&format!(
                    r#","protocolVersion":1,"clientInfo":"x","{other}":7,"x":{{"y":[true,{{}}]}}"#
                )),
            ),
            403,
        ),
        (
            "nulls",
            msg(method, &params(r#","_meta":null,"z":null"#)).replacen("{", r#"{"extra":null,"#, 1),
            403,
        ),
        (
            "odd top-level members",
            plain.replacen(
                "{",
                r#"{"extra":[1,{"method":"ping","params":{"name":"add"}}],"#,
                1,
            ),
            403,
        ),
        (
            "params before method",
            format!(
                r#"{{"params":{},"id":2,"method":"{method}","jsonrpc":"2.0"}}"#,
                params("")
            ),
            403,
        ),
        (
            "escapes",
            msg(&escaped_method, &params("")).replacen(target, &escaped_target, 1),
            403,
        ),
        (
            "deep but bounded nesting",
            msg(method, &params(&format!(r#","deep":{}"#, nest(100)))),
            403,
        ),
        (
            "nesting too deep",
            msg(method, &params(&format!(r#","deep":{}"#, nest(300)))),
            400,
        ),
        (
            "duplicate target",
            msg(
                method,
                &format!(r#"{{"{field}":"harmless","{field}":"{target}",{rest}}}"#),
            ),
            400,
        ),
        (
            "duplicate method",
            plain.replacen("{", r#"{"method":"tools/list","#, 1),
            400,
        ),
        (
            "duplicate params",
            format!(r#"{},"params":{{}}}}"#, plain.strip_suffix('}').unwrap()),
            400,
        ),
        (
            "duplicate key deep inside",
            msg(method, &params(r#","x":{"a":[{"k":1,"k":2}]}"#)),
            400,
        ),
        (
            "null target",
            msg(method, &format!(r#"{{"{field}":null,{rest}}}"#)),
            400,
        ),
        (
            "target of another type",
            msg(method, &format!(r#"{{"{field}":["{target}"],{rest}}}"#)),
            400,
        ),
        ("null params", msg(method, "null"), 400),
        (
            "method of another type",
            plain.replacen(&format!(r#""{method}""#), &format!(r#"["{method}"]"#), 1),
            400,
        ),
        ("batch", format!("[{plain}]"), 400),
        ("truncated", plain[..plain.len() - 1].to_owned(), 400),
        ("trailing data", format!("{plain} {{}}"), 400),
    ]
}

#[actix_web::test]
async fn odd_tools_call_bodies_do_not_change_the_authorization_outcome() {
    let app = spawn_app().await;
    let read_only = user_token(&app, "mcp:read").await;
    let mut mcp = Mcp::new(&app, &read_only);
    mcp.initialize("2025-11-25").await;
    let cases = odd_requests(
        "tools/call",
        "name",
        "sign_guestbook",
        r#""arguments":{"message":"pwned"}"#,
    );
    for (what, body, status) in &cases {
        let reply = mcp.raw(body).await;
        assert_eq!(reply.status, *status, "{what}: {body} -> {}", reply.body);
        if *status == 403 {
            assert!(
                challenge(&reply).contains("scope=\"mcp:read mcp:write\""),
                "{what}"
            );
        } else {
            assert_eq!(reply.json()["error"]["code"], -32600, "{what}");
        }
    }
    assert_eq!(guestbook(&app).await, "the guestbook is empty");

    // The same readable variants run the tool for a token that has the scope.
    let full = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &full);
    mcp.initialize("2025-11-25").await;
    let mut signed = 0;
    for (what, body, status) in &cases {
        let reply = mcp.raw(body).await;
        if *status == 403 {
            assert!(tool_text(&reply).starts_with("signed"), "{what}");
            signed += 1;
        } else {
            assert_eq!(reply.status, 400, "{what}");
        }
    }
    assert_eq!(guestbook(&app).await.lines().count(), signed);
}

/// `initialize` bodies rmcp accepts but whose odd members broke the guard's old parse (the
/// session was then left without an owner, served to anyone and outside the per-owner cap).
const ODD_INITIALIZE_PARAMS: &[&str] = &[
    r#""name":5"#,
    r#""uri":[],"clientInfo":{"name":"api-test","version":"1.0","extra":null}"#,
    r#""_meta":{"x":[1,{"y":null}]},"extra":{"protocolVersion":7}"#,
];

fn odd_initialize(extra: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","odd":[null],"params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"api-test","version":"1.0"}},{extra}}}}}"#
    )
    .replace(r#""clientInfo":{"name":"api-test","version":"1.0"},"uri""#, r#""uri""#)
}

#[actix_web::test]
async fn a_session_made_by_an_odd_initialize_belongs_to_its_creator() {
    let app = spawn_app().await;
    let user = user_token(&app, ALL_SCOPES).await;
    let client = client_token(&app).await;
    for extra in ODD_INITIALIZE_PARAMS {
        let creator = Mcp::new(&app, &user);
        let reply = creator.raw(&odd_initialize(extra)).await;
        assert_eq!(reply.status, 200, "{extra}: {}", reply.body);
        let session = reply.header("mcp-session-id").unwrap().to_owned();
        let mut creator = creator;
        creator.session = Some(session.clone());
        assert_eq!(
            creator.request("tools/list", json!({})).await.status,
            200,
            "{extra}"
        );
        let mut other = Mcp::new(&app, &client);
        other.session = Some(session);
        let reply = other.request("tools/list", json!({})).await;
        assert_eq!(reply.status, 404, "{extra}: {}", reply.body);
        let reply = other.call_tool("whoami", json!({})).await;
        assert_eq!(reply.status, 404, "{extra}: {}", reply.body);
    }
    // Initialize bodies the guard cannot read create no session at all.
    let plain = initialize_body("2025-11-25").to_string();
    for body in [
        plain.replacen("{", r#"{"method":"ping","#, 1),
        plain.replacen(
            r#""params":{"#,
            r#""params":{"protocolVersion":"2025-03-26","#,
            1,
        ),
        format!("[{plain}]"),
    ] {
        let reply = Mcp::new(&app, &user).raw(&body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.header("mcp-session-id").is_none(), "{body}");
    }
}

#[actix_web::test]
async fn the_global_session_cap_refuses_new_sessions_and_keeps_existing_ones() {
    let app = spawn_app_with(|c| c.mcp_max_sessions = 2).await;
    let user = user_token(&app, ALL_SCOPES).await;
    let client = client_token(&app).await;
    let mut first = Mcp::new(&app, &user);
    first.initialize("2025-11-25").await;
    let mut second = Mcp::new(&app, &user);
    second.initialize("2025-11-25").await;
    // Full: someone else's burst is refused with 503 and Retry-After, as is the owner's.
    for token in [&client, &client, &user] {
        let reply = Mcp::new(&app, token)
            .raw(&initialize_body("2025-11-25").to_string())
            .await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(reply.header("mcp-session-id").is_none());
        assert!(reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many MCP sessions"));
    }
    // ... and nobody's session was evicted.
    assert_eq!(first.request("tools/list", json!({})).await.status, 200);
    assert_eq!(second.request("tools/list", json!({})).await.status, 200);
    // A session that ends makes room.
    let deleted = app
        .client
        .delete(app.url("/mcp"))
        .bearer_auth(&user)
        .header("mcp-session-id", first.session.as_deref().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    Mcp::new(&app, &client).initialize("2025-11-25").await;
    assert_eq!(second.request("tools/list", json!({})).await.status, 200);
}

#[actix_web::test]
async fn an_owner_at_its_cap_replaces_its_own_session_even_when_the_table_is_full() {
    let app = spawn_app_with(|c| {
        c.mcp_max_sessions = 2;
        c.mcp_max_sessions_per_owner = 1;
    })
    .await;
    let user = user_token(&app, ALL_SCOPES).await;
    let client = client_token(&app).await;
    let mut old = Mcp::new(&app, &user);
    old.initialize("2025-11-25").await;
    let mut others = Mcp::new(&app, &client);
    others.initialize("2025-11-25").await;
    // The table is full, but the user's new session takes the place of its own old one.
    let mut new = Mcp::new(&app, &user);
    new.initialize("2025-11-25").await;
    assert_eq!(old.request("tools/list", json!({})).await.status, 404);
    assert_eq!(new.request("tools/list", json!({})).await.status, 200);
    assert_eq!(others.request("tools/list", json!({})).await.status, 200);
}
