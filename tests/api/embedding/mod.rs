//! Embedding: a host actix-web application starts the actors on its own sled database,
//! mounts the authorization server and an MCP endpoint serving its own rmcp handler, next
//! to its own routes. Its tool sees the verified caller, and its log notifications ride the
//! call's own POST stream.
//!
//! `host_app` mounts everything next to the host's routes; `scopes` checks that a host's own
//! tool, resource and prompt scopes fail closed.

// Logging is deprecated by SEP-2577 in rmcp 3 but is part of the protocol versions served.
#![allow(deprecated)]

mod host_app;
mod scopes;
