//! The actors that own the server's state. Each owns its storage (through a store trait)
//! and its in-memory indexes; nothing else touches them. Handlers talk to them with the
//! verb-named messages defined next to each actor.

pub mod client_registry;
pub mod code_issuer;
pub mod token_ledger;

use std::time::Duration;

use actix::{dev::ToEnvelope, Actor, Addr, Handler, Message};

pub use client_registry::ClientRegistry;
pub use code_issuer::CodeIssuer;
pub use token_ledger::TokenLedger;

/// Sends `msg` and waits at most `timeout`: a full mailbox or a slow actor becomes a
/// `MailboxError` (mapped to 503 / `temporarily_unavailable`), never a hang.
pub async fn ask<A, M>(
    addr: &Addr<A>,
    msg: M,
    timeout: Duration,
) -> Result<M::Result, actix::MailboxError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    addr.send(msg).timeout(timeout).await
}

/// Asks an actor to stop; it drops its store (and so its database handle) when it does.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Runs one background sweep of expired entries now (the actors also sweep on a timer).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, crate::storage::StorageError>")]
pub struct Sweep;
