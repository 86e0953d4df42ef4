//! A host actix-web application starts the actors on its own sled database, mounts the
//! authorization server and an MCP endpoint serving its own rmcp handler, next to its own
//! routes. Its tool sees the verified caller, and its log notifications ride the call's own
//! POST stream.

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
