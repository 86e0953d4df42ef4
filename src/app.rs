//! Serving HTTP over the services: [`start`] (open the database, start the [`Services`],
//! serve HTTP on a given listener), [`RunningServer::stop`], and [`configure`], which mounts
//! everything the default server offers (the authorization server and the demo MCP server).
//! The top of the library: it composes `http` and `mcp` over `services`.

use std::{net::TcpListener, sync::Arc};

use actix_web::{dev::ServerHandle, web, App, HttpServer};

use crate::storage::postgres::{self, PgStores};
use crate::{
    config::{Config, DatabaseUrl},
    domain::clock::Clock,
    http::configure_authorization_server,
    mcp::{
        demo::{self, DemoServer, Guestbook},
        McpEndpoint,
    },
};
pub use crate::{
    services::{
        Services, StartError, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME,
    },
    storage::sled::open_db,
};

/// Connections in the PostgreSQL pool of one server (the actors and the sweeps share them).
const POSTGRES_POOL_SIZE: usize = 16;

/// Mounts everything the default server offers: the authorization server and the demo MCP
/// endpoint at `/mcp`. Call once per worker with the same [`Services`] (started once,
/// outside `HttpServer::new`); every worker serves the same demo guestbook, kept in
/// [`Services::attachments`].
pub fn configure(cfg: &mut web::ServiceConfig, services: &Services) {
    configure_authorization_server(cfg, services);
    crate::http::probes::configure_probes(cfg);
    // Built here, in each worker, unlike a host's endpoint (built once, outside the
    // factory): it holds only clones of the services' addresses and settings, its sessions
    // live in the session actor, and the one thing every worker must share, the demo
    // guestbook, comes from the attachments.
    let guestbook = services.attachments.get_or_insert_with(Guestbook::default);
    // rmcp calls the factory per session, and per request on the stateless path: clone
    // one server built once instead of building its routers each time.
    let demo = DemoServer::new(guestbook);
    McpEndpoint::new(services, move || demo.clone(), demo::tool_scopes()).configure(cfg);
}

/// A server started by [`start`].
pub struct RunningServer {
    services: Services,
    handle: ServerHandle,
    local_addr: std::net::SocketAddr,
    /// The sled database; `None` on PostgreSQL (`Services::shutdown` closes that pool).
    db: Option<sled::Db>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// The actors, for embedding and tests.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Graceful stop: stop accepting, finish in-flight requests, stop the actors, flush and
    /// release the database (so the same directory can be reopened in this process).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.services.shutdown().await;
        if let Some(db) = self.db {
            let _ = tokio::task::spawn_blocking(move || db.flush()).await;
        }
    }
}

/// Connects to PostgreSQL when `config.database_url` is set (migrating it), else opens the
/// sled database in the data directory; then starts the services on it.
async fn start_services(
    config: &Config,
    settings: crate::config::Settings,
    clock: Arc<dyn Clock>,
) -> Result<(Services, Option<sled::Db>), StartError> {
    let Some(url) = config.database_url.as_ref().map(DatabaseUrl::as_str) else {
        let db = open_db(config)?;
        let services = Services::start(settings, &db, clock).await?;
        return Ok((services, Some(db)));
    };
    // Only the target is ever logged or shown, never the URL (it may hold a password).
    let parsed = postgres::parse_url(url)
        .map_err(|reason| StartError::Database {
            target: "(--database-url)".into(),
            reason,
        })?
        .with_ca_pem(settings.database_roots.clone());
    let target = postgres::describe(&parsed);
    let stores = PgStores::connect_with(parsed, POSTGRES_POOL_SIZE)
        .await
        .map_err(|reason| StartError::Database {
            target: target.clone(),
            reason,
        })?;
    tracing::info!(
        database = %target,
        schema_version = stores.schema_version(),
        "storage: PostgreSQL (single instance)"
    );
    match Services::start_postgres(settings, &stores, clock).await {
        Ok(services) => Ok((services, None)),
        Err(e) => {
            stores.close();
            Err(e)
        }
    }
}

/// Opens the database, starts the actors and serves HTTP on `listener`. Must be awaited
/// inside an actix System. The caller decides when to [`RunningServer::stop`].
pub async fn start(
    config: Config,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> Result<RunningServer, StartError> {
    let local_addr = listener.local_addr()?;
    // What decides whether the demo records may exist is where the server really listens.
    let mut config = config;
    config.bind = local_addr;
    let settings = config.settings(local_addr.port())?;
    let (services, db) = start_services(&config, settings, clock).await?;
    let app_services = services.clone();
    let server = HttpServer::new(move || {
        let services = app_services.clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::http::request_context))
            .configure(move |cfg| configure(cfg, &services))
    })
    .workers(2)
    .client_request_timeout(config.request_timeout)
    .keep_alive(config.keep_alive)
    .max_connections(config.max_connections_per_worker)
    // actix-web leaves Nagle on; SSE responses go out in two writes, and the second would
    // wait for the client's delayed ACK (~40 ms per MCP response).
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    tracing::info!(issuer = %services.settings.issuer, %local_addr, "oauth-mcp listening");
    Ok(RunningServer {
        services,
        handle,
        local_addr,
        db,
    })
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere): what a binary waits for before
/// [`RunningServer::stop`].
pub async fn shutdown_signal() {
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
