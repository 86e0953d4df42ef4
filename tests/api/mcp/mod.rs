//! The MCP endpoint over real HTTP, one file per behaviour: `discovery` (the 401 challenge and
//! the discovery documents), `transport` (protocol versions, status codes, Host/Origin, SSE
//! bounds), `authorization` (caller identity, step-up, revocation and expiry, session binding
//! and caps, audience), `journey` (an end-to-end client run: discovery → registration → login
//! page → PKCE → tool calls), `fail_closed` (odd bodies never change the outcome) and
//! `fast_path` (no actor asked per request, revocation still immediate). This file
//! holds the small raw Streamable HTTP client (`Mcp`) and token helpers they share.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use reqwest::{header, RequestBuilder};
use serde_json::{json, Value};
use url::Url;

use crate::helpers::*;

mod authorization;
mod discovery;
mod fail_closed;
mod fast_path;
mod journey;
mod transport;

pub(crate) use self::fail_closed::odd_requests;

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

impl Mcp<'_> {
    /// Posts `body` as is (raw bytes, so duplicate keys and broken JSON reach the server).
    async fn raw(&self, body: &str) -> Reply {
        Reply::read(self.post().body(body.to_owned()).send().await.unwrap()).await
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

/// The guestbook as a full-scope reader sees it.
async fn guestbook(app: &TestApp) -> String {
    let full = user_token(app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(app, &full);
    mcp.initialize("2025-11-25").await;
    tool_text(&mcp.call_tool("read_guestbook", json!({})).await)
}
