//! HTTP integration tests for oauth-mcp: one test binary, one server per test (see `helpers`).

// Test code may panic on failure: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod helpers;

mod admin;
mod authorize;
mod client_metadata;
mod concurrency;
mod crash;
mod demo_seeding;
mod embed_example;
mod embedding;
mod forms;
mod interop;
mod limits;
mod logs;
mod mcp;
mod metadata;
mod metrics;
mod multi_instance;
mod ops;
mod postgres;
mod probes;
mod refresh;
mod registration;
mod restart;
mod revoke_introspect;
mod shutdown;
mod sso;
mod token;
