//! HTTP integration tests for oauth-mcp: one test binary, one server per test (see `helpers`).

mod helpers;

mod authorize;
mod concurrency;
mod mcp;
mod metadata;
mod refresh;
mod registration;
mod restart;
mod revoke_introspect;
mod token;
