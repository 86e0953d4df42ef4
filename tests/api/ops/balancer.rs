//! MCP behind a load balancer, on three instances sharing one PostgreSQL (issue 14, "MCP
//! sessions"): every instance has the balancer's public URL, and every request carries its
//! `Host`, as a balancer forwards it. A stateless 2026-07-28 request works on any instance
//! (its token is checked against the shared database); a session lives in the process that
//! created it, so a request naming a session created on another instance answers 404, and
//! the client's re-initialization on the instance it reached then works (Streamable HTTP
//! "Session Management": a 404 for a session id means start a new session).
//! docs/deployment.md says what a balancer must do.

use reqwest::header;
use serde_json::{json, Value};

use crate::helpers::{rpc_result, str_field, Cluster, Reply, TestApp};

/// The balancer's address: nothing listens there, it only names the public URL.
const BALANCER: &str = "127.0.0.1:9";

/// A POST to `/mcp` of `app` as the balancer would forward it.
async fn post(app: &TestApp, token: &str, session: Option<&str>, body: Value) -> Reply {
    let mut request = app
        .client
        .post(app.url("/mcp"))
        .header(header::HOST, BALANCER)
        .bearer_auth(token)
        .header(header::ACCEPT, "application/json, text/event-stream")
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    Reply::read(request.send().await.expect("POST /mcp")).await
}

/// `initialize` then `notifications/initialized` on `app`: the new session's id.
async fn initialize(app: &TestApp, token: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "api-test", "version": "1"}}});
    let reply = post(app, token, None, body).await;
    assert_eq!(reply.status, 200, "initialize: {}", reply.body);
    let session = reply
        .header("mcp-session-id")
        .expect("a session id")
        .to_owned();
    let notified = post(
        app,
        token,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(notified.status, 202, "{}", notified.body);
    session
}

fn whoami_call(meta: Option<Value>) -> Value {
    let mut params = json!({"name": "whoami", "arguments": {}});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})
}

#[actix_web::test]
async fn a_session_from_another_instance_answers_404_and_reinitializing_there_works() {
    let public_url = format!("http://{BALANCER}");
    let Some(mut cluster) = Cluster::start(module_path!(), 3, &["--public-url", &public_url]).await
    else {
        return;
    };
    // Until the client registry reads through (the change feed), an instance knows the
    // clients that existed when it started: the demo client was seeded by whichever
    // instance came first, so start each again now that it exists.
    for i in 0..3 {
        cluster.kill(i);
        cluster.restart(i);
    }
    let tokens = cluster.app(0).exchange_code_demo().await;
    let token = str_field(&tokens, "access_token");

    // Stateless requests: any instance.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "api-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    for i in 0..3 {
        let app = cluster.app(i);
        let reply = Reply::read(
            app.client
                .post(app.url("/mcp"))
                .header(header::HOST, BALANCER)
                .bearer_auth(&token)
                .header(header::ACCEPT, "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "whoami")
                .json(&whoami_call(Some(meta.clone())))
                .send()
                .await
                .expect("POST /mcp"),
        )
        .await;
        assert_eq!(reply.status, 200, "instance {i}: {}", reply.body);
        assert!(
            reply.body.contains("demo_user"),
            "instance {i}: {}",
            reply.body
        );
    }

    // A session made on instance 0 works there, and is unknown (404) on 1 and 2.
    let session = initialize(cluster.app(0), &token).await;
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}});
    let reply = post(cluster.app(0), &token, Some(&session), list.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for i in [1, 2] {
        let app = cluster.app(i);
        let reply = post(app, &token, Some(&session), list.clone()).await;
        assert_eq!(reply.status, 404, "instance {i}: {}", reply.body);
        let reply = post(app, &token, Some(&session), whoami_call(None)).await;
        assert_eq!(reply.status, 404, "instance {i}: {}", reply.body);

        // The client re-initializes where it landed, and goes on there.
        let again = initialize(app, &token).await;
        assert_ne!(again, session);
        let reply = post(app, &token, Some(&again), whoami_call(None)).await;
        assert_eq!(reply.status, 200, "instance {i}: {}", reply.body);
        let result = rpc_result(&reply.body);
        assert!(result.to_string().contains("demo_user"), "{result}");
    }
    // The first session still works where it lives.
    let reply = post(cluster.app(0), &token, Some(&session), whoami_call(None)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}
