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
//!
//! Files: this one walks through the steps (`run`); `identity` (demo client or metadata
//! document), `login` (headless form or browser callback), `tokens` (oauth2-rs client,
//! refresh and revocation checks), `mcp` (the MCP session with the token).

#[path = "../common/mod.rs"]
mod common;
// The HTML scraper the tests use too (tests/api/helpers), kept once.
#[path = "../common/html.rs"]
mod html;
mod identity;
mod login;
mod mcp;
mod tokens;

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;

use oauth2::{
    basic::BasicClient, AuthorizationCode, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, Scope, TokenResponse as _,
};

use reqwest::{Client, StatusCode};

use serde_json::{json, Value};

use crate::common::{at, BoxError};
use crate::{
    identity::{serve_metadata_document, Identity},
    login::{browser_login, check_callback, headless_login},
    mcp::McpSession,
    tokens::{expect_invalid_grant, oauth_client, revoke_access_token, show_tokens, token_error},
};

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
