//! `oauth-mcp admin` against a data directory, then the real server on that directory over
//! HTTP: added clients and users work, removed ones do not, password changes and grant
//! revocations take effect, and a directory a running server holds is refused with a clear
//! message. `offline` uses the library's `Admin`; `cli` runs the binary itself for the
//! command-line wiring. This file holds the offline directory and the HTTP checks they share.

use std::{net::TcpListener, path::Path, process::Command, sync::Arc, time::Duration};

use oauth_mcp::{
    admin::{Admin, AdminError, ClientSpec},
    clock::{Clock, ManualClock},
    domain::secrets::Password,
    storage::{GrantHolder, StorageError},
    Config, RunningServer, StartError,
};
use serde_json::Value;
use tempfile::TempDir;
use url::Url;

use crate::helpers::{
    assert_basic_challenge, assert_error_page, assert_inactive, assert_token_error, attach,
    demo_authorize_params, pkce_pair, set_param, spawn_sled_app, str_field, Reply, TestApp,
    DEMO_BASIC, DEMO_PASSWORD, DEMO_USER, FLOW_STATE, START_UNIX,
};

mod cli;
mod offline;
mod postgres;
#[cfg(unix)]
mod socket;
mod transfer;

const REDIRECT_URI: &str = "http://127.0.0.1:33501/callback";

/// A data directory administered while no server runs, and the real server started and
/// stopped on it (same port each time, so issuer and token audience do not change).
struct Offline {
    dir: TempDir,
    port: u16,
    /// Set: the server and the admin side use this PostgreSQL database instead of sled.
    database_url: Option<String>,
    /// The server key file (default: the one generated in the data directory).
    key_file: Option<std::path::PathBuf>,
    clock: Arc<ManualClock>,
    listener: Option<TcpListener>,
    server: Option<RunningServer>,
}

impl Offline {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            port: listener.local_addr().unwrap().port(),
            database_url: None,
            key_file: None,
            clock: ManualClock::new(START_UNIX),
            listener: Some(listener),
            server: None,
        }
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's view; the admin side uses the same scopes (the defaults).
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.public_url = Some(Url::parse(&self.address()).unwrap());
        config.data_dir = self.dir.path().to_path_buf();
        config.database_url = self.database_url.clone().map(Into::into);
        config.key_file = self.key_file.clone();
        config
    }

    /// Opens the directory, retrying while a server stopped in this process still holds it
    /// for a moment (see `start`).
    async fn admin(&self) -> Admin {
        for _ in 0..50 {
            let clock: Arc<dyn Clock> = self.clock.clone();
            match Admin::open(self.config(), clock).await {
                Ok(admin) => return admin,
                Err(AdminError::InUse(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("admin did not open: {e}"),
            }
        }
        panic!("the data directory stayed in use");
    }

    /// Starts the server (seeding the demo client and user) and answers an HTTP client.
    async fn start(&mut self) -> TestApp {
        // sled releases its lock on the directory when the last handle of the closed admin
        // session is gone, which background threads can delay by a moment in this process
        // (a separate admin process releases it when it exits): retry while it is held.
        for attempt in 0..50 {
            let listener = match self.listener.take() {
                Some(l) => l,
                None => rebind(self.port).await,
            };
            let clock: Arc<dyn Clock> = self.clock.clone();
            match oauth_mcp::start(self.config(), listener, clock).await {
                Ok(server) => {
                    self.server = Some(server);
                    return attach(&self.address(), self.port);
                }
                Err(StartError::Storage(StorageError::InUse(_))) if attempt < 49 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the server did not start: {e}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

async fn rebind(port: u16) -> TcpListener {
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not rebind port {port}");
}

fn password(p: &str) -> Password {
    Password::new(p.to_owned())
}

/// Signs `username` in on the demo client's authorization request; answers the reply.
async fn sign_in(app: &TestApp, username: &str, password: &str) -> (Reply, String) {
    let (verifier, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, FLOW_STATE);
    let reply = Reply::read(
        app.login_and_consent(&params, username, password, true)
            .await,
    )
    .await;
    (reply, verifier)
}

/// Signs `username` in and exchanges the code as the demo client: the token response.
async fn tokens_of(app: &TestApp, username: &str, password: &str) -> Value {
    let (reply, verifier) = sign_in(app, username, password).await;
    assert_eq!(reply.status, 303, "{username} signs in: {}", reply.body);
    let code = reply.location_query()["code"].clone();
    let tokens = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    tokens.json()
}

fn assert_refused(reply: &Reply) {
    assert_ne!(reply.status, 303, "signed in: {}", reply.body);
    assert!(reply.header("location").is_none());
}

/// Status of an MCP `initialize` with `token`.
async fn mcp_status(app: &TestApp, token: &str) -> u16 {
    app.mcp_initialize(token).await.status().as_u16()
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> Reply {
    Reply::read(
        app.token_request(&[("grant_type", "client_credentials")], Some((id, secret)))
            .await,
    )
    .await
}

/// Runs `oauth-mcp admin --data-dir DIR ARGS...`, with `stdin` piped in if given.
/// The value after `name` on the admin CLI's output line that starts with it
/// (`client_id: …`).
fn field(stdout: &str, name: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
}

/// An admin CLI run as (success, stdout, stderr).
fn outcome(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn admin_cli(dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-mcp"))
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("OAUTH_MCP_SCOPES")
        .env_remove("OAUTH_MCP_DEFAULT_SCOPES")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}
