//! Test harness shared by every module of the `api` test binary (zero2prod style).
//!
//! Each test gets its own server: a port-0 listener on 127.0.0.1, a fresh sled directory inside a
//! `TempDir`, and a `ManualClock` pinned at [`START_UNIX`] so that expiry tests advance time
//! instead of sleeping. `TestApp` then offers one helper per OAuth step (consent page, decision,
//! token, refresh, revoke, introspect, register) so that each test reads as the protocol it checks.
#![allow(dead_code, reason = "not every test module uses every helper")]

use std::{
    collections::{BTreeSet, HashMap},
    net::TcpListener,
    sync::Arc,
    time::Duration,
};

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use oauth_mcp::{
    clock::{Clock, ManualClock},
    Config, RunningServer,
};
use rand::Rng as _;
use reqwest::{
    header::{self, HeaderMap},
    redirect::Policy,
    Client, Response,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use url::Url;

/// Unix time the manual clock starts at; timestamps in responses are checked against it.
pub const START_UNIX: i64 = 1_800_000_000;

/// Seeded confidential demo client (demo mode is on by default).
pub const DEMO_CLIENT_ID: &str = "demo_client";
pub const DEMO_CLIENT_SECRET: &str = "demo_secret";
/// `Basic` credentials of the demo client, ready for `token_request(.., Some(DEMO_BASIC))`.
pub const DEMO_BASIC: (&str, &str) = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
/// Display name of the demo client on the consent page.
pub const DEMO_CLIENT_NAME: &str = "Demo Client";
/// The demo client has exactly these two redirect URIs registered.
pub const DEMO_REDIRECT_URI: &str = "http://localhost:8765/callback";
pub const DEMO_REDIRECT_URI_IP: &str = "http://127.0.0.1:8765/callback";
/// Seeded resource owner.
pub const DEMO_USER: &str = "demo_user";
pub const DEMO_PASSWORD: &str = "demo_password";
/// Every scope the server knows, which is also the default scope set.
pub const ALL_SCOPES: &str = "mcp:read mcp:write";
/// `state` used by the helpers that run a whole flow.
pub const FLOW_STATE: &str = "flow-state-123";

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
    };
    app.start_on(listener).await;
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
        let listener = bind_with_retry(self.port).await;
        self.start_on(listener).await;
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

    // ----- /authorize and the consent page ------------------------------------------------

    pub async fn get_authorize(&self, params: &[(&str, &str)]) -> Response {
        self.client
            .get(self.authorize_url(params))
            .send()
            .await
            .expect("GET /authorize")
    }

    pub async fn post_authorize(&self, params: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/authorize"))
            .form(params)
            .send()
            .await
            .expect("POST /authorize")
    }

    /// GET /authorize and scrape what a browser would keep: cookies, form action, hidden fields.
    pub async fn consent_page(&self, params: &[(&str, &str)]) -> ConsentPage {
        let resp = self.get_authorize(params).await;
        let cookies = cookie_pairs(resp.headers());
        let reply = Reply::read(resp).await;
        let action = find_tags(&reply.body, "form")
            .first()
            .and_then(|form| attr(form, "action").map(str::to_owned))
            .filter(|action| !action.is_empty())
            .unwrap_or_else(|| "/authorize/decision".to_owned());
        let base = Url::parse(&self.url("/authorize")).expect("valid authorize URL");
        let action_url = base
            .join(&action)
            .expect("form action is a valid URL reference")
            .to_string();
        ConsentPage {
            cookie: (!cookies.is_empty()).then(|| cookies.join("; ")),
            action_url,
            hidden: hidden_inputs(&reply.body),
            reply,
        }
    }

    /// Posts the consent form the way a browser would: every hidden field of `page`, with
    /// `fields` added (replacing hidden fields of the same name), and `cookie` as `Cookie`.
    pub async fn submit_consent(
        &self,
        page: &ConsentPage,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Response {
        let mut body: Vec<(String, String)> = page
            .hidden
            .iter()
            .filter(|(name, _)| !fields.iter().any(|(field, _)| field == name))
            .cloned()
            .collect();
        body.extend(
            fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        let mut request = self.client.post(&page.action_url).form(&body);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("POST /authorize/decision")
    }

    /// Opens the consent page for `params`, logs in and approves or denies.
    pub async fn login_and_consent(
        &self,
        params: &[(&str, &str)],
        username: &str,
        password: &str,
        approve: bool,
    ) -> Response {
        let page = self.consent_page(params).await;
        assert_eq!(
            page.reply.status, 200,
            "the consent page should render: {}",
            page.reply.body
        );
        let action = if approve { "approve" } else { "deny" };
        self.submit_consent(
            &page,
            page.cookie.as_deref(),
            &[
                ("username", username),
                ("password", password),
                ("action", action),
            ],
        )
        .await
    }

    /// Runs the code flow for any client as demo_user and returns `(code, verifier)`.
    pub async fn obtain_code_for(
        &self,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
    ) -> (String, String) {
        let (verifier, challenge) = pkce_pair();
        let params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", scope),
            ("state", FLOW_STATE),
        ];
        let reply = Reply::read(
            self.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
                .await,
        )
        .await;
        assert_eq!(
            reply.status, 303,
            "approval should redirect: {}",
            reply.body
        );
        let query = reply.location_query();
        assert_eq!(query.get("state").map(String::as_str), Some(FLOW_STATE));
        let code = query
            .get("code")
            .unwrap_or_else(|| panic!("no code in {}", reply.location()))
            .clone();
        (code, verifier)
    }

    /// Whole flow for demo_client with both scopes: `(code, verifier, redirect_uri)`.
    pub async fn obtain_code(&self) -> (String, String, String) {
        let (code, verifier) = self
            .obtain_code_for(DEMO_CLIENT_ID, DEMO_REDIRECT_URI, ALL_SCOPES)
            .await;
        (code, verifier, DEMO_REDIRECT_URI.to_owned())
    }

    // ----- /token -------------------------------------------------------------------------

    pub async fn token_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Response {
        let mut request = self.client.post(self.url("/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.header(header::AUTHORIZATION, basic_auth(id, secret));
        }
        request.send().await.expect("POST /token")
    }

    /// Redeems a demo_client code with Basic auth; returns the raw reply.
    pub async fn exchange_demo_code(&self, code: &str, verifier: &str) -> Reply {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", DEMO_REDIRECT_URI),
        ];
        Reply::read(self.token_request(&form, Some(DEMO_BASIC)).await).await
    }

    /// Code flow + exchange for demo_client; returns the token response JSON.
    pub async fn exchange_code_demo(&self) -> Value {
        let (code, verifier, _) = self.obtain_code().await;
        let reply = self.exchange_demo_code(&code, &verifier).await;
        assert_eq!(reply.status, 200, "code exchange failed: {}", reply.body);
        reply.json()
    }

    /// `grant_type=refresh_token` as demo_client (Basic).
    pub async fn refresh(&self, refresh_token: &str, scope: Option<&str>) -> Reply {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        Reply::read(self.token_request(&form, Some(DEMO_BASIC)).await).await
    }

    // ----- /revoke and /introspect ----------------------------------------------------------

    /// RFC 7009 revocation; `basic = None` sends no client authentication at all.
    pub async fn revoke(
        &self,
        token: &str,
        hint: Option<&str>,
        basic: Option<(&str, &str)>,
    ) -> Response {
        let mut form = vec![("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        let mut request = self.client.post(self.url("/revoke")).form(&form);
        if let Some((id, secret)) = basic {
            request = request.header(header::AUTHORIZATION, basic_auth(id, secret));
        }
        request.send().await.expect("POST /revoke")
    }

    pub async fn introspect_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Response {
        let mut request = self.client.post(self.url("/introspect")).form(form);
        if let Some((id, secret)) = basic {
            request = request.header(header::AUTHORIZATION, basic_auth(id, secret));
        }
        request.send().await.expect("POST /introspect")
    }

    /// An MCP `initialize` at `/mcp` with `token` as the bearer; the raw response.
    pub async fn mcp_initialize(&self, token: &str) -> Response {
        self.client
            .post(self.url("/mcp"))
            .bearer_auth(token)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "oauth-mcp-tests", "version": "1"}}
            }))
            .send()
            .await
            .expect("POST /mcp")
    }

    /// RFC 7662 introspection as demo_client; asserts 200 and returns the JSON.
    pub async fn introspect(&self, token: &str) -> Value {
        let reply = Reply::read(
            self.introspect_request(&[("token", token)], Some(DEMO_BASIC))
                .await,
        )
        .await;
        assert_eq!(reply.status, 200, "introspection failed: {}", reply.body);
        reply.json()
    }

    /// `true` iff introspection reports the token active.
    pub async fn is_active(&self, token: &str) -> bool {
        let body = self.introspect(token).await;
        match body["active"].as_bool() {
            Some(active) => active,
            None => panic!("introspection without boolean `active`: {body}"),
        }
    }

    // ----- /register ------------------------------------------------------------------------

    pub async fn register(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/register"))
            .json(body)
            .send()
            .await
            .expect("POST /register")
    }

    /// Registers and asserts 201; returns the client information response.
    pub async fn register_ok(&self, body: &Value) -> Value {
        let reply = Reply::read(self.register(body).await).await;
        assert_eq!(reply.status, 201, "registration failed: {}", reply.body);
        reply.json()
    }

    /// Registers a confidential client (default auth method) with these redirect URIs;
    /// returns `(client_id, client_secret)`.
    pub async fn register_confidential(&self, redirect_uris: &[&str]) -> (String, String) {
        let client = self
            .register_ok(
                &json!({ "redirect_uris": redirect_uris, "client_name": "Test Confidential" }),
            )
            .await;
        (
            str_field(&client, "client_id"),
            str_field(&client, "client_secret"),
        )
    }

    /// Registers a public client (`token_endpoint_auth_method: none`); returns its client_id.
    pub async fn register_public(&self, redirect_uris: &[&str]) -> String {
        let client = self
            .register_ok(&json!({
                "redirect_uris": redirect_uris,
                "client_name": "Test Public",
                "token_endpoint_auth_method": "none",
            }))
            .await;
        str_field(&client, "client_id")
    }
}

