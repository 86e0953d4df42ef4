//! Storage behind narrow, typed interfaces: one trait per owning actor ([`TokenStore`] in
//! `token_store.rs`, [`CodeStore`] in `code_store.rs`, [`ClientStore`] in
//! `client_store.rs`), with sled implementations in [`sled`] (one file per owner), and
//! [`SharedState`] (`shared_state.rs`): the short-lived state every process of a deployment
//! shares (sign-in sessions, throttles, limits), in memory beside sled and in a table on
//! PostgreSQL. Policy code
//! (the actors) sees only these traits and domain types, never sled, so a shared PostgreSQL
//! backend can be added without touching policy.
//!
//! # Intents, not reads and writes
//! Every rule that needs atomicity is one method, an *intent*: issue tokens (refused into a
//! revoked grant), rotate a refresh token given the presented one, revoke a token or a
//! grant, redeem a code once, register a client under the global bound. Each method's doc
//! says what is atomic: a backend shared by several server processes implements it with
//! one statement or one transaction, and the database arbitrates between the processes.
//! Policy (lifetimes, the grace window, what reuse revokes, how long a revocation lasts) is
//! the actor's: it is passed in as parameters, and the store executes it.
//!
//! On sled the contract is met by ownership: exactly one actor owns each tree and handles
//! one message at a time, and the sled store does an intent's reads and writes inside the
//! call, so intents never interleave (a get-then-put sequence is atomic there). sled's
//! transactions would give the same guarantee at a cost, and buy nothing with one owner.
//!
//! # Futures
//! Every method answers a [`StoreFuture`], so a backend may be a network away. sled answers
//! ready futures ([`ready`]); the actors poll the answer once and reply at once when it is
//! ready, and otherwise finish the message when it completes (`actors::reply_after`), so
//! they are correct either way: in-memory state is updated from an intent's answer only.
//! Reads that are single reads stay single reads (a token lookup is one `get`); start-up
//! loads, bounded sweeps and the whole-tree walks of administration are futures too.
//!
//! # Durability
//! Every store has `persist()`, a future that resolves once every write made before the
//! call is on disk. The sled implementation batches these into one [`GroupCommit`] flush
//! for all callers that arrived meanwhile; the requester waits for it ([`Durable`]).

mod client_store;
mod code_store;
pub mod codec;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod group_commit;
pub mod postgres;
pub mod records;
pub mod shared_state;
pub mod sled;
mod token_store;

/// The sled implementations' former path, kept for embedders and tools that name it.
pub use self::sled as sled_store;

use futures_util::future::BoxFuture;

pub use client_store::{ClientStore, Registration};
pub use code_store::{CodeStore, Redemption};
pub use group_commit::{FlushObserver, GroupCommit};
pub use records::{
    CodeRecord, GrantHolder, GrantId, StoredCode, TokenKind, TokenRecord, UsedCodeRecord,
};
pub use shared_state::{MemorySharedState, SharedState};
pub use token_store::{
    DeriveSuccessors, GrantRevocation, IssueOutcome, NewToken, RotateOutcome, Rotation,
    RotationStep, Successors, TokenRevocation, TokenStore,
};

/// Storage failures. Never shown to clients beyond `server_error`, or
/// `temporarily_unavailable` for [`Unavailable`](Self::Unavailable).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached, or the connection was lost during the intent (its
    /// outcome is then unknown, so nothing it would have produced is handed out): a
    /// passing condition, answered 503 `temporarily_unavailable` with `Retry-After`
    /// (issue 14, "Loss of the database"). The next intent tries a new connection.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded.
    #[error("corrupt record in {tree}: {reason}")]
    Corrupt {
        /// Tree holding the record.
        tree: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// The flusher has stopped (shutdown in progress).
    #[error("storage is shutting down")]
    Closed,
    /// The database is held (exclusively locked) by another process or handle: a running
    /// server, or an administration command.
    #[error("the database is in use by another process ({0})")]
    InUse(String),
    /// The data directory was written in a format this build does not know (a newer
    /// oauth-mcp, or something else entirely): refused rather than misread.
    #[error(
        "the data directory has storage format {found}, but this oauth-mcp reads format \
         {supported} only; use the oauth-mcp version that wrote it (or a newer one)"
    )]
    UnsupportedFormat {
        /// The format recorded in the directory (or a description of what was found).
        found: String,
        /// The format this build reads and writes.
        supported: u32,
    },
    /// The PostgreSQL schema is outside the range of versions this build runs on: written
    /// by a newer oauth-mcp whose contract step no longer admits this one (see
    /// `postgres::migrations`).
    #[error(
        "the PostgreSQL schema version is {found} (runs builds of schema {readers_from} or \
         newer), but this oauth-mcp runs on schema versions {min} to {max}; upgrade it"
    )]
    UnsupportedSchema {
        /// The schema version found in the database.
        found: i32,
        /// The oldest build (by its newest schema version) that schema still admits.
        readers_from: i32,
        /// The oldest schema version this build runs on.
        min: i32,
        /// The newest schema version this build knows.
        max: i32,
    },
}

