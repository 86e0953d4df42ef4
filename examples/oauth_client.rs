//! The whole OAuth 2.1 flow of an MCP client against a running oauth-mcp server, printed step
//! by step: discovery, PKCE, the authorization request, the callback, the code exchange, MCP
//! calls with the access token, refresh-token rotation and revocation.
//!
//! ```sh
//! cargo run --release                                    # the server, in one shell
//! cargo run --example oauth_client                       # opens a callback listener, you log in
//! cargo run --example oauth_client -- --headless         # logs in as demo_user by itself
//! cargo run --example oauth_client -- --url http://127.0.0.1:9000 --refresh-grace 0
//!
//! # as a client ID metadata document instead of the demo client; the server must fetch
//! # from plain http on loopback, which only its development settings allow:
//! cargo run --release -- --client-metadata-allow-http --client-metadata-allow-private
//! cargo run --example oauth_client -- --headless --client-metadata-document
//! ```
//!
//! The OAuth client side is the `oauth2` crate (oauth2-rs), so this example is also an
//! interoperability check of the server against a widely used client library. The MCP side
//! is plain Streamable HTTP: JSON-RPC in a POST, the answer in an SSE `data:` line.
//!
//! It uses the seeded demo client (`demo_client` / `demo_secret`, redirect URI
//! `http://127.0.0.1:8765/callback`), or with `--client-metadata-document` no registration
//! at all: it serves its own metadata document on a loopback port and uses that URL as its
//! `client_id` (a public client, MCP 2025-11-25). With `--headless` it uses the demo user
//! (`demo_user` / `demo_password`). Without `--headless` it listens on that redirect URI and
//! prints the authorization URL for you to open in a browser.
//!
//! Every check a client must make is made; the first that fails ends the program with a
//! message and exit code 1.

mod common;
// The HTML scraper the tests use too (tests/api/helpers), kept once.
#[path = "common/html.rs"]
mod html;

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use common::{at, indent, pretty, BoxError, Discovery, ACCEPT_MCP, PROTOCOL_VERSION};
use oauth2::{
    basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse},
    AccessToken, AuthUrl, AuthorizationCode, ClientId, ClientSecret, ConfigurationError, CsrfToken,
    EndpointNotSet, EndpointSet, PkceCodeChallenge, RedirectUrl, RequestTokenError, RevocationUrl,
    Scope, StandardRevocableToken, TokenResponse as _, TokenUrl,
};
use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use url::Url;

/// The seeded demo client (confidential, `client_secret_basic`).
const CLIENT_ID: &str = "demo_client";
const CLIENT_SECRET: &str = "demo_secret";
/// One of the demo client's registered redirect URIs.
const REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";
const CALLBACK_ADDR: &str = "127.0.0.1:8765";
/// The seeded demo user, for `--headless`.
const USERNAME: &str = "demo_user";
const PASSWORD: &str = "demo_password";
/// How long to wait for the browser to come back to the callback listener.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// oauth2-rs's client with an authorization, a revocation and a token endpoint set.
type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet>;

/// Runs the OAuth 2.1 authorization-code flow with PKCE against an oauth-mcp server, then
/// uses, refreshes and revokes the tokens.
#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Log in as demo_user through the login and consent form instead of waiting for a
    /// browser on the callback listener.
    #[arg(long)]
    headless: bool,
    /// The server's --refresh-grace (seconds in which a rotated-out refresh token is still
    /// accepted); the example waits that long before showing that the old token is refused.
    #[arg(long, default_value_t = 10)]
    refresh_grace: u64,
    /// Identify with a client ID metadata document served by this program (on a loopback
    /// port, over http) instead of the demo client. The server must run with
    /// --client-metadata-allow-http --client-metadata-allow-private.
    #[arg(long)]
    client_metadata_document: bool,
}

/// Who this program is to the server.
enum Identity {
    /// The seeded confidential demo client (`client_secret_basic`).
    Demo,
    /// A public client whose `client_id` is the URL of the metadata document it serves.
    Document { url: String },
}

impl Identity {
    fn client_id(&self) -> &str {
        match self {
            Self::Demo => CLIENT_ID,
            Self::Document { url } => url,
        }
    }

    fn secret(&self) -> Option<&str> {
        match self {
            Self::Demo => Some(CLIENT_SECRET),
            Self::Document { .. } => None,
        }
    }

    /// The client authentication used at the token and revocation endpoints.
    fn auth_method(&self) -> &'static str {
        match self {
            Self::Demo => "client_secret_basic",
            Self::Document { .. } => "none: client_id only",
        }
    }
}