/// What a browser keeps from the consent page.
pub struct ConsentPage {
    pub reply: Reply,
    /// All cookies set by the page, as a ready `Cookie` header value (`name=value; ...`).
    pub cookie: Option<String>,
    /// Absolute URL the form posts to.
    pub action_url: String,
    /// Every `<input type="hidden">` as `(name, decoded value)`.
    pub hidden: Vec<(String, String)>,
}

/// A response read to the end, so status, headers and body can all be asserted on.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn read(resp: Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("read the response body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.body))
    }

    pub fn location(&self) -> Url {
        let location = self.header("location").unwrap_or_else(|| {
            panic!("no Location header (status {}): {}", self.status, self.body)
        });
        Url::parse(location).unwrap_or_else(|error| panic!("bad Location {location}: {error}"))
    }

    /// Query parameters of the `Location` header, decoded.
    pub fn location_query(&self) -> HashMap<String, String> {
        self.location().query_pairs().into_owned().collect()
    }
}

// ----- assertions ----------------------------------------------------------------------------

/// JSON error `{"error": .., "error_description": ..}` with the given status and code. The
/// description (when present) must stay within the RFC 6749 charset: no `"` and no `\`.
pub fn assert_oauth_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(
        reply.status, status,
        "expected {status} {error}, got body: {}",
        reply.body
    );
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "error content-type: {content_type}"
    );
    let body = reply.json();
    assert_eq!(body["error"], error, "wrong error code in {body}");
    if let Some(description) = body.get("error_description") {
        let description = description
            .as_str()
            .unwrap_or_else(|| panic!("error_description is not a string: {body}"));
        assert!(
            !description.contains('"') && !description.contains('\\'),
            "error_description outside the allowed charset: {description:?}"
        );
    }
}

