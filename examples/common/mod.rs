//! Shared by `simple_client` and `oauth_client`: how an MCP client that holds no token finds
//! out where to get one (MCP authorization, "Authorization Server Discovery").
//!
//! 1. An unauthenticated request to the MCP endpoint gets `401` with
//!    `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (RFC 6750 §3, RFC 9728 §5.1).
//! 2. The protected resource metadata (RFC 9728) names the resource and its authorization
//!    servers.
//! 3. The authorization server metadata (RFC 8414) names the endpoints and what they support.
//!
//! Every step is printed, and every property a client must check is checked: a failure is an
//! `Err` with a message saying what was expected.

use std::error::Error;

use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use url::Url;

/// The error type of the examples: any error, with a readable message.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// `Accept` of every MCP POST: the server may answer with JSON or an SSE stream (MCP
/// Streamable HTTP, "Sending Messages to the Server").
pub const ACCEPT_MCP: &str = "application/json, text/event-stream";

/// The protocol revision the examples speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// What discovery found.
#[derive(Debug)]
pub struct Discovery {
    /// The MCP endpoint, which is also the resource identifier (RFC 8707) to ask tokens for.
    pub resource: String,
    /// The `scope` of the 401 challenge, if any: what the MCP client should ask for first.
    pub challenge_scope: Option<String>,
    /// The authorization server's issuer identifier (RFC 8414 §2).
    pub issuer: String,
    /// The whole RFC 8414 document.
    pub metadata: Value,
}

impl Discovery {
    /// A string field of the authorization server metadata.
    pub fn endpoint(&self, name: &str) -> Result<String, BoxError> {
        at(&self.metadata, &format!("/{name}"))
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the authorization server metadata has no {name}").into())
    }
}

/// A JSON-RPC `initialize` request.
pub fn initialize_request(id: u64, client_name: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
        },
    })
}

/// The server's base URL from `--url`: an `http` origin (the examples are built without a
/// TLS stack), without a trailing slash.
pub fn base_url(url: &str) -> Result<String, BoxError> {
    let parsed = Url::parse(url).map_err(|e| format!("--url {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("--url {url}: must be an http or https URL").into());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Runs the three discovery steps against the MCP endpoint `mcp_url`, printing each.
pub async fn discover(http: &Client, mcp_url: &str) -> Result<Discovery, BoxError> {
    // 1. The challenge.
    println!("POST {mcp_url}   (initialize, without a token)");
    let reply = http
        .post(mcp_url)
        .header(header::ACCEPT, ACCEPT_MCP)
        .json(&initialize_request(1, "oauth-mcp-example"))
        .send()
        .await
        .map_err(|e| format!("POST {mcp_url}: {e} (is the server running?)"))?;
    println!("  <- {}", reply.status());
    if reply.status() != StatusCode::UNAUTHORIZED {
        return Err(format!(
            "an MCP request without a token should get 401, got {}",
            reply.status()
        )
        .into());
    }
    let challenge = reply
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .ok_or("the 401 has no WWW-Authenticate header (RFC 6750 §3)")?
        .to_str()
        .map_err(|_| "WWW-Authenticate is not visible ASCII")?
        .to_owned();
    println!("  WWW-Authenticate: {challenge}");
    let params = parse_bearer_challenge(&challenge)?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let metadata_url =
        param("resource_metadata").ok_or("the Bearer challenge has no resource_metadata")?;
    let challenge_scope = param("scope");

    // 2. Protected resource metadata.
    println!();
    println!("GET {metadata_url}   (RFC 9728 protected resource metadata)");
    let resource_metadata = get_json(http, &metadata_url).await?;
    println!("{}", indent(&pretty(&resource_metadata)));
    let resource = at(&resource_metadata, "/resource")
        .as_str()
        .ok_or("the protected resource metadata has no resource")?
        .to_owned();
    // RFC 9728 §3.3: the resource must be the one the client asked about, or an attacker's
    // metadata could send it to another authorization server.
    if resource != mcp_url {
        return Err(format!(
            "the metadata is for resource {resource}, but we asked about {mcp_url} (RFC 9728 §3.3)"
        )
        .into());
    }
    let issuer = at(&resource_metadata, "/authorization_servers")
        .as_array()
        .and_then(|servers| servers.first())
        .and_then(Value::as_str)
        .ok_or("the protected resource metadata lists no authorization_servers")?
        .to_owned();

    // 3. Authorization server metadata.
    let as_metadata_url = authorization_server_metadata_url(&issuer)?;
    println!();
    println!("GET {as_metadata_url}   (RFC 8414 authorization server metadata)");
    let metadata = get_json(http, &as_metadata_url).await?;
    println!("{}", indent(&pretty(&metadata)));
    // RFC 8414 §3.3: the issuer in the document must be the one the URL was built from.
    if at(&metadata, "/issuer").as_str() != Some(issuer.as_str()) {
        return Err(format!(
            "the metadata's issuer {} is not {issuer} (RFC 8414 §3.3)",
            at(&metadata, "/issuer")
        )
        .into());
    }
    // MCP authorization: PKCE is required, and a client must refuse to go on if the server
    // does not advertise S256.
    let s256 = at(&metadata, "/code_challenge_methods_supported")
        .as_array()
        .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
    if !s256 {
        return Err("the authorization server does not advertise PKCE S256".into());
    }
    let discovery = Discovery {
        resource,
        challenge_scope,
        issuer,
        metadata,
    };
    discovery.endpoint("authorization_endpoint")?;
    discovery.endpoint("token_endpoint")?;
    Ok(discovery)
}

/// `<origin>/.well-known/oauth-authorization-server<path>` (RFC 8414 §3.1: the well-known
/// segment goes between the host and the issuer's path).
fn authorization_server_metadata_url(issuer: &str) -> Result<String, BoxError> {
    let url = Url::parse(issuer).map_err(|e| format!("issuer {issuer:?}: {e}"))?;
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-authorization-server{path}",
        url.origin().ascii_serialization()
    ))
}

async fn get_json(http: &Client, url: &str) -> Result<Value, BoxError> {
    let reply = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = reply.status();
    let body = reply.text().await?;
    if status != StatusCode::OK {
        return Err(format!("GET {url} answered {status}: {body}").into());
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e}): {body}").into())
}

/// The auth-params of a `Bearer` challenge (RFC 9110 §11.6.1): `name=token` or
/// `name="quoted string"`, comma-separated.
pub fn parse_bearer_challenge(header: &str) -> Result<Vec<(String, String)>, BoxError> {
    let rest = header
        .trim_start()
        .strip_prefix("Bearer")
        .or_else(|| header.trim_start().strip_prefix("bearer"))
        .ok_or_else(|| format!("not a Bearer challenge: {header}"))?;
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_owned();
        if name.is_empty() {
            return Ok(params);
        }
        if chars.next() != Some('=') {
            return Err(format!("malformed auth-param {name:?} in {header}").into());
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted string in {header}").into()),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
            value = value.trim().to_owned();
        }
        params.push((name, value));
    }
}

/// The member of `value` at the JSON Pointer `pointer` (RFC 6901), or `null`.
pub fn at<'v>(value: &'v Value, pointer: &str) -> &'v Value {
    static NULL: Value = Value::Null;
    value.pointer(pointer).unwrap_or(&NULL)
}

/// `value` as indented JSON.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Every line of `text`, indented for the step it belongs to.
pub fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
