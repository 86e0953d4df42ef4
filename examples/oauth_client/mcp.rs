//! The MCP side: a small Streamable HTTP session (initialize, `tools/list`, `tools/call`)
//! with the access token as the bearer, the answers read from JSON or SSE.

use oauth2::AccessToken;

use reqwest::{header, Client, StatusCode};

use serde_json::{json, Value};

use crate::common::{self, at, indent, pretty, BoxError, ACCEPT_MCP, PROTOCOL_VERSION};

/// A minimal MCP client over Streamable HTTP: JSON-RPC requests in POSTs, answers as JSON or
/// as an SSE stream, the session in `Mcp-Session-Id`.
pub(crate) struct McpSession<'a> {
    pub(crate) http: &'a Client,
    pub(crate) url: &'a str,
    pub(crate) session: Option<String>,
    pub(crate) next_id: u64,
}

impl<'a> McpSession<'a> {
    pub(crate) fn new(http: &'a Client, url: &'a str) -> Self {
        Self {
            http,
            url,
            session: None,
            next_id: 1,
        }
    }

    pub(crate) fn post(&self, token: &AccessToken, body: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url)
            .bearer_auth(token.secret())
            .header(header::ACCEPT, ACCEPT_MCP)
            .json(body);
        if let Some(session) = &self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        request
    }

    /// `initialize`, then the `notifications/initialized` that completes the handshake.
    pub(crate) async fn initialize(&mut self, token: &AccessToken) -> Result<Value, BoxError> {
        let id = self.take_id();
        let reply = self
            .post(
                token,
                &common::initialize_request(id, "oauth_client example"),
            )
            .send()
            .await?;
        self.session = reply
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let result = Self::result(reply, id).await?;
        let notified = self
            .post(
                token,
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .send()
            .await?;
        if notified.status() != StatusCode::ACCEPTED {
            return Err(format!(
                "notifications/initialized answered {}, expected 202",
                notified.status()
            )
            .into());
        }
        Ok(result)
    }

    pub(crate) async fn request(
        &mut self,
        token: &AccessToken,
        method: &str,
        params: Value,
    ) -> Result<Value, BoxError> {
        let id = self.take_id();
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = self.post(token, &body).send().await?;
        Self::result(reply, id)
            .await
            .map_err(|e| format!("{method}: {e}").into())
    }

    /// `tools/call`; the text of the result, or an error if the tool reported one.
    pub(crate) async fn call_tool(
        &mut self,
        token: &AccessToken,
        name: &str,
        arguments: Value,
    ) -> Result<String, BoxError> {
        let result = self
            .request(
                token,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )
            .await?;
        let text: String = at(&result, "/content")
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| at(b, "/text").as_str())
                    .collect()
            })
            .unwrap_or_default();
        if *at(&result, "/isError") == true {
            return Err(format!("the tool reported an error: {text}").into());
        }
        Ok(text)
    }

    /// `DELETE /mcp`: ends the session (MCP Streamable HTTP, "Session Management").
    pub(crate) async fn close(&mut self, token: &AccessToken) -> Result<(), BoxError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let reply = self
            .http
            .delete(self.url)
            .bearer_auth(token.secret())
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .send()
            .await?;
        println!("DELETE /mcp (end the session) -> {}", reply.status());
        if !reply.status().is_success() {
            return Err(format!("DELETE /mcp answered {}", reply.status()).into());
        }
        Ok(())
    }

    /// A fresh `initialize` with `token`; the status and the `WWW-Authenticate` header.
    pub(crate) async fn probe(
        &self,
        token: &AccessToken,
    ) -> Result<(StatusCode, String), BoxError> {
        let reply = self
            .http
            .post(self.url)
            .bearer_auth(token.secret())
            .header(header::ACCEPT, ACCEPT_MCP)
            .json(&common::initialize_request(1, "oauth_client example"))
            .send()
            .await?;
        let challenge = reply
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        Ok((reply.status(), challenge))
    }

    pub(crate) fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The `result` of the JSON-RPC response with `id`, from a JSON body or from the
    /// `data:` lines of an SSE body.
    pub(crate) async fn result(reply: reqwest::Response, id: u64) -> Result<Value, BoxError> {
        let status = reply.status();
        let is_sse = reply
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let body = reply.text().await?;
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}: {body}").into());
        }
        let messages: Vec<Value> = if is_sse {
            // Events are separated by blank lines; an event's data is its `data:` lines.
            body.split("\n\n")
                .map(|event| {
                    event
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .map(|data| data.strip_prefix(' ').unwrap_or(data))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .filter(|data| !data.is_empty())
                .filter_map(|data| serde_json::from_str(&data).ok())
                .collect()
        } else {
            vec![serde_json::from_str(&body)?]
        };
        let response = messages
            .into_iter()
            .find(|m| *at(m, "/id") == id)
            .ok_or_else(|| format!("no JSON-RPC response with id {id} in: {body}"))?;
        if let Some(error) = response.get("error") {
            return Err(format!("JSON-RPC error: {}", pretty(error)).into());
        }
        response.get("result").cloned().ok_or_else(|| {
            format!("a response without result: {}", indent(&pretty(&response))).into()
        })
    }
}
