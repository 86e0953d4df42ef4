//! What an MCP client sees before it has a token: `POST /mcp` (`initialize`) is refused with
//! `401` and a `WWW-Authenticate: Bearer` challenge, which points to the protected resource
//! metadata (RFC 9728), which points to the authorization server and its metadata (RFC 8414).
//!
//! ```sh
//! cargo run --release                                   # the server, in one shell
//! cargo run --example simple_client [-- --url http://127.0.0.1:8000]
//! ```
//!
//! Exits non-zero, with a message, if any step is not what the specifications require. The
//! next step, getting a token, is `examples/oauth_client/`.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::BoxError;

/// Discovers how to authorize against an oauth-mcp server, without a token.
#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simple_client: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), BoxError> {
    let mcp_url = format!("{}/mcp", common::base_url(&args.url)?);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let found = common::discover(&http, &mcp_url).await?;
    println!();
    println!("To call {} a client needs a token:", found.resource);
    println!("  from the authorization server {}", found.issuer);
    println!(
        "  via {} and {}",
        found.endpoint("authorization_endpoint")?,
        found.endpoint("token_endpoint")?
    );
    println!(
        "  with scope {:?} (from the challenge), PKCE S256 and resource={}",
        found.challenge_scope.as_deref().unwrap_or("(none given)"),
        found.resource
    );
    println!("simple_client: OK (examples/oauth_client/ goes on from here)");
    Ok(())
}
