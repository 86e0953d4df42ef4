//! Validated access tokens remembered in front of the [`TokenLedger`](super::TokenLedger),
//! so a bearer-protected request (`/mcp`) presenting a token it has seen recently needs no
//! round trip to the ledger.
//!
//! Why it is safe against revocation: the ledger counts every change that can deactivate a
//! token before it expires ([`Revocations`]: a revoked grant, a revoked access token, an
//! unreadable revocation record kept as revoked) and bumps the count in the handler that
//! makes the change, before it answers. An entry remembers the count read *before* the
//! ledger was asked, and is served only while the count is still the same. So any request
//! that starts after a revocation was answered misses the cache and asks the ledger again,
//! and an answer obtained while a revocation was under way is never served (its count is
//! already out of date). Expiry is checked on every hit, with the same clock and rule as the
//! ledger (`expires_at > now`). Keys are the token's storage key (digest), never the token.
//!
//! Across processes (a shared database, issue 14) the change feed
//! ([`super::change_feed`]) bumps the count for every revocation any process commits, and
//! the cache serves only while the feed is fresh ([`Freshness`], given by
//! [`TokenCache::with_freshness`]): a revocation made elsewhere is served by no cache
//! later than the feed's bound after it committed, and while the feed is down nothing is
//! served (every request asks the ledger, which reads the database).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use super::{change_feed::Freshness, token_ledger::TokenInfo};
use crate::domain::{clock::Clock, secrets::TokenKey};

/// The count of revocations made by a ledger, shared with the caches in front of it.
#[derive(Debug, Clone, Default)]
pub struct Revocations(Arc<AtomicU64>);

impl Revocations {
    /// Records a change that may deactivate a token before it expires.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// The count so far.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Cached {
    info: Arc<TokenInfo>,
    /// [`Revocations`] when the ledger was asked.
    epoch: u64,
    /// Served until this time (seconds): the token's expiry or the time to live, whichever
    /// is first.
    until: i64,
}

/// Access tokens the ledger answered as active, bounded in number and time.
pub struct TokenCache {
    revocations: Revocations,
    /// Whether revocations by other processes have reached `revocations` recently enough.
    freshness: Arc<Freshness>,
    clock: Arc<dyn Clock>,
    ttl: i64,
    capacity: usize,
    entries: Mutex<HashMap<TokenKey, Cached>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// Default time to live of an entry.
    pub const TTL: Duration = Duration::from_secs(30);
    /// Default number of entries.
    pub const CAPACITY: usize = 65_536;

    /// A cache invalidated by `revocations` (the ledger's), judging expiry by `clock` (the
    /// ledger's), holding at most `capacity` entries for at most `ttl` each.
    pub fn new(
        revocations: Revocations,
        clock: Arc<dyn Clock>,
        ttl: Duration,
        capacity: usize,
    ) -> Self {
        Self {
            revocations,
            freshness: Freshness::local(),
            clock,
            ttl: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            capacity,
            entries: Mutex::default(),
        }
    }

    /// Serves entries only while `freshness` says so (a shared database; the default is
    /// one process, always fresh).
    pub fn with_freshness(mut self, freshness: Arc<Freshness>) -> Self {
        self.freshness = freshness;
        self
    }

    /// The revocation count to give [`insert`](Self::insert): read it *before* asking the
    /// ledger.
    pub fn epoch(&self) -> u64 {
        self.revocations.current()
    }

    /// The remembered answer for `key`, if no revocation happened since it was obtained,
    /// neither the token nor the entry has expired, and the change feed is fresh.
    pub fn get(&self, key: &TokenKey) -> Option<Arc<TokenInfo>> {
        // Fail closed: revocations made elsewhere may not have reached us.
        if !self.freshness.is_fresh() {
            return None;
        }
        let epoch = self.revocations.current();
        let now = self.clock.now();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = entries.get(key)?;
        (cached.epoch == epoch && now < cached.until).then(|| Arc::clone(&cached.info))
    }

