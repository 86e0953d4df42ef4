//! An embedding host's scopes fail closed (issue 11, item 1): a host's tool, resource and
//! prompt scopes hold whatever the request body looks like, and the `Scoped` dispatch
//! backstop refuses what the guard would have.

use std::{net::TcpListener, sync::Arc};

use actix_web::{App, HttpServer};
use oauth_mcp::{
    clock::SystemClock,
    domain::scope::Scopes,
    mcp::{Caller, McpEndpoint, Scoped, ToolScopes},
    rmcp::{
        self,
        model::{
            CallToolRequestParams, CallToolResponse, CallToolResult, ClientNotification,
            ClientRequest, ContentBlock, GetPromptRequestParams, GetPromptResponse,
            GetPromptResult, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
            ReadResourceResult, ResourceContents, Role, ServerCapabilities, ServerConfig,
            ServerResult,
        },
        service::{NotificationContext, RequestContext, ServiceRole},
        ErrorData, RoleServer, ServerHandler, Service,
    },
    Config, Services,
};
use reqwest::header;
use serde_json::json;
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
