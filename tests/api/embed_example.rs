//! `examples/embed_in_host_app.rs`, started through its own `start` on port 0 with a
//! temporary sled directory and driven over HTTP: the host's route answers, `/mcp` wants a
//! token, a token from the real login + PKCE flow lists and calls the host's own tools, and
//! the host's per-tool scope is enforced. The example is compiled into this test, so it
//! cannot drift from what is tested.

use std::net::TcpListener;

use reqwest::header;
use serde_json::{json, Value};

use crate::helpers::{attach, rpc_result, str_field, Reply};

#[allow(dead_code, reason = "the example's main and flags are not used here")]
#[path = "../../examples/embed_in_host_app.rs"]
mod host_app;

const ACCEPT_MCP: &str = "application/json, text/event-stream";

/// One MCP POST with `token`, in `session` once there is one.
async fn mcp_post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> Reply {
    let mut request = client
        .post(format!("{url}/mcp"))
        .bearer_auth(token)
        .header(header::ACCEPT, ACCEPT_MCP)
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    Reply::read(request.send().await.unwrap()).await
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

#[actix_web::test]
async fn the_embedding_example_serves_its_own_routes_and_tools_behind_our_oauth() {
    let data_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = host_app::start(listener, data_dir.path()).await.unwrap();
    let url = host.url.clone();
    let app = attach(&url, port);
    let client = &app.client;

    // The host's own route.
    let hello = Reply::read(client.get(format!("{url}/hello")).send().await.unwrap()).await;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.body, "Hello from the host app");

    // Our protection on the host's /mcp: 401 and a challenge that points at the host's own
    // protected-resource metadata, which names the host's issuer.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "embed-test", "version": "1"}}});
    let refused = Reply::read(
        client
            .post(format!("{url}/mcp"))
            .header(header::ACCEPT, ACCEPT_MCP)
            .json(&init)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let challenge = refused.header("www-authenticate").unwrap_or_default();
    let metadata_url = format!("{url}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let metadata = app.get_json(&metadata_url).await;
    assert_eq!(metadata["resource"], format!("{url}/mcp"));
    assert_eq!(metadata["authorization_servers"], json!([url]));

    // A token through the real flow: login and consent form as demo_user, PKCE, code
    // exchange by demo_client, all on the host app's routes.
    let tokens = app.exchange_code_demo().await;
    let access = str_field(&tokens, "access_token");

    let opened = mcp_post(client, &url, &access, None, init.clone()).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened
        .header("mcp-session-id")
        .expect("a session id")
        .to_owned();
    assert_eq!(
        rpc_result(&opened.body)["result"]["serverInfo"]["name"],
        "host-app"
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let notified = mcp_post(client, &url, &access, Some(&session), initialized).await;
    assert_eq!(notified.status, 202, "{}", notified.body);

    // The host's tools, not the demo ones.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let listed = mcp_post(client, &url, &access, Some(&session), list).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let mut names: Vec<String> = rpc_result(&listed.body)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["restock", "stock"]);

    // restock (mcp:write) sees the verified user and changes what the host's route serves.
    let restock = call(3, "restock", json!({"item": "apples", "count": 3}));
    let restocked = mcp_post(client, &url, &access, Some(&session), restock).await;
    assert_eq!(restocked.status, 200, "{}", restocked.body);
    let result = rpc_result(&restocked.body)["result"].clone();
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(
        result["content"][0]["text"],
        "demo_user added 3 apples: 15 in stock"
    );
    let stock = app.get_json(&format!("{url}/stock")).await;
    assert_eq!(stock, json!({"apples": 15, "pears": 5}));
    let read = mcp_post(
        client,
        &url,
        &access,
        Some(&session),
        call(4, "stock", json!({})),
    )
    .await;
    let text = rpc_result(&read.body)["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), stock);

    // The host's per-tool scope: a read-only token may read but not restock (403, step-up).
    let narrowed = app
        .refresh(&str_field(&tokens, "refresh_token"), Some("mcp:read"))
        .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    let read_only = str_field(&narrowed.json(), "access_token");
    let read = mcp_post(
        client,
        &url,
        &read_only,
        Some(&session),
        call(5, "stock", json!({})),
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.body);
    let restock = call(6, "restock", json!({"item": "pears", "count": 1}));
    let forbidden = mcp_post(client, &url, &read_only, Some(&session), restock).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    let challenge = forbidden.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("mcp:write"),
        "{challenge}"
    );

    host.stop().await;
}
