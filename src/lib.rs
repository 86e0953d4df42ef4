//! # oauth-mcp
//!
//! An OAuth 2.1 authorization server (draft-ietf-oauth-v2-1, RFC 6749/6750, 7009, 7591,
//! 7636, 7662, 8414, 8707, 9207, 9700) built on actix and sled, made to protect an MCP server.
//!
//! ## Architecture
//! State lives in actix actors, each the single owner of its sled trees and in-memory
//! indexes; HTTP handlers hold no state and make no policy decisions, they exchange typed,
//! verb-named messages with the actors:
//!
//! - [`actors::ClientRegistry`] — registered clients and user accounts, client
//!   authentication, login throttling, registration rate limits, browser sign-in sessions.
//!   Users live here rather than in an actor of their own: both are principals that
//!   authenticate, both change rarely, and one small in-memory index serves every lookup.
//! - [`actors::ClientDocuments`] — clients named by client ID metadata documents: fetched
//!   through [`fetch`] beside the actor (one fetch per URL however many requests wait),
//!   cached as their HTTP cache headers allow; an actor of its own so that no document
//!   host can hold up the registry.
//! - [`actors::CodeIssuer`] — authorization codes: issue, single-use redemption, replay
//!   detection.
//! - [`actors::TokenLedger`] — access and refresh tokens: issue, rotate, introspect, revoke.
//! - [`actors::McpSessions`] — the MCP session table behind rmcp's session manager:
//!   owners, idle expiry, per-owner caps.
//!
//! Storage sits behind narrow asynchronous traits ([`storage::ClientStore`],
//! [`storage::CodeStore`], [`storage::TokenStore`]) whose writes are atomic intents (issue,
//! rotate, redeem once, revoke, register) that a database shared by several processes could
//! arbitrate; sled is the default implementation, and [`storage::postgres`] implements them
//! on PostgreSQL (used with `--database-url`, [`Config::database_url`]; one instance for
//! now). Answers that hand out a
//! credential or acknowledge a revocation are released only after a group-commit flush
//! ([`storage::Durable`]). `docs/architecture.md` in the repository has the diagrams.
//!
//! ## Embedding
//! Start the actors once, outside the `HttpServer` factory, mount the routes with
//! [`configure`] (or [`configure_authorization_server`] plus your own
//! [`mcp::McpEndpoint`] serving your own rmcp `ServerHandler`), and read the verified
//! caller in your tools with [`mcp::caller`]. This example starts a server on a temporary
//! directory and an ephemeral port and asks it for its metadata:
//!
//! ```
//! use std::sync::Arc;
//! use actix_web::{App, HttpServer};
//! use oauth_mcp::{clock::SystemClock, Config, Services};
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//!     let port = listener.local_addr()?.port();
//!     let mut config = Config::default();
//!     config.data_dir = dir.path().to_owned();
//!     let settings = config.settings(port)?;
//!     let db = oauth_mcp::open_db(&config)?;
//!     // Start the actors once, outside the HttpServer factory.
//!     let services = Services::start(settings, &db, Arc::new(SystemClock)).await?;
//!     let app_services = services.clone();
//!     let server = HttpServer::new(move || {
//!         let services = app_services.clone();
//!         App::new().configure(move |cfg| oauth_mcp::configure(cfg, &services))
//!     })
//!     .workers(1)
//!     .listen(listener)?
//!     .run();
//!     let handle = server.handle();
//!     actix_web::rt::spawn(server);
//!
//!     let url = format!("http://127.0.0.1:{port}/.well-known/oauth-authorization-server");
//!     let metadata: serde_json::Value = reqwest::get(url).await?.json().await?;
//!     // A loopback issuer answers with the host name the client used.
//!     assert_eq!(metadata["issuer"], format!("http://127.0.0.1:{port}"));
//!
//!     handle.stop(true).await;
//!     services.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! `examples/embed_in_host_app.rs` goes further: a host application with its own routes
//! and its own MCP tools.
//!
//! # Layout
//! - `config` — [`Config`] and validated [`config::Settings`].
//! - `domain` — secrets, PKCE, scopes, redirect URI rules, clients, grants, the clock.
//! - `storage` — store traits (one file per owner, atomic intents), sled implementations
//!   (`storage::sled`, one file per owner), PostgreSQL implementations (`storage::postgres`,
//!   the same shape, with embedded migrations), the short-lived state processes share
//!   (`storage::shared_state`: sign-in sessions, throttles, limits),
//!   binary record codecs, group commit.
//! - `actors` — the state owners of the authorization server and their messages, one folder
//!   or file per actor: `client_registry` (clients, users, sign-in), `client_documents`
//!   (metadata document cache and fetching), `code_issuer`, `token_ledger`, `mcp_sessions`.
//! - `oauth` — protocol parsing and documents (no actix, no storage), including the rules
//!   for client ID metadata documents.
//! - `fetch` — outbound HTTP: fetching client ID metadata documents with SSRF defences and
//!   fetch limits (used by `actors::client_documents`).
//! - `endpoints` — one file per endpoint: the orchestration of a request over the
//!   services, returning protocol types.
//! - `http` — routes, handlers, bearer protection (origin and token checks), HTML pages,
//!   request ids.
//! - `mcp` — the MCP layer on rmcp: the `/mcp` guard (session binding, the body's method
//!   and target, per-target scopes), the endpoint, the dispatch backstop, the demo server.
//! - `metrics` — the counters behind `GET /metrics`.
//! - `error` — the crate error and its single mapping to HTTP.
//! - `services` — starting the actors, asking them (timeout and metrics), stopping them;
//!   nothing about HTTP.
//! - `app` — the HTTP server over the services: `start`, `RunningServer`, and `configure`
//!   (the authorization server plus the demo MCP server).
//! - `admin` — `oauth-mcp admin`: clients, users and grants, live on PostgreSQL or through a
//!   running sled server's admin socket (Unix; `admin::socket::AdminSocket`, off unless
//!   the host serves it); export and import between backends.
//! - `cli`, `loadtest` — the binary's flags and its load generator.

#![warn(missing_docs)]

pub mod actors;
pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod endpoints;
pub mod error;
pub mod fetch;
pub mod http;
pub mod loadtest;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod services;
pub mod storage;

pub use app::{configure, start, RunningServer};
pub use config::Config;
pub use domain::clock;
pub use error::Error;
pub use http::configure_authorization_server;
/// The MCP SDK this crate is built on, re-exported so embedders use the same copy.
pub use rmcp;
/// The actix-web bridge for rmcp, re-exported for the same reason.
pub use rmcp_actix_web;
pub use services::{Services, StartError};
pub use storage::sled::open_db;
