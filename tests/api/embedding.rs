//! Embedding: a host actix-web application starts the actors on its own sled database,
//! mounts the authorization server and an MCP endpoint serving its own rmcp handler, next
//! to its own routes. Its tool sees the verified caller, and its log notifications ride the
//! call's own POST stream.

// Logging is deprecated by SEP-2577 in rmcp 3 but is part of the protocol versions served.
#![allow(deprecated)]

use std::{net::TcpListener, sync::Arc};

use actix_web::{web, App, HttpResponse, HttpServer};
use oauth_mcp::{
    clock::SystemClock,
    mcp::{caller, notify_log, sessions::McpSessions, McpEndpoint, ToolScopes},
    rmcp::{
        self,
        handler::server::{router::tool::ToolRouter, wrapper::Parameters},
        model::{
            CallToolResult, ContentBlock, LoggingLevel, LoggingMessageNotificationParam,
            ServerCapabilities, ServerConfig,
        },
        schemars,
        service::RequestContext,
        tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler,
    },
    Config, Services,
};
use reqwest::header;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, schemars::JsonSchema)]
struct ShoutArgs {
    /// What to shout.
    text: String,
}

#[derive(Clone)]
struct HostTools {
    tool_router: ToolRouter<Self>,
    sessions: actix::Addr<McpSessions>,
}

#[tool_router]
impl HostTools {
    #[tool(description = "Upper-cases text for the caller. Requires scope: mcp:write.")]
    async fn shout(
        &self,
        Parameters(args): Parameters<ShoutArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let param = LoggingMessageNotificationParam::new(LoggingLevel::Info, json!("shouting"));
        notify_log(&ctx, &self.sessions, param)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let who = caller(&ctx).and_then(|c| c.subject).unwrap_or_default();
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "{who}: {}",
            args.text.to_uppercase()
        ))]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HostTools {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .build();
        ServerConfig::new(caps)
    }
}

async fn hello() -> HttpResponse {
    HttpResponse::Ok().body("host app")
}

