//! The MCP endpoint: an authenticated `initialize`, and the JSON-RPC answer read from a JSON or
//! SSE (Streamable HTTP) response body.

use reqwest::{header, RequestBuilder, Response};
use serde_json::Value;

use super::{Reply, TestApp};

impl TestApp {
    /// An MCP `initialize` at `/mcp` with `token` as the bearer; the raw response.
    pub async fn mcp_initialize(&self, token: &str) -> Response {
        self.mcp_initialize_request(token)
            .send()
            .await
            .expect("POST /mcp")
    }

    /// The request of [`TestApp::mcp_initialize`], for a caller to add to (a `Host`, say).
    pub fn mcp_initialize_request(&self, token: &str) -> RequestBuilder {
        self.client
            .post(self.url("/mcp"))
            .bearer_auth(token)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "oauth-mcp-tests", "version": "1"}}
            }))
    }

    /// A stateless (2026-07-28: no session, the protocol version and client in `_meta`)
    /// `tools/call` of `tool` without arguments, with `token` as the bearer.
    pub async fn mcp_stateless_call(&self, token: &str, tool: &str) -> Reply {
        let meta = serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "api-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}
        });
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": {}, "_meta": meta}});
        let request = self
            .client
            .post(self.url("/mcp"))
            .bearer_auth(token)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .json(&body)
            .send();
        Reply::read(request.await.expect("POST /mcp")).await
    }
}

/// The JSON-RPC message carrying a result or error in an MCP response body: the body
/// itself when it is JSON, else the first such message among its SSE `data:` lines.
pub fn rpc_result(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in body: {body}"))
}
