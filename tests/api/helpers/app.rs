//! Spawning a server per test: `TestApp` (port-0 listener on 127.0.0.1, fresh sled directory in
//! a `TempDir`, a `ManualClock` at [`START_UNIX`]), restarting it on the same directory and port,
//! running the actors' sweeps now, and the URLs a test talks to.

use std::{net::TcpListener, sync::Arc, time::Duration};

use oauth_mcp::{
    clock::{Clock, ManualClock},
    Config, RunningServer,
};
use reqwest::{redirect::Policy, Client};
use serde_json::Value;
use tempfile::TempDir;
use url::Url;

use super::{test_database, Reply, TestDatabase, START_UNIX, TEST_DATABASE_URL};

/// One running server plus everything a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, which is also the issuer.
    pub address: String,
    pub port: u16,
    /// Never follows redirects, so 303s from /authorize can be inspected.
    pub client: Client,
    pub clock: Arc<ManualClock>,
    /// Kept alive for the whole test; `restart` reopens the same directory.
    pub data_dir: TempDir,
    server: Option<RunningServer>,
    configure: Box<dyn Fn(&mut Config)>,
    /// The PostgreSQL database of this test when the suite runs on PostgreSQL
    /// ([`BACKEND`]`=postgres`); dropped with the app.
    database: Option<TestDatabase>,
}

/// The variable choosing the backend every `spawn_app` server runs on: unset or `sled`
/// (a temporary data directory), or `postgres` (a fresh database of the test's own in the
/// cluster of `OAUTH_MCP_TEST_DATABASE_URL`; the CI script runs the suite both ways).
pub const BACKEND: &str = "OAUTH_MCP_TEST_BACKEND";

/// Whether this run puts `spawn_app` servers on PostgreSQL ([`BACKEND`]).
pub fn on_postgres() -> bool {
    std::env::var(BACKEND).as_deref() == Ok("postgres")
}

/// Server with the default (demo) configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Server whose `Config` is adjusted by `configure` after the harness has filled in the
/// public URL and the data directory. The closure is kept so `restart` applies it again.
pub async fn spawn_app_with(configure: impl Fn(&mut Config) + 'static) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = listener
        .local_addr()
        .expect("listener has an address")
        .port();
    let mut app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: build_client(),
        clock: ManualClock::new(START_UNIX),
        data_dir: tempfile::tempdir().expect("create a temporary data dir"),
        server: None,
        configure: Box::new(configure),
        database: None,
    };
    if on_postgres() {
        app.database = Some(
            test_database("spawn_app")
                .await
                .unwrap_or_else(|| panic!("{BACKEND}=postgres needs {TEST_DATABASE_URL}")),
        );
    }
    app.start_on(listener).await;
    app
}

/// A server on sled whatever backend the suite runs on ([`BACKEND`]): for tests of what
/// only a sled data directory has (its lock, the admin socket beside it).
pub async fn spawn_sled_app() -> TestApp {
    let mut app = spawn_app_with(|c| c.database_url = None).await;
    // Not needed: the configuration above ignores it.
    app.database = None;
    app
}

/// A `TestApp` for a server that something else started (the embedding example's host app,
/// say) at `address`: the HTTP and OAuth helpers work against it; its clock, data directory
/// and `restart` are not that server's and must not be used.
pub fn attach(address: &str, port: u16) -> TestApp {
    TestApp {
        address: address.to_owned(),
        port,
        client: build_client(),
        clock: ManualClock::new(START_UNIX),
        data_dir: tempfile::tempdir().expect("create a temporary data dir"),
        server: None,
        configure: Box::new(|_| {}),
        database: None,
    }
}

fn build_client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("build the reqwest client")
}

/// Rebinds the port the previous server used. The old socket may take a moment to go away.
async fn bind_with_retry(port: u16) -> TcpListener {
    let mut last_error = None;
    for _ in 0..50 {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return listener,
            Err(error) => {
                last_error = Some(error);
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("could not rebind 127.0.0.1:{port}: {last_error:?}");
}

impl TestApp {
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.public_url = Some(Url::parse(&self.address).expect("the address is a URL"));
        config.data_dir = self.data_dir.path().to_path_buf();
        if let Some(db) = &self.database {
            config.database_url = Some(db.url.clone().into());
        }
        // A test's own choice (a database of its own, say) wins.
        (self.configure)(&mut config);
        config
    }

    async fn start_on(&mut self, listener: TcpListener) {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let server = oauth_mcp::start(self.config(), listener, clock)
            .await
            .expect("the server starts");
        assert_eq!(server.local_addr().port(), self.port);
        self.server = Some(server);
    }

    /// Stops the server (which releases the sled db) and starts a new one on the same data dir
    /// and the same port, so issuer and resource URLs are unchanged.
    pub async fn restart(&mut self) {
        // A fresh client drops pooled keep-alive connections to the old server.
        self.client = build_client();
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        // sled's flusher thread keeps the directory lock until it next wakes (up to its
        // one-second interval) after the last handle is dropped: retry "in use" meanwhile.
        for _ in 0..50 {
            let listener = bind_with_retry(self.port).await;
            let clock: Arc<dyn Clock> = self.clock.clone();
            match oauth_mcp::start(self.config(), listener, clock).await {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(oauth_mcp::StartError::Storage(oauth_mcp::storage::StorageError::InUse(_))) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the server restarts: {e}"),
            }
        }
        panic!("the data directory stayed in use after the server stopped");
    }

    /// Runs one sweep slice of the code issuer and the token ledger now (they also sweep on
    /// their timer), so tests of what is forgotten when do not wait for it.
    pub async fn sweep(&self) {
        let services = self.server.as_ref().expect("a running server").services();
        let codes = services.codes.send(oauth_mcp::actors::Sweep).await;
        codes.expect("code issuer answers").expect("code sweep");
        let tokens = services.ledger.send(oauth_mcp::actors::Sweep).await;
        tokens.expect("ledger answers").expect("token sweep");
    }

    /// Runs the client registry's background sweep now (expired throttle windows, unused
    /// dynamically registered clients), as its timer would; returns the clients removed.
    pub async fn sweep_clients(&self) -> usize {
        let server = self.server.as_ref().expect("the server is running");
        server
            .services()
            .registry
            .send(oauth_mcp::actors::Sweep)
            .await
            .expect("the registry answers")
            .expect("the sweep succeeds")
    }

    /// The running server's actors and shared state (to hold a password-check slot, say).
    pub fn services(&self) -> &oauth_mcp::Services {
        self.server
            .as_ref()
            .expect("the server is running")
            .services()
    }

    // ----- URLs ---------------------------------------------------------------------------

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The issuer identifier (RFC 8414): the configured public URL, no trailing slash.
    pub fn issuer(&self) -> &str {
        &self.address
    }

    /// The canonical MCP resource URI (RFC 8707 / RFC 9728).
    pub fn resource(&self) -> String {
        format!("{}/mcp", self.address)
    }

    pub fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let mut url = Url::parse(&self.url("/authorize")).expect("valid authorize URL");
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// GET `path` (or an absolute URL), asserting 200, and its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            self.url(path)
        };
        let reply = Reply::read(self.client.get(url).send().await.expect("GET request")).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.json()
    }
}