/// Serves a client ID metadata document for this program on a loopback port, and returns
/// its URL, which is then the `client_id`. The document lists the callback as the only
/// redirect URI; the server fetches it when it first sees the `client_id`.
async fn serve_metadata_document() -> Result<Identity, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://127.0.0.1:{}/oauth-client.json",
        listener.local_addr()?.port()
    );
    let document = json!({
        "client_id": url,
        "client_name": "oauth_client example",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    println!("{}", indent(&pretty(&document)));
    let body = document.to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                // One read holds a GET's head; whatever it asked for gets the document.
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=300\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(Identity::Document { url })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => {
            println!();
            println!("oauth_client: OK, every step passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oauth_client: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn step(title: &str) {
    println!();
    println!("=== {title} ===");
}

/// The last characters of a secret: enough to tell values apart, not enough to use one. (The
/// server's tokens and codes start with their issue time, so their heads look alike.)
fn short(secret: &str) -> String {
    let count = secret.chars().count();
    let tail: String = secret.chars().skip(count.saturating_sub(8)).collect();
    format!("…{tail} ({count} chars)")
}

async fn run(args: &Args) -> Result<(), BoxError> {
    let base = common::base_url(&args.url)?;
    let mcp_url = format!("{base}/mcp");
    // No redirects: a token endpoint must not be able to bounce our credentials elsewhere
    // (oauth2-rs recommends this), and the consent form's 303 is read, not followed.
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    step("1. Discovery (RFC 9728, RFC 8414)");
    let found = common::discover(&http, &mcp_url).await?;
    let identity = if args.client_metadata_document {
        step("1b. Client ID metadata document (instead of registration)");
        if at(&found.metadata, "/client_id_metadata_document_supported") != true {
            return Err(
                "the server does not advertise client_id_metadata_document_supported".into(),
            );
        }
        serve_metadata_document().await?
    } else {
        Identity::Demo
    };
    println!("client_id = {}", identity.client_id());
    let client = oauth_client(&found, &identity)?;
    // MCP authorization, "Scope Selection Strategy": the challenge's scope first.
    let scope = found
        .challenge_scope
        .clone()
        .or_else(|| {
            at(&found.metadata, "/scopes_supported/0")
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();

    step("2. PKCE (RFC 7636, S256)");
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    println!("code_verifier  = {}", verifier.secret());
    println!(
        "code_challenge = BASE64URL(SHA256(code_verifier)) = {}",
        challenge.as_str()
    );

    step("3. Authorization request");
    let (auth_url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scope.split_whitespace().map(|s| Scope::new(s.to_owned())))
        .set_pkce_challenge(challenge)
        // RFC 8707: the token is for this MCP server and no other.
        .add_extra_param("resource", &found.resource)
        .url();
    println!(
        "state = {} (random; must come back unchanged)",
        state.secret()
    );
    println!("scope = {scope:?}, resource = {}", found.resource);
    println!("{auth_url}");
    for (name, value) in auth_url.query_pairs() {
        println!("  {name} = {value}");
    }

    step("4. The user signs in and approves");
    let callback = if args.headless {
        headless_login(&http, &auth_url).await?
    } else {
        browser_login(&auth_url).await?
    };
    println!("callback: {callback}");
    let code = check_callback(&callback, state.secret(), &found)?;

    step(&format!(
        "5. Code exchange (POST token_endpoint, {} + code_verifier)",
        identity.auth_method()
    ));
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .add_extra_param("resource", &found.resource)
        .request_async(&http)
        .await
        .map_err(|e| format!("code exchange: {}", token_error(&e)))?;
    show_tokens(&tokens);
    let access1 = tokens.access_token().clone();
    let refresh1 = tokens
        .refresh_token()
        .ok_or("the token response has no refresh_token")?
        .clone();

    step("6. MCP over Streamable HTTP with the access token");
    let mut mcp = McpSession::new(&http, &mcp_url);
    let init = mcp.initialize(&access1).await?;
    println!(
        "initialize -> server {} {}, protocol {}, session {}",
        at(&init, "/serverInfo/name").as_str().unwrap_or("?"),
        at(&init, "/serverInfo/version").as_str().unwrap_or("?"),
        at(&init, "/protocolVersion").as_str().unwrap_or("?"),
        mcp.session.as_deref().unwrap_or("(none)")
    );
    let tools = mcp.request(&access1, "tools/list", json!({})).await?;
    let names: Vec<&str> = at(&tools, "/tools")
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| at(t, "/name").as_str())
                .collect()
        })
        .unwrap_or_default();
    println!("tools/list -> {}", names.join(", "));
    let whoami = mcp
        .call_tool(&access1, "whoami", json!({}))
        .await
        .map_err(|e| format!("tools/call whoami: {e}"))?;
    println!("tools/call whoami -> {whoami}");
    let me: Value = serde_json::from_str(&whoami).unwrap_or(Value::Null);
    if at(&me, "/client_id") != identity.client_id() {
        return Err(format!("whoami names another client: {whoami}").into());
    }
    if args.headless && at(&me, "/subject") != USERNAME {
        return Err(format!("whoami names another user: {whoami}").into());
    }

    step("7. Refresh with rotation (grant_type=refresh_token)");
    let refreshed = client
        .exchange_refresh_token(&refresh1)
        .add_extra_param("resource", &found.resource)
        .request_async(&http)
        .await
        .map_err(|e| format!("refresh: {}", token_error(&e)))?;
    let rotated_at = Instant::now();
    show_tokens(&refreshed);
    let access2 = refreshed.access_token().clone();
    let refresh2 = refreshed
        .refresh_token()
        .ok_or("the refresh response has no refresh_token")?
        .clone();
    if refresh2.secret() == refresh1.secret() || access2.secret() == access1.secret() {
        return Err("the refresh returned the same tokens: no rotation".into());
    }
    println!("a new refresh token replaces the old one (rotation, OAuth 2.1 §4.3.1)");
    let sum = mcp
        .call_tool(&access2, "add", json!({"a": 2, "b": 3}))
        .await
        .map_err(|e| format!("tools/call add with the new access token: {e}"))?;
    println!("tools/call add {{a: 2, b: 3}} with the new access token -> {sum}");
    if sum.trim() != "5" {
        return Err(format!("add returned {sum:?}, expected 5").into());
    }
    mcp.close(&access2).await?;

    step("8. Revocation (RFC 7009)");
    revoke_access_token(&http, &client, &identity, &access2).await?;
    // The same token called `add` a moment ago.
    let (status, challenge) = mcp.probe(&access2).await?;
    println!("POST /mcp with the revoked access token -> {status}");
    println!("  WWW-Authenticate: {challenge}");
    if status != StatusCode::UNAUTHORIZED {
        return Err(format!("a revoked access token got {status}, expected 401").into());
    }

    step("9. The rotated-out refresh token");
    // Within the grace window the server still answers the old token, with the same pair
    // it answered first (so parallel refreshes of one client converge); after it, any use
    // of it counts as theft.
    let wait = Duration::from_secs(args.refresh_grace.saturating_add(1))
        .saturating_sub(rotated_at.elapsed());
    if !wait.is_zero() {
        println!(
            "waiting {:.1} s for the server's refresh grace window ({} s, --refresh-grace) to pass",
            wait.as_secs_f64(),
            args.refresh_grace
        );
        tokio::time::sleep(wait).await;
    }
    let old = client
        .exchange_refresh_token(&refresh1)
        .request_async(&http)
        .await;
    expect_invalid_grant("the rotated-out refresh token", old, args.refresh_grace)?;
    // Reuse detection (OAuth 2.1 §4.3.1): the whole grant is revoked, so the newest refresh
    // token is dead too.
    let newest = client
        .exchange_refresh_token(&refresh2)
        .request_async(&http)
        .await;
    expect_invalid_grant(
        "the newest refresh token after that reuse",
        newest,
        args.refresh_grace,
    )?;
    println!("reusing a rotated-out refresh token revoked the whole grant (reuse detection)");
    Ok(())
}

/// oauth2-rs's client for `identity` and the discovered endpoints. Without a secret,
/// oauth2-rs sends `client_id` in the request body (a public client).
fn oauth_client(found: &Discovery, identity: &Identity) -> Result<OAuthClient, BoxError> {
    let client = BasicClient::new(ClientId::new(identity.client_id().to_owned()))
        .set_auth_uri(AuthUrl::new(found.endpoint("authorization_endpoint")?)?)
        .set_token_uri(TokenUrl::new(found.endpoint("token_endpoint")?)?)
        .set_revocation_url(RevocationUrl::new(found.endpoint("revocation_endpoint")?)?)
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned())?);
    Ok(match identity.secret() {
        Some(secret) => client.set_client_secret(ClientSecret::new(secret.to_owned())),
        None => client,
    })
}

