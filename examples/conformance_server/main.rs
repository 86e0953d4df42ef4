//! The official MCP conformance suite's server fixtures (`@modelcontextprotocol/conformance`,
//! `conformance server`), served at `/mcp` by this library: the authorization server, the
//! bearer guard, the session actor and rmcp, exactly as an embedding application would use
//! them. Only the handler below is specific to the suite.
//!
//! ```sh
//! cargo run --example conformance_server -- [--port 3001] [--data-dir DIR]
//! ```
//!
//! - `--port 0` picks a free port. The first line on stdout names the endpoint:
//!   `conformance server: http://127.0.0.1:<port>/mcp (issuer http://127.0.0.1:<port>)`.
//! - The issuer is `http://127.0.0.1:<port>`; the demo client and user are seeded, so a token
//!   comes from the usual authorization-code + PKCE flow (see `.ci/conformance.sh`).
//! - Without `--data-dir` the sled database lives in a temporary directory removed on exit.
//! - SIGINT or SIGTERM stops the server.
//!
//! The fixtures follow the suite's scenario descriptions (0.1.16 and 0.2.0-alpha) and its
//! reference "everything server": 14 tools, 3 resources and a template, 4 prompts, logging and
//! completions. The reference server's dynamic fixtures (`test_dynamic_tool`,
//! `test://dynamic-resource`, `test_dynamic_prompt`), which no scenario exercises, are left
//! out so that every listing is deterministic.
//!
//! Files: `server` (the per-session handler state), `tools`, `prompts` and `handler` (the
//! fixtures, one file per MCP feature), `fixtures` (fixed data and helpers); this file is the
//! process: arguments, the authorization server and the MCP endpoint, shutdown.

// Logging, sampling and `resources/subscribe` are deprecated in rmcp 3 (SEP-2577), but they
// are what the suite tests on the session-based protocol versions.
#![allow(deprecated)]

mod fixtures;
mod handler;
mod prompts;
mod server;
mod tools;

use std::{io::Write as _, net::TcpListener, path::PathBuf, process::ExitCode, sync::Arc};

use actix_web::{App, HttpServer};
use oauth_mcp::{
    clock::SystemClock,
    configure_authorization_server,
    mcp::{McpEndpoint, ToolScopes},
    open_db, Config, Services,
};

use crate::server::ConformanceServer;

struct Args {
    port: u16,
    data_dir: Option<PathBuf>,
}

const USAGE: &str = "usage: conformance_server [--port N (default 3001, 0 = any free port)] [--data-dir DIR (default: a temporary directory)]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 3001,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                args.port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
            }
            "--data-dir" => args.data_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[actix_web::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,oauth_mcp=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance_server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", args.port))?;
    let local_addr = listener.local_addr()?;
    let port = local_addr.port();
    // Kept alive until the end of `run`, then removed.
    let temp_dir = match &args.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("oauth-mcp-conformance-")
                .tempdir()?,
        ),
    };
    let mut config = Config::default();
    config.bind = local_addr;
    config.public_url = Some(url::Url::parse(&format!("http://127.0.0.1:{port}"))?);
    config.data_dir = match (&args.data_dir, &temp_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(tmp)) => tmp.path().to_owned(),
        (None, None) => return Err("no data directory".into()),
    };
    let settings = config.settings(port)?;
    let db = open_db(&config)?;
    let services = Services::start(settings, &db, Arc::new(SystemClock)).await?;

    let sessions = services.sessions.clone();
    let endpoint = McpEndpoint::with_stream_tracking(
        &services,
        move || ConformanceServer::new(sessions.clone()),
        ToolScopes::new(),
    );
    let app_services = services.clone();
    let server = HttpServer::new(move || {
        let services = app_services.clone();
        let endpoint = endpoint.clone();
        App::new().configure(move |cfg| {
            configure_authorization_server(cfg, &services);
            endpoint.configure(cfg);
        })
    })
    .workers(2)
    .tcp_nodelay(true)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let server_task = actix_web::rt::spawn(server);

    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "conformance server: http://127.0.0.1:{port}/mcp (issuer {})",
        services.settings.issuer
    )?;
    stdout.flush()?;

    oauth_mcp::app::shutdown_signal().await;
    tracing::info!("shutting down");
    // Open SSE streams (GET streams of idle sessions) would hold a graceful stop.
    handle.stop(false).await;
    let _ = server_task.await;
    services.shutdown().await;
    let _ = tokio::task::spawn_blocking(move || db.flush()).await;
    drop(temp_dir);
    Ok(())
}
