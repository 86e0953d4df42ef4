//! A host actix-web application that embeds oauth-mcp: it has its own routes and its own MCP
//! tools, and uses the library for everything OAuth. It starts the library's actors on its
//! own sled database, mounts the authorization server with
//! `oauth_mcp::configure_authorization_server`, and serves its own rmcp `ServerHandler` at
//! `/mcp` through `oauth_mcp::mcp::McpEndpoint`, which adds the bearer protection, the
//! sessions and the protected-resource metadata.
//!
//! ```sh
//! cargo run --example embed_in_host_app -- [--port 8080] [--data-dir DIR]
//! curl http://127.0.0.1:8080/hello               # the host's own route
//! curl -i -X POST http://127.0.0.1:8080/mcp      # 401: /mcp wants a token from our /token
//! ```
//!
//! - The host's data is a small stock list, read by `GET /stock` and by the `stock` tool,
//!   and changed by the `restock` tool, which needs the `mcp:write` scope and records which
//!   user did it (`oauth_mcp::mcp::caller`).
//! - The demo client and user are seeded, so the README's curl walk-through (with
//!   `BASE=http://127.0.0.1:8080`) gets a token for it.
//! - Without `--data-dir` the sled database lives in a temporary directory removed on exit.
//!   SIGINT or SIGTERM stops the app.
//!
//! `tests/api/embed_example.rs` starts this same app through [`start`] and drives it end to
//! end over HTTP.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex, PoisonError},
};

use actix_web::{dev::ServerHandle, web, App, HttpResponse, HttpServer};
use clap::Parser;
use oauth_mcp::{
    clock::SystemClock,
    mcp::{caller, McpEndpoint, ToolScopes},
    rmcp::{
        self,
        handler::server::{router::tool::ToolRouter, wrapper::Parameters},
        model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig},
        schemars,
        service::RequestContext,
        tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler,
    },
    Config, Services,
};
use serde::Deserialize;

/// Any error, with a readable message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The host's own data: stock levels by item, shared by its route and its MCP tools.
#[derive(Debug, Clone)]
pub struct Inventory(Arc<Mutex<BTreeMap<String, u64>>>);

impl Inventory {
    fn new() -> Self {
        let items = [("apples", 12), ("pears", 5)].map(|(item, count)| (item.to_owned(), count));
        Self(Arc::new(Mutex::new(BTreeMap::from(items))))
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add(&self, item: &str, count: u64) -> u64 {
        let mut items = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let level = items.entry(item.to_owned()).or_default();
        *level = level.saturating_add(count);
        *level
    }
}

/// Arguments of `restock`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RestockArgs {
    /// The item to restock.
    pub item: String,
    /// How many to add.
    pub count: u64,
}

/// The host's MCP server: its own tools over its own data. rmcp builds one per session.
#[derive(Clone)]
pub struct HostTools {
    tool_router: ToolRouter<Self>,
    inventory: Inventory,
}

impl std::fmt::Debug for HostTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostTools")
    }
}

#[tool_router]
impl HostTools {
    /// A server over `inventory`.
    pub fn new(inventory: Inventory) -> Self {
        Self {
            tool_router: Self::tool_router(),
            inventory,
        }
    }

    #[tool(description = "The host app's stock levels, as JSON. Requires scope: mcp:read.")]
    async fn stock(&self) -> Result<CallToolResult, ErrorData> {
        let stock = serde_json::to_string(&self.inventory.snapshot())
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(stock)]))
    }

    #[tool(description = "Adds `count` of `item` to the stock. Requires scope: mcp:write.")]
    async fn restock(
        &self,
        Parameters(args): Parameters<RestockArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        // The verified caller of this request, from its access token.
        let who = caller(&ctx)
            .and_then(|c| c.subject)
            .unwrap_or_else(|| "a client".to_owned());
        let level = self.inventory.add(&args.item, args.count);
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "{who} added {} {}: {level} in stock",
            args.count, args.item
        ))]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HostTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("host-app", env!("CARGO_PKG_VERSION")))
            .with_instructions("The host app's stock. restock needs the mcp:write scope.")
    }
}