/// Token endpoint error: as [`assert_oauth_error`], plus `Cache-Control: no-store` and a
/// present `error_description`.
pub fn assert_token_error(reply: &Reply, status: u16, error: &str) {
    assert_oauth_error(reply, status, error);
    assert_no_store(reply);
    assert!(
        reply.json()["error_description"].is_string(),
        "missing error_description: {}",
        reply.body
    );
}

/// `invalid_client` after Basic auth: 401 plus a `WWW-Authenticate: Basic ...` challenge.
pub fn assert_basic_challenge(reply: &Reply) {
    assert_oauth_error(reply, 401, "invalid_client");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Basic"),
        "WWW-Authenticate should start with Basic, got {challenge:?}"
    );
}

pub fn assert_no_store(reply: &Reply) {
    let cache_control = reply.header("cache-control").unwrap_or_default();
    assert!(
        cache_control.contains("no-store"),
        "Cache-Control should contain no-store, got {cache_control:?}"
    );
}

/// The error page /authorize shows before client and redirect URI are trusted: a 400 HTML
/// page that never redirects (OAuth 2.1 §4.1.2.1, no open redirector).
pub fn assert_error_page(reply: &Reply) {
    assert_eq!(reply.status, 400, "expected the error page: {}", reply.body);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "error page content-type: {content_type}"
    );
    assert!(
        reply.header("location").is_none(),
        "the error page must not redirect"
    );
}

