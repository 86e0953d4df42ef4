//! `oauth-mcp admin` against a data directory, then the real server on that directory over
//! HTTP: added clients and users work, removed ones do not, password changes and grant
//! revocations take effect, and a directory a running server holds is refused with a clear
//! message. The last tests run the binary itself for the command-line wiring.

use std::{net::TcpListener, path::Path, process::Command, sync::Arc, time::Duration};

use oauth_mcp::{
    admin::{Admin, AdminError, ClientSpec},
    clock::{Clock, ManualClock},
    domain::secrets::Password,
    storage::{GrantHolder, StorageError},
    Config, RunningServer, StartError,
};
use reqwest::header;
use serde_json::{json, Value};
use tempfile::TempDir;
use url::Url;

use crate::helpers::{
    assert_basic_challenge, assert_error_page, assert_inactive, assert_token_error, attach,
    demo_authorize_params, pkce_pair, set_param, spawn_app, str_field, Reply, TestApp, DEMO_BASIC,
    DEMO_PASSWORD, DEMO_USER, FLOW_STATE, START_UNIX,
};

const REDIRECT_URI: &str = "http://127.0.0.1:33501/callback";

/// A data directory administered while no server runs, and the real server started and
/// stopped on it (same port each time, so issuer and token audience do not change).
struct Offline {
    dir: TempDir,
    port: u16,
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
        config
    }

    async fn admin(&self) -> Admin {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Admin::open(self.config(), clock).await.unwrap()
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
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "admin-test", "version": "1"}}
    });
    app.client
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .header(header::ACCEPT, "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> Reply {
    Reply::read(
        app.token_request(&[("grant_type", "client_credentials")], Some((id, secret)))
            .await,
    )
    .await
}

#[actix_web::test]
async fn clients_added_offline_get_tokens_and_removed_ones_do_not() {
    let mut h = Offline::new();
    let admin = h.admin().await;
    let confidential = admin
        .add_client(&ClientSpec {
            name: Some("Billing agent".into()),
            redirect_uris: vec![REDIRECT_URI.into()],
            grant_types: vec![
                "authorization_code".into(),
                "refresh_token".into(),
                "client_credentials".into(),
            ],
            scopes: vec!["mcp:read".into()],
            ..ClientSpec::default()
        })
        .await
        .unwrap();
    let public = admin
        .add_client(&ClientSpec {
            redirect_uris: vec![REDIRECT_URI.into()],
            public: true,
            ..ClientSpec::default()
        })
        .await
        .unwrap();
    assert!(public.secret.is_none(), "public clients have no secret");
    let refused = admin
        .add_client(&ClientSpec {
            redirect_uris: vec!["http://evil.example/cb".into()],
            ..ClientSpec::default()
        })
        .await;
    assert!(
        matches!(&refused, Err(AdminError::Invalid(m)) if m.contains("redirect URI")),
        "{refused:?}"
    );
    let listed = admin.clients().await.unwrap();
    assert_eq!(listed.len(), 2);
    admin.close().await.unwrap();

    let id = confidential.client.client_id.clone();
    let secret = confidential.secret.unwrap().secret().to_owned();
    let app = h.start().await;
    // The code flow with the new client's secret...
    let (code, verifier) = app.obtain_code_for(&id, REDIRECT_URI, "mcp:read").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let reply = Reply::read(app.token_request(&form, Some((&id, &secret))).await).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let user_access = str_field(&reply.json(), "access_token");
    // ...client_credentials, which the operator granted...
    let reply = client_credentials(&app, &id, &secret).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let machine_access = str_field(&reply.json(), "access_token");
    assert_eq!(mcp_status(&app, &machine_access).await, 200);
    // ...and only with that secret.
    assert_basic_challenge(&client_credentials(&app, &id, "wrong").await);
    // The public client completes the code flow with PKCE alone.
    let public_id = public.client.client_id.clone();
    let (code, verifier) = app
        .obtain_code_for(&public_id, REDIRECT_URI, "mcp:read")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", public_id.as_str()),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let reply = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    h.stop().await;

    let admin = h.admin().await;
    let revoked = admin.remove_client(&id).await.unwrap();
    assert_eq!(
        revoked.grants, 2,
        "the code grant and the client_credentials grant"
    );
    let again = admin.remove_client(&id).await;
    assert!(
        matches!(again, Err(AdminError::UnknownClient(_))),
        "{again:?}"
    );
    admin.close().await.unwrap();

    let app = h.start().await;
    assert_basic_challenge(&client_credentials(&app, &id, &secret).await);
    assert_eq!(mcp_status(&app, &machine_access).await, 401);
    assert_eq!(mcp_status(&app, &user_access).await, 401);
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, FLOW_STATE);
    set_param(&mut params, "client_id", &id);
    set_param(&mut params, "redirect_uri", REDIRECT_URI);
    assert_error_page(&Reply::read(app.get_authorize(&params).await).await);
    h.stop().await;
}

