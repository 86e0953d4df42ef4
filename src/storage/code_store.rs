//! [`CodeStore`]: what the code issuer stores (live codes, and redeemed codes kept for
//! replay detection, under the same key), as atomic intents: insert a code, redeem it once.

use super::{CodeRecord, GrantHolder, GrantId, Persist, StoreFuture, Swept};
use crate::domain::secrets::TokenKey;

/// What [`CodeStore::redeem`] did.
#[derive(Debug, Clone)]
pub enum Redemption {
    /// The code was live, unexpired and the client's: it is now marked redeemed, and this
    /// is what it was bound to.
    Redeemed(CodeRecord),
    /// The code was redeemed before (and its marker is still kept): its grant must be
    /// revoked (OAuth 2.1 §4.1.3). Nothing was written.
    Replayed(GrantId),
    /// Unknown, or a marker past its `forget_at` (nothing written); or live but expired or
    /// another client's: then it is removed (a stolen code presented by another client is
    /// burnt).
    Invalid,
}

/// What the code issuer stores: live codes, and redeemed codes kept for replay detection,
/// under the same key (a redeemed code's record is replaced by a small marker: one write
/// per redemption).
///
/// Atomicity, futures and durability as for [`TokenStore`](super::TokenStore): each
/// intent is one statement or transaction on a shared database; on sled the code issuer
/// alone owns the tree, handles one message at a time, and the store runs each intent in
/// the call.
pub trait CodeStore: Send + 'static {
    /// Stores a new code under its digest.
    fn insert(&self, key: &TokenKey, record: CodeRecord) -> StoreFuture<()>;

    /// Redeems a code once: in one transaction, reads what is stored under `key` and
    /// - a live code, unexpired at `now` and issued to `client_id`: replaces it with its
    ///   redeemed marker, kept until `forget_at`, and answers [`Redemption::Redeemed`];
    /// - a live code expired or of another client: removes it, [`Redemption::Invalid`];
    /// - a marker before its `forget_at`: [`Redemption::Replayed`] with its grant;
    /// - anything else: [`Redemption::Invalid`].
    ///
    /// Of two concurrent redemptions of one code, exactly one is `Redeemed`: a shared
    /// database needs a conditional update (`UPDATE .. WHERE state = 'live' RETURNING ..`)
    /// or a row lock.
    fn redeem(
        &self,
        key: &TokenKey,
        client_id: &str,
        now: i64,
        forget_at: i64,
    ) -> StoreFuture<Redemption>;

    /// Removes every live (not yet redeemed) code of `holder`; answers how many. Walks the
    /// whole tree: meant for offline administration, not for request paths.
    fn remove_live_codes_of(&self, holder: &GrantHolder) -> StoreFuture<usize>;

    /// Removes expired codes and forgotten markers, examining at most `limit` entries from
    /// where the previous sweep stopped. An entry whose expiry cannot be read (it may be a
    /// redeemed marker, whose replay must still revoke) is kept and reported, not dropped.
    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept>;

    /// Resolves once earlier writes are on disk.
    fn persist(&self) -> Persist;
}
