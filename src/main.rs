//! The `oauth-mcp` binary: flags → config → listener → [`oauth_mcp::start`] → wait for
//! SIGINT/SIGTERM → graceful stop.

use std::{net::TcpListener, process::ExitCode, sync::Arc};

use clap::Parser as _;
use oauth_mcp::{cli::Cli, clock::SystemClock};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    if cli.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let config = cli.config();
    let listener = match TcpListener::bind(config.bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("oauth-mcp: cannot listen on {}: {e}", config.bind);
            return ExitCode::FAILURE;
        }
    };
    let server = match oauth_mcp::start(config, listener, Arc::new(SystemClock)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("oauth-mcp: {e}");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