impl From<::sled::Error> for StorageError {
    fn from(e: ::sled::Error) -> Self {
        if is_lock_failure(&e) {
            Self::InUse(e.to_string())
        } else {
            Self::Database(e.to_string())
        }
    }
}

/// Whether `e` is sled's "another handle holds the database" failure at open.
///
/// sled 0.34 takes an exclusive `flock` on `<dir>/db` when it opens a directory and reports
/// failure only as an `Io` error of kind `Other` whose message starts with "could not
/// acquire lock on" (`Config::try_lock` in sled's `config.rs`); there is no dedicated
/// variant, so the message is the signal. The tests of `sled/mod.rs` open one directory
/// twice to catch a sled upgrade that changes it.
fn is_lock_failure(e: &::sled::Error) -> bool {
    matches!(e, ::sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::Other
            && io.to_string().starts_with("could not acquire lock on"))
}

/// A future that resolves when earlier writes are durable.
pub type Persist = BoxFuture<'static, Result<(), StorageError>>;

/// The answer of a store operation: a future, so that a backend may be a network away.
/// `'static`: it borrows nothing from the store or the arguments (a backend copies what it
/// needs before answering).
pub type StoreFuture<T> = BoxFuture<'static, Result<T, StorageError>>;

/// An answer known already: what a backend that does its work inside the call (sled)
/// returns.
pub fn ready<T: Send + 'static>(result: Result<T, StorageError>) -> StoreFuture<T> {
    Box::pin(std::future::ready(result))
}

/// An actor's answer that must not be acted on (shown to a client) before the writes behind
/// it are on disk: the answer, and the wait for those writes.
///
/// Why the requester waits rather than the actor: a reply future run by the actor is polled
/// on the actor's thread, so the flusher would wake that thread only for it to wake the
/// requester in turn. Handing the wait over lets the flusher wake the requester directly —
/// one cross-thread hop fewer per durable request (at concurrency 1 a visible share of the
/// latency), and the actor's thread is left to the messages of others.
#[must_use = "the answer may be used only after `wait`"]
pub struct Durable<T> {
    value: T,
    persist: Persist,
}

impl<T> Durable<T> {
    /// `value`, to be released once `persist` resolves.
    pub fn new(value: T, persist: Persist) -> Self {
        Self { value, persist }
    }
}

impl<U, E: From<StorageError>> Durable<Result<U, E>> {
    /// Waits for the writes, then answers the value. Errors wait too: a refused request may
    /// have written something (a refresh-token reuse revokes its grant), and that must be
    /// durable before anyone is told.
    pub async fn wait(self) -> Result<U, E> {
        self.persist.await?;
        self.value
    }
}

impl<T> std::fmt::Debug for Durable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Durable(..)")
    }
}

/// The revoked grants read at start-up.
#[derive(Debug, Default)]
pub struct RevokedGrants {
    /// Each revoked grant with its `forget_at` (`i64::MAX` when that could not be read).
    pub grants: Vec<(GrantId, i64)>,
    /// Records that could not be decoded (logged by the store, without secrets).
    pub undecodable: usize,
}

/// What one bounded sweep slice did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Entries removed (expired tokens or codes, forgotten markers).
    pub removed: usize,
    /// Revoked grants forgotten (removed from the store): the owner drops them from its
    /// in-memory set too.
    pub forgotten_grants: Vec<GrantId>,
    /// Revocation records that could not be decoded, met in this slice: kept (fail closed)
    /// and logged by the store, counted here for the metric.
    pub undecodable_revocations: usize,
    /// Of those, the grants still identifiable (only the forget time was unreadable): the
    /// owner keeps them revoked for good.
    pub undecodable_grants: Vec<GrantId>,
}