/// An authorization error delivered by `303` to `redirect_uri` with `error`, the exact
/// `state`, and `iss` (RFC 9207), and no code.
pub fn assert_redirect_error(
    app: &TestApp,
    reply: &Reply,
    redirect_uri: &str,
    error: &str,
    state: &str,
) {
    assert_eq!(
        reply.status, 303,
        "expected a 303 error redirect: {}",
        reply.body
    );
    let location = reply.location();
    assert!(
        location.as_str().starts_with(&format!("{redirect_uri}?")),
        "redirected to {location}, expected {redirect_uri}"
    );
    let query = reply.location_query();
    assert_eq!(
        query.get("error").map(String::as_str),
        Some(error),
        "{location}"
    );
    assert_eq!(
        query.get("state").map(String::as_str),
        Some(state),
        "{location}"
    );
    assert_eq!(
        query.get("iss").map(String::as_str),
        Some(app.issuer()),
        "{location}"
    );
    assert!(
        !query.contains_key("code"),
        "an error redirect carries no code"
    );
}

/// RFC 7662 answer for anything that is not an active token: exactly `{"active": false}`.
pub fn assert_inactive(body: &Value) {
    assert_eq!(body, &json!({ "active": false }));
}

// ----- small utilities -------------------------------------------------------------------------

/// PKCE pair: 32 random bytes as base64url verifier, S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = challenge_for(&verifier);
    (verifier, challenge)
}

/// `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()).as_slice())
}

/// `Authorization: Basic` value; id and secret are form-urlencoded first (OAuth 2.1 §2.4.1).
pub fn basic_auth(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

/// Demo-client authorize parameters for a valid request; tests tweak them with
/// [`set_param`] / [`remove_param`].
pub fn demo_authorize_params<'a>(challenge: &'a str, state: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", DEMO_REDIRECT_URI),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", ALL_SCOPES),
        ("state", state),
    ]
}

/// Replaces every `key` parameter with a single `key=value`.
pub fn set_param<'a>(params: &mut Vec<(&'a str, &'a str)>, key: &'a str, value: &'a str) {
    remove_param(params, key);
    params.push((key, value));
}

