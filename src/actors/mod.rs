//! The actors that own the server's state. Each owns its storage (through a store trait)
//! and its in-memory indexes; nothing else touches them. Handlers talk to them with the
//! verb-named messages defined next to each actor, through `Services::ask`.

pub mod change_feed;
pub mod client_documents;
pub mod client_registry;
pub mod code_issuer;
pub mod mcp_sessions;
pub mod token_cache;
pub mod token_ledger;

use actix::prelude::*;
use futures_util::FutureExt as _;

use crate::storage::{StorageError, StoreFuture};

pub use client_documents::ClientDocuments;
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

/// Finishes a message with a store's answer: `then` runs on the actor with the answer, and
/// its value is the reply.
///
/// The answer is polled once at once: a backend that does its work inside the call (sled)
/// answers a ready future, and the reply then goes out in this very handler, as it did
/// when the stores were synchronous (no boxed actor future, no spawn on the hot paths).
/// Otherwise the actor handles other messages meanwhile and `then` runs
/// when the answer arrives, so an actor may update its in-memory state only in `then`,
/// from the answer, and must stay correct whatever ran in between (each actor's docs say
/// why it does).
pub(crate) fn reply_after<A, T, R>(
    act: &mut A,
    mut answer: StoreFuture<T>,
    then: impl FnOnce(&mut A, Result<T, StorageError>) -> R + 'static,
) -> ActorResponse<A, R>
where
    A: Actor<Context = Context<A>>,
    T: 'static,
    R: 'static,
{
    match (&mut answer).now_or_never() {
        Some(out) => ActorResponse::reply(then(act, out)),
        None => ActorResponse::r#async(
            answer
                .into_actor(act)
                .map(move |out, act, _| then(act, out)),
        ),
    }
}
