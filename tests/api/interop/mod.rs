//! The clients people use, replayed from the shapes they publish or send (issue 13; the
//! sources are in docs/troubleshooting.md, one section per client): client ID metadata
//! documents served by a local `DocumentHost` (the `client_id` is the local URL, every other
//! field is the client's) and registration bodies as the clients post them. Each test runs
//! the whole flow through [`run_flow`]: `/authorize`, sign-in and consent on the real page,
//! the code exchange, an MCP `tools/call` (`whoami`, which reports the token's scope as
//! the MCP server sees it) and a refresh.
//!
//! One file per client family: `claude` (Claude Code, claude.ai), `chatgpt`, `vscode`,
//! `cursor`, `zed`, and `sdk` (the official SDKs' `offline_access` and scope shapes).

use std::time::Duration;

use reqwest::header;
use serde_json::{json, Value};

use crate::helpers::*;

mod chatgpt;
mod claude;
mod cursor;
mod sdk;
mod vscode;
mod zed;

/// A server that fetches documents from the local document host (plain http, loopback).
async fn document_app() -> TestApp {
    spawn_app_with(|c| {
        c.client_metadata_allow_http = true;
        c.client_metadata_allow_private = true;
        c.client_metadata_timeout = Duration::from_secs(2);
    })
    .await
}

/// Publishes `doc` at `path` with its `client_id` set to the local URL; returns that URL.
fn publish(host: &DocumentHost, path: &str, mut doc: Value) -> String {
    let url = host.url(path);
    doc["client_id"] = json!(url);
    host.route(path, Route::json(&doc));
    url
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// A public client: `client_id` in the form.
    None,
    /// `client_secret_post` with this secret.
    Post(&'a str),
    /// `client_secret_basic` with this secret.
    Basic(&'a str),
}

/// One run of the code flow as a client would make it.
struct Flow<'a> {
    client_id: &'a str,
    auth: Auth<'a>,
    /// The `redirect_uri` sent at `/authorize` and `/token` (a loopback one may carry
    /// another port than the registered one).
    redirect_uri: &'a str,
    /// `scope`, if the client sends one.
    scope: Option<&'a str>,
    /// `resource`, if the client sends one (at `/authorize`, `/token` and the refresh).
    resource: Option<&'a str>,
    /// Extra authorization parameters (`prompt=consent`, say).
    extra: &'a [(&'a str, &'a str)],
}

impl<'a> Flow<'a> {
    fn public(client_id: &'a str, redirect_uri: &'a str) -> Self {
        Flow {
            client_id,
            auth: Auth::None,
            redirect_uri,
            scope: None,
            resource: None,
            extra: &[],
        }
    }
}

/// What a flow produced.
struct FlowOutcome {
    /// The consent page's HTML.
    page: String,
    /// The `Location` the approval sent the browser to.
    location: String,
    /// The code exchange's JSON answer.
    tokens: Value,
    /// `whoami`'s answer at the MCP server.
    whoami: Value,
    /// The refresh's JSON answer.
    refreshed: Value,
}

/// Runs the whole flow and asserts each step succeeds.
async fn run_flow(app: &TestApp, flow: &Flow<'_>) -> FlowOutcome {
    let (verifier, challenge) = pkce_pair();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", flow.client_id),
        ("redirect_uri", flow.redirect_uri),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
    ];
    params.extend(flow.scope.map(|s| ("scope", s)));
    params.extend(flow.resource.map(|r| ("resource", r)));
    params.extend_from_slice(flow.extra);

    // Sign-in and consent on the real page.
    let page = app.consent_page(&params).await;
    assert_eq!(page.reply.status, 200, "consent page: {}", page.reply.body);
    assert!(
        !page.reply.body.contains("<img"),
        "the page loads no image: {}",
        page.reply.body
    );
    let approved = Reply::read(
        app.submit_consent(
            &page,
            page.cookie.as_deref(),
            &[
                ("username", DEMO_USER),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(approved.status, 303, "approval: {}", approved.body);
    let location = approved.location().to_string();
    assert!(
        location.starts_with(&format!("{}?", flow.redirect_uri)),
        "the code goes to the redirect URI exactly: {location}"
    );
    let query = approved.location_query();
    assert_eq!(query["state"], FLOW_STATE);
    assert_eq!(query["iss"], app.issuer());
    let code = query["code"].clone();

    // The code exchange.
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", flow.redirect_uri),
    ];
    form.extend(flow.resource.map(|r| ("resource", r)));
    let tokens = token(app, flow, form).await;
    let access = str_field(&tokens, "access_token");
    let refresh = str_field(&tokens, "refresh_token");

    // An MCP tool call with the token.
    let who = whoami(app, &access).await;
    assert_eq!(who["client_id"], flow.client_id, "{who}");
    assert_eq!(who["subject"], DEMO_USER, "{who}");

    // A refresh.
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    form.extend(flow.resource.map(|r| ("resource", r)));
    let refreshed = token(app, flow, form).await;
    assert_ne!(str_field(&refreshed, "access_token"), access);
    assert_eq!(
        whoami(app, &str_field(&refreshed, "access_token")).await["client_id"],
        flow.client_id
    );

    FlowOutcome {
        page: page.reply.body,
        location,
        tokens,
        whoami: who,
        refreshed,
    }
}

/// `POST /token` authenticated as `flow` says; asserts 200 and returns the JSON.
async fn token(app: &TestApp, flow: &Flow<'_>, mut form: Vec<(&str, &str)>) -> Value {
    let basic = match flow.auth {
        Auth::None => {
            form.push(("client_id", flow.client_id));
            None
        }
        Auth::Post(secret) => {
            form.push(("client_id", flow.client_id));
            form.push(("client_secret", secret));
            None
        }
        Auth::Basic(secret) => Some((flow.client_id, secret)),
    };
    let reply = Reply::read(app.token_request(&form, basic).await).await;
    assert_eq!(reply.status, 200, "{form:?}: {}", reply.body);
    reply.json()
}

/// Opens an MCP session with `token` and calls `whoami`; its JSON answer.
async fn whoami(app: &TestApp, token: &str) -> Value {
    let post = || {
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(token)
            .header(header::ACCEPT, "application/json, text/event-stream")
    };
    let init = Reply::read(app.mcp_initialize(token).await).await;
    assert_eq!(init.status, 200, "initialize: {}", init.body);
    let session = init.header("mcp-session-id").expect("a session").to_owned();
    let with_session = |r: reqwest::RequestBuilder| {
        r.header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
    };
    let notified = with_session(post())
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(notified.status(), 202);
    let call = Reply::read(
        with_session(post())
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": "whoami", "arguments": {}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(call.status, 200, "tools/call: {}", call.body);
    let msg = rpc_result(&call.body);
    let text = msg["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {msg}"));
    serde_json::from_str(text).unwrap()
}

/// The scopes `whoami` reports, as one space-separated string.
fn scopes_seen(whoami: &Value) -> String {
    match &whoami["scopes"] {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s.clone(),
        other => panic!("whoami without scopes: {other}"),
    }
}