#[actix_web::test]
async fn users_added_offline_sign_in_and_password_changes_take_effect() {
    let mut h = Offline::new();
    let admin = h.admin().await;
    admin
        .add_user("alice", &password("first pw"))
        .await
        .unwrap();
    let taken = admin.add_user("alice", &password("other")).await;
    assert!(matches!(taken, Err(AdminError::UserExists(_))), "{taken:?}");
    let unnamed = admin.add_user("a b", &password("pw")).await;
    assert!(
        matches!(unnamed, Err(AdminError::Invalid(_))),
        "{unnamed:?}"
    );
    let empty = admin.add_user("bob", &password("")).await;
    assert!(matches!(empty, Err(AdminError::Invalid(_))), "{empty:?}");
    assert_eq!(admin.users().await.unwrap(), ["alice"]);
    admin.close().await.unwrap();

    let app = h.start().await;
    let tokens = tokens_of(&app, "alice", "first pw").await;
    let introspected = app.introspect(&str_field(&tokens, "access_token")).await;
    assert_eq!(introspected["sub"], "alice");
    h.stop().await;

    let admin = h.admin().await;
    admin
        .set_password("alice", &password("second pw"))
        .await
        .unwrap();
    let unknown = admin.set_password("carol", &password("pw")).await;
    assert!(
        matches!(unknown, Err(AdminError::UnknownUser(_))),
        "{unknown:?}"
    );
    admin.close().await.unwrap();

    let app = h.start().await;
    assert_refused(&sign_in(&app, "alice", "first pw").await.0);
    tokens_of(&app, "alice", "second pw").await;
    h.stop().await;

    let admin = h.admin().await;
    let removed = admin.remove_user("alice").await.unwrap();
    assert_eq!(removed.grants, 2, "both sign-ins' grants");
    admin.close().await.unwrap();

    let app = h.start().await;
    assert_refused(&sign_in(&app, "alice", "second pw").await.0);
    h.stop().await;
}

#[actix_web::test]
async fn revoking_a_users_grants_makes_their_tokens_inactive() {
    let mut h = Offline::new();
    let admin = h.admin().await;
    admin.add_user("alice", &password("pw")).await.unwrap();
    admin.close().await.unwrap();

    let app = h.start().await;
    let alice = tokens_of(&app, "alice", "pw").await;
    let demo = tokens_of(&app, DEMO_USER, DEMO_PASSWORD).await;
    let alice_access = str_field(&alice, "access_token");
    let alice_refresh = str_field(&alice, "refresh_token");
    assert_eq!(mcp_status(&app, &alice_access).await, 200);
    h.stop().await;

    let admin = h.admin().await;
    let revoked = admin
        .revoke(GrantHolder::Subject("alice".into()))
        .await
        .unwrap();
    assert_eq!(revoked.grants, 1);
    admin.close().await.unwrap();

    let app = h.start().await;
    // Introspection by the client that owns the tokens, and the protected resource.
    assert_inactive(&app.introspect(&alice_access).await);
    assert_inactive(&app.introspect(&alice_refresh).await);
    assert_eq!(mcp_status(&app, &alice_access).await, 401);
    assert_token_error(
        &app.refresh(&alice_refresh, None).await,
        400,
        "invalid_grant",
    );
    // Nobody else's grants are touched, and alice may sign in again.
    assert!(app.is_active(&str_field(&demo, "access_token")).await);
    let fresh = tokens_of(&app, "alice", "pw").await;
    assert!(app.is_active(&str_field(&fresh, "access_token")).await);
    h.stop().await;
}