/// Which scopes each host tool needs beyond the endpoint's base scope (`mcp:read`): a call
/// without them gets `403 insufficient_scope`, so the client can step up, and `McpEndpoint`
/// checks them once more when rmcp dispatches the call (`oauth_mcp::mcp::Scoped`).
/// Resources and prompts are listed the same way, with `require_resource(uri, ..)` and
/// `require_prompt(name, ..)`.
pub fn tool_scopes() -> ToolScopes {
    ToolScopes::new().require("restock", ["mcp:write"])
}

async fn hello() -> HttpResponse {
    HttpResponse::Ok().body("Hello from the host app")
}

async fn stock(inventory: web::Data<Inventory>) -> HttpResponse {
    HttpResponse::Ok().json(inventory.snapshot())
}

/// The running host app.
pub struct HostApp {
    /// `http://127.0.0.1:<port>`, which is also the OAuth issuer.
    pub url: String,
    handle: ServerHandle,
    services: Services,
    db: sled::Db,
}

impl HostApp {
    /// Stops accepting, finishes in-flight requests, stops the actors and flushes the
    /// database, so `data_dir` can be reopened.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.services.shutdown().await;
        let db = self.db;
        let _ = tokio::task::spawn_blocking(move || db.flush()).await;
    }
}

/// Starts the host app on `listener` with its sled database in `data_dir`. Must be awaited
/// inside an actix System (`#[actix_web::main]`, `#[actix_web::test]`).
pub async fn start(listener: TcpListener, data_dir: &Path) -> Result<HostApp, BoxError> {
    let port = listener.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let mut config = Config::default();
    config.public_url = Some(url.parse()?);
    config.data_dir = data_dir.to_owned();
    // Where it really listens: the demo records are seeded only on a loopback-only server.
    config.bind = listener.local_addr()?;
    let db = oauth_mcp::open_db(&config)?;
    // The actors start once, here, outside the HttpServer factory; every worker gets clones
    // of their addresses.
    let services = Services::start(config.settings(port)?, &db, Arc::new(SystemClock)).await?;
    let inventory = Inventory::new();
    let tools_inventory = inventory.clone();
    let endpoint = McpEndpoint::new(
        &services,
        move || HostTools::new(tools_inventory.clone()),
        tool_scopes(),
    );
    let app_services = services.clone();
    let server = HttpServer::new(move || {
        let (services, endpoint) = (app_services.clone(), endpoint.clone());
        App::new()
            .app_data(web::Data::new(inventory.clone()))
            // The host's own routes...
            .route("/hello", web::get().to(hello))
            .route("/stock", web::get().to(stock))
            // ...and ours: /authorize, /token, /register, /revoke, /introspect, the RFC 8414
            // metadata, then /mcp and its RFC 9728 metadata.
            .configure(move |cfg| {
                oauth_mcp::configure_authorization_server(cfg, &services);
                endpoint.configure(cfg);
            })
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(HostApp {
        url,
        handle,
        services,
        db,
    })
}

/// A host actix-web app with its own routes and MCP tools, protected by oauth-mcp.
#[derive(Debug, Parser)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// sled data directory (default: a temporary directory, removed on exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed_in_host_app: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let listener = TcpListener::bind(("127.0.0.1", args.port))?;
    // The temporary directory, if any, lives until the end of `run`.
    let (data_dir, _temp_dir) = match args.data_dir {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("oauth-mcp-host-app-")
                .tempdir()?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let app = start(listener, &data_dir).await?;
    println!("host app: {}", app.url);
    println!("  GET  {}/hello   the host's own route", app.url);
    println!("  GET  {}/stock   the host's own data", app.url);
    println!(
        "  POST {}/mcp     its MCP tools (stock, restock), behind oauth-mcp",
        app.url
    );
    println!(
        "  OAuth: {}/.well-known/oauth-authorization-server",
        app.url
    );
    oauth_mcp::app::shutdown_signal().await;
    app.stop().await;
    Ok(())
}
