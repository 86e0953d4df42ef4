//! Storage behind narrow, typed interfaces: one trait per owning actor, with sled
//! implementations in [`sled`] (one file per owner). Policy code (the actors) sees only
//! these traits and domain types, never sled, so a shared PostgreSQL backend can be added
//! later without touching policy.
//!
//! Durability: every store has `persist()`, a future that resolves once every write made
//! before the call is on disk. The sled implementation batches these into one
//! [`GroupCommit`] flush for all callers that arrived meanwhile.

pub mod codec;
pub mod group_commit;
pub mod records;
pub mod sled;

/// The sled implementations' former path, kept for embedders and tools that name it.
pub use self::sled as sled_store;

use futures_util::future::BoxFuture;

pub use group_commit::{FlushObserver, GroupCommit};
pub use records::{
    CodeRecord, GrantHolder, GrantId, StoredCode, TokenKind, TokenRecord, UsedCodeRecord,
};

use crate::domain::{
    client::{Client, User},
    secrets::TokenKey,
};

/// Storage failures. Never shown to clients beyond `server_error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
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

/// What the client registry stores: clients and users.
pub trait ClientStore: Send + 'static {
    /// Every client and user, read once at start-up into the registry's index.
    fn load(&self) -> Result<(Vec<Client>, Vec<User>), StorageError>;
    /// Inserts or replaces a client.
    fn put_client(&self, client: &Client) -> Result<(), StorageError>;
    /// Inserts or replaces a user.
    fn put_user(&self, user: &User) -> Result<(), StorageError>;
    /// Removes a client; removing an unknown one is not an error.
    fn remove_client(&self, client_id: &str) -> Result<(), StorageError>;
    /// Removes a user; removing an unknown one is not an error.
    fn remove_user(&self, username: &str) -> Result<(), StorageError>;
    /// Resolves once earlier writes are on disk.
    fn persist(&self) -> Persist;
}

/// What the code issuer stores: live codes, and redeemed codes kept for replay detection,
/// under the same key (a redeemed code's record is replaced by a small marker: one write
/// per redemption).
pub trait CodeStore: Send + 'static {
    /// Stores a new code under its digest.
    fn insert(&self, key: &TokenKey, record: &CodeRecord) -> Result<(), StorageError>;
    /// Reads what is stored under a code's key.
    fn get(&self, key: &TokenKey) -> Result<Option<StoredCode>, StorageError>;
    /// Replaces a code with its redeemed marker, kept until `record.forget_at`.
    fn mark_used(&self, key: &TokenKey, record: &UsedCodeRecord) -> Result<(), StorageError>;
    /// Forgets a code.
    fn remove(&self, key: &TokenKey) -> Result<(), StorageError>;
    /// Removes every live (not yet redeemed) code of `holder`; returns how many. Walks the
    /// whole tree: meant for offline administration, not for request paths.
    fn remove_live_codes_of(&self, holder: &GrantHolder) -> Result<usize, StorageError>;
    /// Removes expired codes and forgotten markers, examining at most `limit` entries from
    /// where the previous sweep stopped. An entry whose expiry cannot be read (it may be a
    /// redeemed marker, whose replay must still revoke) is kept and reported, not dropped.
    fn sweep(&self, now: i64, limit: usize) -> Result<Swept, StorageError>;
    /// Resolves once earlier writes are on disk.
    fn persist(&self) -> Persist;
}

/// What the token ledger stores: tokens by digest, and revoked grants.
pub trait TokenStore: Send + 'static {
    /// Inserts or replaces a token record.
    fn put(&self, key: &TokenKey, record: &TokenRecord) -> Result<(), StorageError>;
    /// Reads a token record.
    fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError>;
    /// Removes a token record, returning it.
    fn remove(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError>;
    /// Records that tokens living up to `lifetime` seconds may be issued until
    /// `in_force_until` (raises the time recorded for that lifetime, never lowers it). A
    /// revocation must be remembered until every token it covers has expired, whatever
    /// lifetimes the server runs with when it revokes: these records say how long tokens
    /// issued under earlier settings can still live. One write per start and per sweep
    /// interval, none per token.
    fn record_lifetime(&self, lifetime: i64, in_force_until: i64) -> Result<(), StorageError>;
    /// Every recorded `(lifetime, in_force_until)`.
    fn lifetimes(&self) -> Result<Vec<(i64, i64)>, StorageError>;
    /// Records a revoked grant, remembered until `forget_at`.
    fn put_revoked_grant(&self, grant: &GrantId, forget_at: i64) -> Result<(), StorageError>;
    /// Every revoked grant still remembered, with its `forget_at`. A record whose forget
    /// time cannot be read answers `i64::MAX` (revoked for good: fail closed); records that
    /// do not decode are logged and counted in [`RevokedGrants::undecodable`], never
    /// dropped.
    fn revoked_grants(&self) -> Result<RevokedGrants, StorageError>;
    /// Every grant with a stored token of `holder`, each with the latest `expires_at` among
    /// its tokens. Token keys are digests of the token values, so there is no index by
    /// subject or client: this walks the whole token tree, which is acceptable only for
    /// offline administration (`oauth-mcp admin`), never on a request path.
    fn grants_of(&self, holder: &GrantHolder) -> Result<Vec<(GrantId, i64)>, StorageError>;
    /// One bounded slice of sweeping, each tree from where its previous slice stopped: at
    /// most `limit` tokens (removing those expired at `now`), `limit` revoked grants
    /// (removing those past `forget_at`; undecodable ones are kept and reported), and the
    /// lifetime records no token issued under them can outlive any more.
    fn sweep(&self, now: i64, limit: usize) -> Result<Swept, StorageError>;
    /// Number of stored token records (live, rotated or expired-not-yet-swept).
    fn count(&self) -> usize;
    /// Resolves once earlier writes are on disk.
    fn persist(&self) -> Persist;
}
