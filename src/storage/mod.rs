//! Storage behind narrow, typed interfaces: one trait per owning actor, with sled
//! implementations in [`sled_store`]. Policy code (the actors) sees only these traits and
//! domain types, never sled, so a shared PostgreSQL backend can be added later without
//! touching policy.
//!
//! Durability: every store has `persist()`, a future that resolves once every write made
//! before the call is on disk. The sled implementation batches these into one
//! [`GroupCommit`] flush for all callers that arrived meanwhile.

pub mod codec;
pub mod group_commit;
pub mod records;
pub mod sled_store;

use futures_util::future::BoxFuture;

pub use group_commit::GroupCommit;
pub use records::{CodeRecord, GrantId, StoredCode, TokenKind, TokenRecord, UsedCodeRecord};

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
}

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        Self::Database(e.to_string())
    }
}

/// A future that resolves when earlier writes are durable.
pub type Persist = BoxFuture<'static, Result<(), StorageError>>;

/// What the client registry stores: clients and users.
pub trait ClientStore: Send + 'static {
    /// Every client and user, read once at start-up into the registry's index.
    fn load(&self) -> Result<(Vec<Client>, Vec<User>), StorageError>;
    /// Inserts or replaces a client.
    fn put_client(&self, client: &Client) -> Result<(), StorageError>;
    /// Inserts or replaces a user.
    fn put_user(&self, user: &User) -> Result<(), StorageError>;
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
    /// Removes expired codes and forgotten markers, examining at most `limit` entries from
    /// where the previous sweep stopped; returns how many were removed.
    fn sweep(&self, now: i64, limit: usize) -> Result<usize, StorageError>;
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
    /// Records a revoked grant, remembered until `forget_at`.
    fn put_revoked_grant(&self, grant: &GrantId, forget_at: i64) -> Result<(), StorageError>;
    /// Every revoked grant still remembered, with its `forget_at`.
    fn revoked_grants(&self) -> Result<Vec<(GrantId, i64)>, StorageError>;
    /// Removes tokens expired at `now` (at most `limit`) and revoked grants past
    /// `forget_at`; returns how many tokens were removed.
    fn sweep(&self, now: i64, limit: usize) -> Result<usize, StorageError>;
    /// Number of stored token records (live, rotated or expired-not-yet-swept).
    fn count(&self) -> usize;
    /// Resolves once earlier writes are on disk.
    fn persist(&self) -> Persist;
}
