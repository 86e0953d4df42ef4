//! The `oauth-mcp` binary: flags → config → listener → [`oauth_mcp::start`] → wait for
//! SIGINT/SIGTERM → graceful stop.

use std::{net::TcpListener, process::ExitCode, sync::Arc};

use clap::Parser as _;

// The allocator is the top user-space cost under load (malloc/free of small buffers across
// threads); mimalloc measured faster than glibc's here (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use oauth_mcp::{
    cli::{Cli, Command, LoadtestArgs, MigrateArgs},
    clock::SystemClock,
};

/// mimalloc v3's `mi_option_purge_delay` (`mi_option_e` in the pinned libmimalloc-sys's
/// `mimalloc.h`; the crate's own constants follow the older v2 numbering).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc give freed memory back to the OS at once instead of after a second, and
/// only when it next allocates: the 19 MiB blocks of each Argon2id hash (start-up seeding,
/// logins) otherwise stayed resident in an idle server. Together with arenas that are not
/// committed eagerly (`.cargo/config.toml`), resident memory after a million tokens went
/// from 145 to about 92 MB, throughput unchanged within noise (BENCHMARKS.md, "Memory").
fn tune_allocator() {
    // SAFETY: `mi_option_set` is not thread safe; this runs first in `main`, before any
    // thread is started.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    if let Some(Command::Loadtest(args)) = cli.command {
        return match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.max(1))
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(loadtest(args)),
            Err(e) => {
                eprintln!("oauth-mcp: cannot start the load generator: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Migrate(args)) = cli.command {
        return match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(migrate(args)),
            Err(e) => {
                eprintln!("oauth-mcp migrate: cannot start: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Admin(args)) = cli.command {
        return actix_web::rt::System::new().block_on(oauth_mcp::admin::command::run(args));
    }
    actix_web::rt::System::new().block_on(serve(cli))
}

/// `oauth-mcp migrate`: connects as a starting server does (which applies the pending
/// migrations under the migration lock and checks the range) and prints the version.
async fn migrate(args: MigrateArgs) -> ExitCode {
    use oauth_mcp::storage::postgres::{self, migrations, PgStores};
    let config = match postgres::parse_url(&args.database_url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oauth-mcp migrate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ca_pem = match args
        .database_ca_file
        .as_deref()
        .map(std::fs::read)
        .transpose()
    {
        Ok(pem) => pem,
        Err(e) => {
            eprintln!("oauth-mcp migrate: the database CA file: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = config.with_ca_pem(ca_pem);
    let target = postgres::describe(&config);
    match PgStores::connect_with(config, 1).await {
        Ok(stores) => {
            println!(
                "{target}: schema version {} (this build runs on {}..={})",
                stores.schema_version(),
                migrations::MIN_SCHEMA,
                migrations::MAX_SCHEMA
            );
            stores.close();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oauth-mcp migrate: PostgreSQL database {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn loadtest(args: LoadtestArgs) -> ExitCode {
    use oauth_mcp::loadtest::{self, Scenario, Target};
    let mut urls = args.url.iter().cloned();
    let opts = loadtest::TargetOptions {
        url: urls
            .next()
            .unwrap_or_else(|| "http://127.0.0.1:8000".to_owned()),
        more_urls: urls.collect(),
        client: (!args.register).then(|| (args.client_id.clone(), args.client_secret.clone())),
        username: args.username.clone(),
        password: args.password.clone(),
        redirect_uri: args.redirect_uri.clone(),
        codes: args.codes,
    };
    let mut target = match Target::discover(opts).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("oauth-mcp loadtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.scenarios.contains(&Scenario::Trivial) {
        match loadtest::start_trivial_server() {
            Ok(addr) => target.trivial = Some(addr),
            Err(e) => eprintln!("cannot start the trivial endpoint: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    if args
        .scenarios
        .iter()
        .any(|s| matches!(s, Scenario::ToolsCall | Scenario::ToolsCallStateless))
    {
        if let Err(e) = target.fetch_access_token().await {
            eprintln!("oauth-mcp loadtest: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut reports = Vec::new();
    for (scenario, c) in (0..args.rounds.max(1)).flat_map(|_| {
        args.scenarios
            .iter()
            .flat_map(|&s| args.concurrency.iter().map(move |&c| (s, c)))
    }) {
        {
            let warmup = std::time::Duration::from_secs(args.warmup);
            let duration = std::time::Duration::from_secs(args.duration);
            match loadtest::run(
                &target,
                scenario,
                c.max(1),
                warmup,
                duration,
                &args.server_pid,
            )
            .await
            {
                Ok(r) => reports.push(r),
                Err(e) => eprintln!("  {scenario:?} c={c}: skipped: {e}"),
            }
        }
    }
    let reports = loadtest::medians(reports);
    let trivial = reports
        .iter()
        .filter(|r| r.scenario == Scenario::Trivial)
        .map(|r| r.rps)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    println!("{}", loadtest::table(&reports, trivial));
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&reports).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

async fn serve(cli: Cli) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The per-request access log costs a quarter of the throughput at full load, so it
        // is off unless asked for (RUST_LOG=info,oauth_mcp::access=info). rmcp logs three
        // INFO lines each time it serves a handler, which on the stateless path (2026-07-28)
        // is every request: they cost more than the call, so its service log starts at WARN.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,oauth_mcp::access=warn,rmcp::service=warn")
        });
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
    // The admin socket serves a sled data directory, which this process then holds; on
    // PostgreSQL `oauth-mcp admin` goes to the database itself.
    let admin_socket_dir = config
        .database_url
        .is_none()
        .then(|| config.data_dir.clone());
    let server = match oauth_mcp::start(config, listener, Arc::new(SystemClock)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("oauth-mcp: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Without the socket the server still serves (administration then needs it stopped,
    // as before the socket existed): a convenience must not cost availability.
    #[cfg(unix)]
    let admin_socket = admin_socket_dir.and_then(|dir| {
        oauth_mcp::admin::socket::AdminSocket::serve(server.services(), &dir)
            .inspect_err(|e| {
                tracing::warn!(
                    error = %e,
                    data_dir = %dir.display(),
                    "admin socket not served: `oauth-mcp admin` needs this server stopped"
                );
            })
            .ok()
    });
    #[cfg(not(unix))]
    let _ = admin_socket_dir;
    oauth_mcp::app::shutdown_signal().await;
    tracing::info!("shutting down");
    // No administration during the stop; the socket file goes with it.
    #[cfg(unix)]
    drop(admin_socket);
    server.stop().await;
    ExitCode::SUCCESS
}