fn show_tokens(tokens: &BasicTokenResponse) {
    println!("token_type    = {:?}", tokens.token_type());
    println!("access_token  = {}", short(tokens.access_token().secret()));
    if let Some(refresh) = tokens.refresh_token() {
        println!("refresh_token = {}", short(refresh.secret()));
    }
    if let Some(expires_in) = tokens.expires_in() {
        println!("expires_in    = {} s", expires_in.as_secs());
    }
    if let Some(scopes) = tokens.scopes() {
        let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        println!("scope         = {}", scopes.join(" "));
    }
}

/// A readable message for an oauth2-rs token request error, with the server's error code.
fn token_error<E: std::error::Error>(
    e: &RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => format!(
            "the server answered {}{}",
            r.error(),
            r.error_description()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        RequestTokenError::Request(inner) => format!("request failed: {inner}"),
        RequestTokenError::Parse(inner, body) => format!(
            "unreadable response ({inner}): {}",
            String::from_utf8_lossy(body)
        ),
        RequestTokenError::Other(other) => other.clone(),
    }
}

fn expect_invalid_grant<E: std::error::Error>(
    what: &str,
    result: Result<BasicTokenResponse, RequestTokenError<E, oauth2::basic::BasicErrorResponse>>,
    grace: u64,
) -> Result<(), BoxError> {
    match result {
        Err(RequestTokenError::ServerResponse(r))
            if *r.error() == BasicErrorResponseType::InvalidGrant =>
        {
            println!(
                "{what} -> invalid_grant{}",
                r.error_description()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => Err(format!("{what}: expected invalid_grant, {}", token_error(&e)).into()),
        Ok(_) => Err(format!(
            "{what} was accepted; is the server's --refresh-grace longer than {grace} s? \
             (pass the same value with --refresh-grace)"
        )
        .into()),
    }
}

/// `--headless`: what a browser would do, done with plain HTTP. GET the authorization URL
/// (the login and consent page, which sets a CSRF cookie), then post the page's form with
/// the user's credentials and `action=approve`; the answer is a 303 to the redirect URI.
async fn headless_login(http: &Client, auth_url: &Url) -> Result<Url, BoxError> {
    println!("(--headless: signing in as {USERNAME} through the login form)");
    println!("GET {}", auth_url.path());
    let page = http.get(auth_url.clone()).send().await?;
    let status = page.status();
    let cookies: Vec<String> = page
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(|pair| pair.trim().to_owned())
        .collect();
    let html = page.text().await?;
    if status != StatusCode::OK {
        return Err(format!("the authorization request answered {status}: {html}").into());
    }
    let forms = html::find_tags(&html, "form");
    let form = forms.first().ok_or("the login page has no form")?;
    let action = auth_url.join(html::attr(form, "action").unwrap_or_default())?;
    let mut fields = html::hidden_inputs(&html);
    let csrf = fields
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.clone())
        .ok_or("the login form has no csrf field")?;
    println!("  <- 200, the login and consent page");
    for cookie in &cookies {
        let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
        println!(
            "  Set-Cookie: {name}={} (sent back with the form)",
            short(value)
        );
    }
    println!("  form action {action}, csrf field {}", short(&csrf));
    let carried: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    println!("  hidden fields: {}", carried.join(", "));
    fields.extend([
        ("username".to_owned(), USERNAME.to_owned()),
        ("password".to_owned(), PASSWORD.to_owned()),
        ("action".to_owned(), "approve".to_owned()),
    ]);
    println!(
        "POST {} (hidden fields + username, password, action=approve; Cookie)",
        action.path()
    );
    let reply = http
        .post(action)
        .header(header::COOKIE, cookies.join("; "))
        .form(&fields)
        .send()
        .await?;
    let status = reply.status();
    let location = reply
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    println!("  <- {status}");
    match location {
        Some(location) if status == StatusCode::SEE_OTHER => Ok(Url::parse(&location)?),
        _ => Err(format!(
            "the consent form answered {status}, expected a 303 to the redirect URI: {}",
            reply.text().await.unwrap_or_default()
        )
        .into()),
    }
}

/// Without `--headless`: listen on the redirect URI, ask the user to open the authorization
/// URL, and wait for the browser to come back with the code.
async fn browser_login(auth_url: &Url) -> Result<Url, BoxError> {
    let listener = tokio::net::TcpListener::bind(CALLBACK_ADDR).await.map_err(|e| {
        format!("cannot listen on {CALLBACK_ADDR}, the demo client's redirect URI ({e}); try --headless")
    })?;
    println!("Listening on {REDIRECT_URI}. Open this URL in a browser and sign in as");
    println!("{USERNAME} / {PASSWORD}:");
    println!();
    println!("  {auth_url}");
    println!();
    tokio::time::timeout(CALLBACK_TIMEOUT, accept_callback(&listener))
        .await
        .map_err(|_| format!("no callback within {} s", CALLBACK_TIMEOUT.as_secs()))?
}

/// Serves the loopback redirect URI until a request for its path arrives (RFC 8252 §7.3).
async fn accept_callback(listener: &tokio::net::TcpListener) -> Result<Url, BoxError> {
    let redirect = Url::parse(REDIRECT_URI)?;
    loop {
        let (mut socket, _) = listener.accept().await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        let head = String::from_utf8_lossy(&head);
        let target = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("GET "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default();
        let url = redirect.join(target)?;
        if url.path() != redirect.path() {
            // The browser's favicon request and the like.
            socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
            continue;
        }
        let page = "<!doctype html><title>oauth_client</title><p>Done: you can close this \
                    window and go back to the terminal.</p>";
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{page}",
            page.len()
        );
        socket.write_all(response.as_bytes()).await?;
        return Ok(url);
    }
}

/// Checks the authorization response (OAuth 2.1 §4.1.2, RFC 9207) and returns the code.
fn check_callback(callback: &Url, state: &str, found: &Discovery) -> Result<String, BoxError> {
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    if let Some(error) = param("error") {
        return Err(format!(
            "the authorization server refused: {error} {}",
            param("error_description").unwrap_or_default()
        )
        .into());
    }
    // CSRF protection of the redirect URI: the state we sent, exactly.
    if param("state").as_deref() != Some(state) {
        return Err(format!("state mismatch: sent {state}, got {:?}", param("state")).into());
    }
    println!("state matches what we sent");
    // RFC 9207 §2.4: a server that advertises iss must send it, and it must be the issuer
    // we discovered (mix-up defence).
    let advertised = *at(
        &found.metadata,
        "/authorization_response_iss_parameter_supported",
    ) == true;
    match param("iss") {
        Some(iss) if iss == found.issuer => {
            println!("iss = {iss}, the discovered issuer (RFC 9207)")
        }
        Some(iss) => {
            return Err(format!("iss {iss} is not the discovered issuer {}", found.issuer).into())
        }
        None if advertised => {
            return Err("the server advertises the iss parameter but sent none (RFC 9207)".into())
        }
        None => println!("no iss parameter (the server does not advertise RFC 9207)"),
    }
    let code = param("code").ok_or("the callback carries no code")?;
    println!("code = {}", short(&code));
    Ok(code)
}

/// RFC 7009 revocation of an access token. oauth2-rs refuses to send it to an `http`
/// endpoint (RFC 7009 §2: clients MUST verify that the revocation URL is https); this
/// server runs on loopback http, so the same request is then made by hand.
async fn revoke_access_token(
    http: &Client,
    client: &OAuthClient,
    identity: &Identity,
    token: &AccessToken,
) -> Result<(), BoxError> {
    let revocable = StandardRevocableToken::AccessToken(token.clone());
    match client.revoke_token(revocable) {
        Ok(request) => {
            request
                .request_async(http)
                .await
                .map_err(|e| format!("revocation: {e}"))?;
            println!("revoked with oauth2-rs");
        }
        Err(ConfigurationError::InsecureUrl(_)) => {
            let url = client.revocation_url().url().clone();
            println!("oauth2-rs refuses a non-https revocation URL (RFC 7009 §2); the same request by hand:");
            println!(
                "POST {url}  token=…&token_type_hint=access_token  ({})",
                identity.auth_method()
            );
            let mut form = vec![
                ("token", token.secret().as_str()),
                ("token_type_hint", "access_token"),
            ];
            let request = match identity.secret() {
                Some(secret) => http
                    .post(url)
                    .basic_auth(identity.client_id(), Some(secret)),
                None => {
                    form.push(("client_id", identity.client_id()));
                    http.post(url)
                }
            };
            let reply = request.form(&form).send().await?;
            let status = reply.status();
            println!("  <- {status}");
            if status != StatusCode::OK {
                let body = reply.text().await.unwrap_or_default();
                return Err(format!("revocation answered {status}: {body}").into());
            }
        }
        Err(e) => return Err(format!("revocation: {e}").into()),
    }
    Ok(())
}

/// A minimal MCP client over Streamable HTTP: JSON-RPC requests in POSTs, answers as JSON or
/// as an SSE stream, the session in `Mcp-Session-Id`.
struct McpSession<'a> {
    http: &'a Client,
    url: &'a str,
    session: Option<String>,
    next_id: u64,
}

