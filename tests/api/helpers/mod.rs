//! Test harness shared by every module of the `api` test binary (zero2prod style).
//!
//! Each test gets its own server: a port-0 listener on 127.0.0.1, a fresh sled directory inside a
//! `TempDir`, and a `ManualClock` pinned at [`START_UNIX`] so that expiry tests advance time
//! instead of sleeping. `TestApp` then offers one helper per OAuth step (consent page, decision,
//! token, refresh, revoke, introspect, register) so that each test reads as the protocol it checks.
//!
//! One concern a file: `app` (spawning, restarting, URLs), `cluster` (several real server
//! processes on one PostgreSQL database), `authorize` (the consent page and the
//! code flow, PKCE), `token` (token, revoke, introspect), `register`, `mcp`, `metrics`,
//! `document_host` (a local web site serving client ID metadata documents), `postgres` (a
//! database of the shared test cluster), `pg_cluster` (a PostgreSQL cluster of one test's
//! own, to stop and start), `reply`
//! (reading responses), `assertions` (the OAuth error shapes) and `html`, the scraper shared
//! with the client examples. Everything is re-exported here, so tests import
//! `crate::helpers::...`.
#![allow(dead_code, reason = "not every test module uses every helper")]

mod app;
mod assertions;
mod authorize;
mod cluster;
mod document_host;
// The same scraper the client examples use (examples/oauth_client), kept once.
#[path = "../../../examples/common/html.rs"]
mod html;
mod mcp;
mod metrics;
mod pg_cluster;
mod postgres;
mod register;
mod reply;
mod token;

// `token` and `register` add methods to `TestApp` only; `token::basic_auth` is theirs.
pub use self::{
    app::*, assertions::*, authorize::*, cluster::*, document_host::*, html::*, mcp::*, metrics::*,
    pg_cluster::*, postgres::*, reply::*,
};

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
