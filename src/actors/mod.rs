//! The actors that own the server's state. Each owns its storage (through a store trait)
//! and its in-memory indexes; nothing else touches them. Handlers talk to them with the
//! verb-named messages defined next to each actor, through `Services::ask`.

pub mod client_registry;
pub mod code_issuer;
pub mod mcp_sessions;
pub mod token_cache;
pub mod token_ledger;

use actix::Message;

pub use client_registry::ClientRegistry;
pub use code_issuer::CodeIssuer;
pub use mcp_sessions::McpSessions;
pub use token_ledger::TokenLedger;

/// Asks an actor to stop; it drops its store (and so its database handle) when it does.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Runs one background sweep of expired entries now (the actors also sweep on a timer).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, crate::storage::StorageError>")]
pub struct Sweep;