#[actix_web::test]
async fn a_host_app_mounts_our_routes_and_its_own_tools() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    config.public_url = Some(format!("http://127.0.0.1:{port}").parse().unwrap());
    let db = oauth_mcp::open_db(&config).unwrap();
    let services = Services::start(config.settings(port).unwrap(), &db, Arc::new(SystemClock))
        .await
        .unwrap();
    let sessions = services.sessions.clone();
    let endpoint = McpEndpoint::with_stream_tracking(
        &services,
        move || HostTools {
            tool_router: HostTools::tool_router(),
            sessions: sessions.clone(),
        },
        ToolScopes::new().require("shout", ["mcp:write"]),
    );
    let app_services = services.clone();
    let server = HttpServer::new(move || {
        let (services, endpoint) = (app_services.clone(), endpoint.clone());
        App::new()
            .route("/hello", web::get().to(hello))
            .configure(move |cfg| {
                oauth_mcp::configure_authorization_server(cfg, &services);
                endpoint.configure(cfg);
            })
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // The host's own route, and our protection on /mcp.
    assert_eq!(
        client
            .get(format!("{base}/hello"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "host app"
    );
    assert_eq!(
        client
            .post(format!("{base}/mcp"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // A token from our /token (client_credentials: no user) works on the host's endpoint.
    let tokens: serde_json::Value = client
        .post(format!("{base}/token"))
        .basic_auth("demo_client", Some("demo_secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let post = |body: serde_json::Value, session: Option<&str>| {
        let mut req = client
            .post(format!("{base}/mcp"))
            .bearer_auth(&token)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        req.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Some(&session)
        )
        .await
        .unwrap()
        .status(),
        202
    );
    let call = post(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "shout", "arguments": {"text": "hi"}}}), Some(&session))
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    let body = call.text().await.unwrap();
    // The log notification came on this call's stream, before the result.
    let log_at = body
        .find("notifications/message")
        .unwrap_or_else(|| panic!("no log on the POST stream: {body}"));
    let result_at = body
        .find("\"result\"")
        .unwrap_or_else(|| panic!("no result: {body}"));
    assert!(log_at < result_at, "{body}");
    // client_credentials tokens have no user subject.
    assert!(body.contains(": HI"), "{body}");

    handle.stop(true).await;
    services.shutdown().await;
}

// ----- Round 2: an embedding host's scopes fail closed (issue 11, item 1) -----------------

use oauth_mcp::{
    domain::scope::Scopes,
    mcp::{Caller, Scoped},
    rmcp::{
        model::{
            CallToolRequestParams, CallToolResponse, ClientNotification, ClientRequest,
            GetPromptRequestParams, GetPromptResponse, GetPromptResult, PromptMessage,
            ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
            Role, ServerResult,
        },
        service::{NotificationContext, ServiceRole},
        Service,
    },
};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use crate::mcp::odd_requests;

/// A host handler with a tool, a resource and a prompt that need `mcp:write` (see
/// [`vault_scopes`]) and one of each that needs only the base scope; each answers what it
/// served.
#[derive(Clone, Default)]
struct Vault;

impl ServerHandler for Vault {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .build();
        ServerConfig::new(caps)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = format!("ran {}", request.name);
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let text = format!("read {}", request.uri);
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let text = format!("got {}", request.name);
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())
    }
}

fn vault_scopes() -> ToolScopes {
    ToolScopes::new()
        .require("shout", ["mcp:write"])
        .require_resource("host://secret", ["mcp:write"])
        .require_prompt("confess", ["mcp:write"])
}

/// (method, member naming the target, scoped target, unscoped target, other params, what
/// a served request answers)
const VAULT_REQUESTS: [(&str, &str, &str, &str, &str, &str); 3] = [
    (
        "tools/call",
        "name",
        "shout",
        "hello",
        r#""arguments":{}"#,
        "ran ",
    ),
    (
        "resources/read",
        "uri",
        "host://secret",
        "host://public",
        r#""note":"r""#,
        "read ",
    ),
    (
        "prompts/get",
        "name",
        "confess",
        "greet",
        r#""arguments":{}"#,
        "got ",
    ),
];

/// The host app with [`Vault`] behind our endpoint; answers its base URL.
async fn serve_vault() -> (
    String,
    actix_web::dev::ServerHandle,
    Services,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    config.public_url = Some(format!("http://127.0.0.1:{port}").parse().unwrap());
    let db = oauth_mcp::open_db(&config).unwrap();
    let services = Services::start(config.settings(port).unwrap(), &db, Arc::new(SystemClock))
        .await
        .unwrap();
    let endpoint = McpEndpoint::new(&services, Vault::default, vault_scopes());
    let app_services = services.clone();
    let server = HttpServer::new(move || {
        let (services, endpoint) = (app_services.clone(), endpoint.clone());
        App::new().configure(move |cfg| {
            oauth_mcp::configure_authorization_server(cfg, &services);
            endpoint.configure(cfg);
        })
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}"), handle, services, dir)
}

/// The text a served request answered (tool content, resource contents, prompt message).
fn served_text(body: &str) -> String {
    let msg = crate::helpers::rpc_result(body);
    let result = &msg["result"];
    let text = [
        &result["content"][0]["text"],
        &result["contents"][0]["text"],
        &result["messages"][0]["content"]["text"],
    ]
    .into_iter()
    .find_map(|v| v.as_str())
    .unwrap_or_else(|| panic!("nothing served: {msg}"))
    .to_owned();
    text
}

#[actix_web::test]
async fn a_hosts_tool_resource_and_prompt_scopes_hold_whatever_the_body() {
    let (base, handle, services, _dir) = serve_vault().await;
    let client = reqwest::Client::new();
    let token = |scope: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let tokens: serde_json::Value = client
                .post(format!("{base}/token"))
                .basic_auth("demo_client", Some("demo_secret"))
                .form(&[("grant_type", "client_credentials"), ("scope", scope)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tokens["access_token"].as_str().unwrap().to_owned()
        }
    };
    let session = |token: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let init = client
                .post(format!("{base}/mcp"))
                .bearer_auth(&token)
                .header(header::ACCEPT, "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
                .send()
                .await
                .unwrap();
            assert_eq!(init.status(), 200);
            let id = init.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned();
            (token, id)
        }
    };
    let post = |(token, id): &(String, String), body: String| {
        client
            .post(format!("{base}/mcp"))
            .bearer_auth(token)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json")
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body)
            .send()
    };
    let read_only = session(token("mcp:read").await).await;
    let full = session(token("mcp:read mcp:write").await).await;
    for (method, field, scoped, unscoped, rest, served) in VAULT_REQUESTS {
        for (what, body, status) in odd_requests(method, field, scoped, rest) {
            let reply = post(&read_only, body.clone()).await.unwrap();
            assert_eq!(reply.status(), status, "{method} {what}: {body}");
            if status == 403 {
                let challenge = reply.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
                assert!(challenge.contains("insufficient_scope"), "{challenge}");
                assert!(
                    challenge.contains("scope=\"mcp:read mcp:write\""),
                    "{challenge}"
                );
                let kind = method.split('/').next().unwrap().trim_end_matches('s');
                assert!(
                    challenge.contains(&format!("this {kind} needs")),
                    "{challenge}"
                );
                // With the scope, the same body is served.
                let reply = post(&full, body.clone()).await.unwrap();
                assert_eq!(reply.status(), 200, "{method} {what}");
                let text = served_text(&reply.text().await.unwrap());
                assert_eq!(text, format!("{served}{scoped}"), "{method} {what}");
            }
        }
        // The unscoped target of each kind needs only the base scope.
        let body =
            json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": {field: unscoped}});
        let reply = post(&read_only, body.to_string()).await.unwrap();
        assert_eq!(reply.status(), 200, "{method} {unscoped}");
        let text = served_text(&reply.text().await.unwrap());
        assert_eq!(text, format!("{served}{unscoped}"));
    }
    handle.stop(true).await;
    services.shutdown().await;
}