pub fn remove_param(params: &mut Vec<(&str, &str)>, key: &str) {
    params.retain(|(name, _)| *name != key);
}

/// The JSON-RPC message carrying a result or error in an MCP response body: the body
/// itself when it is JSON, else the first such message among its SSE `data:` lines.
pub fn rpc_result(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in body: {body}"))
}

/// `GET /metrics`, asserting 200: the Prometheus text.
pub async fn scrape(app: &TestApp) -> String {
    let reply = Reply::read(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The value of the sample line `name{labels}` in a scrape, or 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().expect("numeric sample"))
}

/// The `name=value` pair of every `Set-Cookie` header, as a browser would send them back.
pub fn cookie_pairs(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .map(|pair| pair.trim().to_owned())
        .collect()
}

/// A string field of a JSON object, or a panic naming what was missing.
pub fn str_field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {name:?} in {body}"))
        .to_owned()
}

/// Space-separated scope string as a set, so tests do not depend on scope order.
pub fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

/// `aud` may be a string or an array of strings (RFC 7662 §2.2).
pub fn aud_contains(aud: &Value, expected: &str) -> bool {
    match aud {
        Value::String(aud) => aud == expected,
        Value::Array(values) => values.iter().any(|value| value.as_str() == Some(expected)),
        _ => false,
    }
}

// ----- a tiny HTML scraper (enough for our own consent page) -------------------------------

/// Every start tag `<name ...>` in `html`, as its list of `(attribute, decoded value)`.
pub fn find_tags(html: &str, name: &str) -> Vec<Vec<(String, String)>> {
    // ASCII lowercasing keeps byte offsets identical, so positions map back onto `html`.
    let lower = html.to_ascii_lowercase();
    let needle = format!("<{}", name.to_ascii_lowercase());
    let mut tags = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find(&needle) {
        let start = from + found + needle.len();
        let boundary = html[start..].chars().next();
        if !matches!(boundary, Some(c) if c.is_ascii_whitespace() || c == '>' || c == '/') {
            // `<inputs` or similar: not our tag.
            from = start;
            continue;
        }
        let (attrs, consumed) = parse_attributes(&html[start..]);
        tags.push(attrs);
        from = start + consumed;
    }
    tags
}

/// Parses attributes up to the closing `>` of a tag; returns them and the bytes consumed.
fn parse_attributes(tag: &str) -> (Vec<(String, String)>, usize) {
    let bytes = tag.as_bytes();
    let len = bytes.len();
    let mut attrs = Vec::new();
    let mut i = 0;
    loop {
        while i < len && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= len {
            return (attrs, len);
        }
        if bytes[i] == b'>' {
            return (attrs, i + 1);
        }
        let name_start = i;
        while i < len && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        let name = tag[name_start..i].to_ascii_lowercase();
        while i < len && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < len && bytes[i] == b'=' {
            i += 1;
            while i < len && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < len && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                i += 1;
                let value_start = i;
                while i < len && bytes[i] != quote {
                    i += 1;
                }
                value = decode(&tag[value_start..i]);
                i = (i + 1).min(len);
            } else {
                let value_start = i;
                while i < len && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = decode(&tag[value_start..i]);
            }
        }
        attrs.push((name, value));
    }
}

fn decode(raw: &str) -> String {
    html_escape::decode_html_entities(raw).into_owned()
}

/// Value of attribute `name` in a tag returned by [`find_tags`].
pub fn attr<'a>(tag: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tag.iter()
        .find(|(attr, _)| attr == name)
        .map(|(_, value)| value.as_str())
}

/// Every `<input type="hidden" name=.. value=..>` as `(name, value)`.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    find_tags(html, "input")
        .iter()
        .filter(|tag| attr(tag, "type").is_some_and(|kind| kind.eq_ignore_ascii_case("hidden")))
        .filter_map(|tag| {
            let name = attr(tag, "name")?;
            Some((
                name.to_owned(),
                attr(tag, "value").unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}
