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
//!   authentication, login throttling, registration rate limits. Users live here rather than
//!   in an actor of their own: both are principals that authenticate, both change rarely,
//!   and one small in-memory index serves every lookup.
//! - [`actors::CodeIssuer`] — authorization codes: issue, single-use redemption, replay
//!   detection.
//! - [`actors::TokenLedger`] — access and refresh tokens: issue, rotate, introspect, revoke.
//!
//! Storage sits behind narrow typed traits ([`storage::ClientStore`], [`storage::CodeStore`],
//! [`storage::TokenStore`]); sled is the implementation today. Replies that hand out a
//! credential or acknowledge a revocation wait for a group-commit flush.
//!
//! ## Embedding
//! ```no_run
//! use std::sync::Arc;
//! use actix_web::{App, HttpServer};
//! use oauth_mcp::{clock::SystemClock, Config, Services};
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = Config::default();
//!     let settings = config.settings(8000)?;
//!     let db = oauth_mcp::open_db(&config)?;
//!     // Start the actors once, outside the HttpServer factory.
//!     let services = Services::start(settings, &db, Arc::new(SystemClock)).await?;
//!     HttpServer::new(move || {
//!         let services = services.clone();
//!         App::new().configure(move |cfg| oauth_mcp::configure(cfg, &services))
//!     })
//!     .bind(("127.0.0.1", 8000))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//! - `config` — [`Config`] and validated [`config::Settings`].
//! - `domain` — secrets, PKCE, scopes, redirect URI rules, clients, the clock.
//! - `storage` — store traits, sled implementations, group commit.
//! - `actors` — the state owners and their messages.
//! - `oauth` — protocol parsing and documents (no actix, no storage).
//! - `flows` — the multi-actor orchestration of each endpoint.
//! - `http` — routes, handlers, HTML pages.
//! - `error` — the crate error and its single mapping to HTTP.
//! - `app` — starting and stopping everything.

pub mod actors;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod flows;
pub mod http;
pub mod loadtest;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod storage;

pub use app::{open_db, start, RunningServer, Services, StartError};
pub use config::Config;
pub use domain::clock;
pub use error::Error;
pub use http::{configure, configure_authorization_server};
/// The MCP SDK this crate is built on, re-exported so embedders use the same copy.
pub use rmcp;
/// The actix-web bridge for rmcp, re-exported for the same reason.
pub use rmcp_actix_web;