/// Puts a verified caller where `oauth_mcp::mcp::caller` finds it, as the bearer guard does
/// (or none), in front of a service reached without HTTP: the guard is not there at all.
struct AsCaller<S> {
    inner: S,
    caller: Option<Caller>,
}

impl<S: Service<RoleServer>> Service<RoleServer> for AsCaller<S> {
    async fn handle_request(
        &self,
        request: ClientRequest,
        mut context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        if let Some(caller) = &self.caller {
            let (mut parts, ()) =
                oauth_mcp::rmcp_actix_web::transport::http::Request::new(()).into_parts();
            let mut hooked = rmcp::model::Extensions::new();
            hooked.insert(caller.clone());
            parts.extensions.insert(hooked);
            context.extensions.insert(parts);
        }
        self.inner.handle_request(request, context).await
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.handle_notification(notification, context).await
    }

    fn get_info(&self) -> <RoleServer as ServiceRole>::Info {
        self.inner.get_info()
    }
}

/// Serves `service` over an in-memory pipe (newline-delimited JSON-RPC), performs the
/// handshake, sends each of `requests` and answers the replies.
async fn over_a_pipe(
    service: impl Service<RoleServer>,
    requests: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    actix_web::rt::spawn(async move {
        let running = rmcp::serve_server(service, tokio::io::split(server))
            .await
            .unwrap();
        let _ = running.waiting().await;
    });
    let (read, mut write) = tokio::io::split(client);
    let mut lines = tokio::io::BufReader::new(read).lines();
    let send = |msg: serde_json::Value| format!("{msg}\n");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    write.write_all(send(init).as_bytes()).await.unwrap();
    lines.next_line().await.unwrap().unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    write.write_all(send(initialized).as_bytes()).await.unwrap();
    let mut replies = Vec::new();
    for request in requests {
        write
            .write_all(send(request.clone()).as_bytes())
            .await
            .unwrap();
        let line = lines.next_line().await.unwrap().unwrap();
        replies.push(serde_json::from_str(&line).unwrap());
    }
    replies
}

#[actix_web::test]
async fn the_dispatch_backstop_refuses_what_the_guard_would_have() {
    let requests: Vec<serde_json::Value> = VAULT_REQUESTS
        .iter()
        .enumerate()
        .flat_map(|(i, (method, field, scoped, unscoped, _, _))| {
            [scoped, unscoped].into_iter().enumerate().map(move |(j, target)| {
                json!({"jsonrpc": "2.0", "id": 10 * i + j + 1, "method": method, "params": {*field: target}})
            })
        })
        .collect();
    let caller = |scopes: &str| Caller {
        subject: Some("demo_user".into()),
        client_id: "demo_client".into(),
        scopes: Scopes::from_names(scopes.split(' ')),
    };
    let base = || Scopes::from_names(["mcp:read"]);
    let refused = |reply: &serde_json::Value| reply["error"]["code"] == -32600;

    // A read-only caller gets the unscoped targets only, with a JSON-RPC error naming the
    // scopes to request for the others.
    let service = AsCaller {
        inner: Scoped::new(Vault, vault_scopes(), base()),
        caller: Some(caller("mcp:read")),
    };
    let replies = over_a_pipe(service, &requests).await;
    for (request, reply) in requests.iter().zip(&replies) {
        let scoped = ["shout", "host://secret", "confess"].iter().any(|t| {
            request["params"]
                .as_object()
                .unwrap()
                .values()
                .any(|v| v == t)
        });
        assert_eq!(refused(reply), scoped, "{request} -> {reply}");
        if scoped {
            assert_eq!(reply["error"]["data"]["error"], "insufficient_scope");
            assert_eq!(reply["error"]["data"]["scope"], "mcp:read mcp:write");
        }
    }

    // With the scope, everything is served.
    let service = AsCaller {
        inner: Scoped::new(Vault, vault_scopes(), base()),
        caller: Some(caller("mcp:read mcp:write")),
    };
    let replies = over_a_pipe(service, &requests).await;
    assert!(
        replies.iter().all(|r| r["result"].is_object()),
        "{replies:?}"
    );

    // Without a verified caller, or without the base scope, nothing is.
    for caller in [None, Some(caller("mcp:write"))] {
        let service = AsCaller {
            inner: Scoped::new(Vault, vault_scopes(), base()),
            caller,
        };
        let replies = over_a_pipe(service, &requests).await;
        assert!(replies.iter().all(refused), "{replies:?}");
    }
}