impl<'a> McpSession<'a> {
    fn new(http: &'a Client, url: &'a str) -> Self {
        Self {
            http,
            url,
            session: None,
            next_id: 1,
        }
    }

    fn post(&self, token: &AccessToken, body: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url)
            .bearer_auth(token.secret())
            .header(header::ACCEPT, ACCEPT_MCP)
            .json(body);
        if let Some(session) = &self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        request
    }

    /// `initialize`, then the `notifications/initialized` that completes the handshake.
    async fn initialize(&mut self, token: &AccessToken) -> Result<Value, BoxError> {
        let id = self.take_id();
        let reply = self
            .post(
                token,
                &common::initialize_request(id, "oauth_client example"),
            )
            .send()
            .await?;
        self.session = reply
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let result = Self::result(reply, id).await?;
        let notified = self
            .post(
                token,
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .send()
            .await?;
        if notified.status() != StatusCode::ACCEPTED {
            return Err(format!(
                "notifications/initialized answered {}, expected 202",
                notified.status()
            )
            .into());
        }
        Ok(result)
    }

    async fn request(
        &mut self,
        token: &AccessToken,
        method: &str,
        params: Value,
    ) -> Result<Value, BoxError> {
        let id = self.take_id();
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = self.post(token, &body).send().await?;
        Self::result(reply, id)
            .await
            .map_err(|e| format!("{method}: {e}").into())
    }

    /// `tools/call`; the text of the result, or an error if the tool reported one.
    async fn call_tool(
        &mut self,
        token: &AccessToken,
        name: &str,
        arguments: Value,
    ) -> Result<String, BoxError> {
        let result = self
            .request(
                token,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )
            .await?;
        let text: String = at(&result, "/content")
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| at(b, "/text").as_str())
                    .collect()
            })
            .unwrap_or_default();
        if *at(&result, "/isError") == true {
            return Err(format!("the tool reported an error: {text}").into());
        }
        Ok(text)
    }

    /// `DELETE /mcp`: ends the session (MCP Streamable HTTP, "Session Management").
    async fn close(&mut self, token: &AccessToken) -> Result<(), BoxError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let reply = self
            .http
            .delete(self.url)
            .bearer_auth(token.secret())
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .send()
            .await?;
        println!("DELETE /mcp (end the session) -> {}", reply.status());
        if !reply.status().is_success() {
            return Err(format!("DELETE /mcp answered {}", reply.status()).into());
        }
        Ok(())
    }

    /// A fresh `initialize` with `token`; the status and the `WWW-Authenticate` header.
    async fn probe(&self, token: &AccessToken) -> Result<(StatusCode, String), BoxError> {
        let reply = self
            .http
            .post(self.url)
            .bearer_auth(token.secret())
            .header(header::ACCEPT, ACCEPT_MCP)
            .json(&common::initialize_request(1, "oauth_client example"))
            .send()
            .await?;
        let challenge = reply
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        Ok((reply.status(), challenge))
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The `result` of the JSON-RPC response with `id`, from a JSON body or from the
    /// `data:` lines of an SSE body.
    async fn result(reply: reqwest::Response, id: u64) -> Result<Value, BoxError> {
        let status = reply.status();
        let is_sse = reply
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let body = reply.text().await?;
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}: {body}").into());
        }
        let messages: Vec<Value> = if is_sse {
            // Events are separated by blank lines; an event's data is its `data:` lines.
            body.split("\n\n")
                .map(|event| {
                    event
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .map(|data| data.strip_prefix(' ').unwrap_or(data))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .filter(|data| !data.is_empty())
                .filter_map(|data| serde_json::from_str(&data).ok())
                .collect()
        } else {
            vec![serde_json::from_str(&body)?]
        };
        let response = messages
            .into_iter()
            .find(|m| *at(m, "/id") == id)
            .ok_or_else(|| format!("no JSON-RPC response with id {id} in: {body}"))?;
        if let Some(error) = response.get("error") {
            return Err(format!("JSON-RPC error: {}", pretty(error)).into());
        }
        response.get("result").cloned().ok_or_else(|| {
            format!("a response without result: {}", indent(&pretty(&response))).into()
        })
    }
}