    /// Remembers the ledger's answer that `key` is an active token, obtained after reading
    /// `epoch` ([`Self::epoch`]).
    pub fn insert(&self, key: TokenKey, info: Arc<TokenInfo>, epoch: u64) {
        let now = self.clock.now();
        let until = info.expires_at.min(now.saturating_add(self.ttl));
        if until <= now || self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let current = self.revocations.current();
            entries.retain(|_, c| c.epoch == current && now < c.until);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than track use order; the
                // next requests ask the ledger again.
                entries.clear();
            }
        }
        entries.insert(key, Cached { info, epoch, until });
    }

    /// Number of entries held (tests).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{clock::ManualClock, grant::TokenKind, scope::Scopes};

    fn info(expires_at: i64) -> Arc<TokenInfo> {
        Arc::new(TokenInfo {
            kind: TokenKind::Access,
            client_id: "c".into(),
            subject: None,
            scopes: Scopes::default(),
            resource: "r".into(),
            issued_at: 0,
            expires_at,
        })
    }

    fn key(n: u8) -> TokenKey {
        TokenKey([n; 40])
    }

    fn cache(capacity: usize) -> (TokenCache, Revocations, Arc<ManualClock>) {
        let revocations = Revocations::default();
        let clock = ManualClock::new(1_000);
        let cache = TokenCache::new(
            revocations.clone(),
            clock.clone(),
            Duration::from_secs(30),
            capacity,
        );
        (cache, revocations, clock)
    }

    #[test]
    fn any_revocation_after_the_ledger_was_asked_hides_the_entry() {
        let (cache, revocations, _) = cache(8);
        let epoch = cache.epoch();
        cache.insert(key(1), info(5_000), epoch);
        assert!(cache.get(&key(1)).is_some());
        revocations.bump();
        assert!(cache.get(&key(1)).is_none(), "served after a revocation");
        // An answer obtained while a revocation was under way is never served.
        cache.insert(key(2), info(5_000), epoch);
        assert!(cache.get(&key(2)).is_none());
        // Asked again after the revocation: served again.
        cache.insert(key(1), info(5_000), cache.epoch());
        assert!(cache.get(&key(1)).is_some());
    }

    #[test]
    fn nothing_is_served_while_the_change_feed_is_not_fresh() {
        let revocations = Revocations::default();
        let freshness = Freshness::shared();
        let cache = TokenCache::new(
            revocations,
            ManualClock::new(1_000),
            Duration::from_secs(30),
            8,
        )
        .with_freshness(Arc::clone(&freshness));
        cache.insert(key(1), info(5_000), cache.epoch());
        assert!(
            cache.get(&key(1)).is_none(),
            "served before the feed was read"
        );
        freshness.extend_for_tests();
        assert!(cache.get(&key(1)).is_some());
        std::thread::sleep(crate::actors::change_feed::BOUND + Duration::from_millis(5));
        assert!(cache.get(&key(1)).is_none(), "served past the feed's bound");
    }

    #[test]
    fn entries_end_with_the_token_or_the_time_to_live() {
        let (cache, _, clock) = cache(8);
        cache.insert(key(1), info(1_010), cache.epoch());
        cache.insert(key(2), info(5_000), cache.epoch());
        clock.advance(Duration::from_secs(9));
        assert!(cache.get(&key(1)).is_some());
        clock.advance(Duration::from_secs(1));
        assert!(cache.get(&key(1)).is_none(), "served at its expiry");
        assert!(cache.get(&key(2)).is_some());
        clock.advance(Duration::from_secs(20));
        assert!(cache.get(&key(2)).is_none(), "served past the time to live");
        // An expired token is not remembered at all.
        cache.insert(key(3), info(1_000), cache.epoch());
        assert!(cache.get(&key(3)).is_none());
    }

    #[test]
    fn the_number_of_entries_is_bounded() {
        let (cache, revocations, _) = cache(4);
        for n in 0..4 {
            cache.insert(key(n), info(5_000), cache.epoch());
        }
        assert_eq!(cache.len(), 4);
        // Full of live entries: they are dropped to make room.
        cache.insert(key(9), info(5_000), cache.epoch());
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key(9)).is_some());
        // Stale entries go first.
        for n in 0..3 {
            cache.insert(key(n), info(5_000), cache.epoch());
        }
        revocations.bump();
        cache.insert(key(7), info(5_000), cache.epoch());
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key(7)).is_some());
    }
}