#[actix_web::test]
async fn admin_refuses_a_directory_a_running_server_holds() {
    let app = spawn_app().await;
    let mut config = Config::default();
    config.data_dir = app.data_dir.path().to_path_buf();
    let clock: Arc<dyn Clock> = app.clock.clone();
    let err = Admin::open(config, clock).await.unwrap_err();
    assert!(matches!(err, AdminError::InUse(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&app.data_dir.path().display().to_string())
            && message.contains("in use by a running oauth-mcp server")
            && message.contains("stop it first"),
        "{message}"
    );
    // The server is unaffected.
    let reply = Reply::read(
        app.token_request(&[("grant_type", "client_credentials")], Some(DEMO_BASIC))
            .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Through the binary: a non-zero exit and the same message.
    let out = admin_cli(app.data_dir.path(), &["client", "list"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by a running oauth-mcp server"),
        "{stderr}"
    );
}

/// Runs `oauth-mcp admin --data-dir DIR ARGS...`, with `stdin` piped in if given.
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

#[actix_web::test]
async fn the_binary_adds_and_lists_clients_and_shows_the_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let added = admin_cli(
        dir.path(),
        &[
            "client",
            "add",
            "--name",
            "CLI agent",
            "--redirect-uri",
            "https://cli.example/cb",
            "--redirect-uri",
            "http://localhost:9000/cb",
            "--scope",
            "mcp:read",
        ],
        None,
    );
    let stdout = String::from_utf8(added.stdout).unwrap();
    assert!(
        added.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let id = field("client_id:");
    let secret = field("client_secret:");
    assert_eq!(secret.len(), 43, "{stdout}");
    assert_eq!(stdout.matches(secret.as_str()).count(), 1, "{stdout}");
    assert!(stdout.contains("will not be shown again"), "{stdout}");

    let listed = admin_cli(dir.path(), &["client", "list"], None);
    assert!(listed.status.success());
    let list = String::from_utf8(listed.stdout).unwrap();
    assert!(list.contains(&id) && list.contains("CLI agent"), "{list}");
    assert!(
        list.contains("https://cli.example/cb http://localhost:9000/cb"),
        "{list}"
    );
    assert!(
        !list.contains(&secret),
        "the secret is never shown again: {list}"
    );
    assert!(list.contains("1 client"), "{list}");
    assert!(list.contains("added by:      operator"), "{list}");

    // A password comes from standard input, never from an argument.
    let user = admin_cli(dir.path(), &["user", "add", "carol"], Some("carol's pw\n"));
    assert!(
        user.status.success(),
        "{}",
        String::from_utf8_lossy(&user.stderr)
    );
    let users = admin_cli(dir.path(), &["user", "list"], None);
    assert!(String::from_utf8_lossy(&users.stdout).contains("carol"));
    let bad = admin_cli(
        dir.path(),
        &["client", "add", "--redirect-uri", "http://evil.example/cb"],
        None,
    );
    assert!(!bad.status.success());
    assert_oauth_like(&String::from_utf8_lossy(&bad.stderr));

    // The server started on the directory honours what the binary wrote.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::default();
    config.public_url = Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    config.data_dir = dir.path().to_path_buf();
    let clock: Arc<dyn Clock> = ManualClock::new(START_UNIX);
    let server = oauth_mcp::start(config, listener, clock).await.unwrap();
    let app = attach(&format!("http://127.0.0.1:{port}"), port);
    let (reply, _) = sign_in(&app, "carol", "carol's pw").await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let page = app
        .consent_page(&[
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", "https://cli.example/cb"),
            ("code_challenge", pkce_pair().1.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", "mcp:read"),
        ])
        .await;
    assert_eq!(page.reply.status, 200, "{}", page.reply.body);
    server.stop().await;
}

/// The refusal names what is wrong with the redirect URI.
fn assert_oauth_like(stderr: &str) {
    assert!(
        stderr.starts_with("oauth-mcp admin: ") && stderr.contains("redirect URI"),
        "{stderr}"
    );
}
