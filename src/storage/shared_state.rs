//! [`SharedState`]: short-lived state that every process serving one deployment must see
//! alike (issue 14): browser sign-in sessions, the login throttle, the registration rate
//! limit and the repeat-registration fingerprints; room for more of the same kind (pending
//! sign-ins at an upstream identity provider, DPoP nonces: a namespace each).
//!
//! Three shapes, each one atomic step of the backend:
//! - keyed entries with an expiry ([`put`](SharedState::put), [`get`](SharedState::get),
//!   removal by key or by owner);
//! - take-once ([`take`](SharedState::take)): answers an entry and removes it, so of two
//!   processes taking the same key, one gets it;
//! - counters in a fixed time window ([`count`](SharedState::count)): one step restarts the
//!   window when it has passed, adds one up to `limit + 1`, and answers the count, so that
//!   of concurrent attempts on any number of processes exactly `limit` are admitted.
//!
//! Keys are [`Digest`]s (of a cookie value, a submitted name, an address key, a
//! fingerprint), so a copy of the state holds no usable secret. Times are the caller's
//! clock (seconds), never the database's, so tests drive them with a manual clock.
//!
//! Two implementations: [`MemorySharedState`] here, in the process (what sled deployments
//! use: one process serves a data directory, so its memory is the arbiter, with no write
//! per attempt; bounded per namespace; empty after a restart, which signs browsers out and
//! forgets counts, as before), and `postgres::PgSharedState` on the `shared_state` table
//! (docs/storage.md), which several processes share.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use super::{ready, StoreFuture};
use crate::domain::secrets::Digest;

/// What kind of entry a key names: keys of different kinds never meet, and each kind has
/// its own bound in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Namespace {
    /// Browser sign-in sessions: digest of the cookie → the user (value and owner).
    SignIn,
    /// Login attempts per submitted username (digest of the name).
    LoginName,
    /// Login attempts per client address key (digest of its octets).
    LoginAddress,
    /// Client registrations per client address key in the hour.
    Registrations,
    /// Public-client registrations by fingerprint → the client id, for 24 hours.
    RepeatRegistrations,
}

impl Namespace {
    /// The name stored with each entry (the `namespace` column).
    pub fn name(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::LoginName => "login_name",
            Self::LoginAddress => "login_address",
            Self::Registrations => "registrations",
            Self::RepeatRegistrations => "repeat_registrations",
        }
    }

    /// Most entries [`MemorySharedState`] keeps in this namespace (each a few dozen bytes
    /// plus its value); past it, expired entries go first, then the one closest to expiry
    /// that is not marked `keep`.
    fn capacity(self) -> usize {
        match self {
            // About 1.5 MB: a forgotten fingerprint only registers a new client.
            Self::RepeatRegistrations => 10_000,
            _ => 100_000,
        }
    }
}

/// A keyed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What the key maps to.
    pub value: Vec<u8>,
    /// Who the entry belongs to, for [`SharedState::remove_owned_by`] (a user's sessions).
    pub owner: Option<String>,
    /// When it expires (seconds): from then on it is not answered, and sweeps remove it.
    pub expires_at: i64,
}

/// A counter's state after [`SharedState::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Attempts in the current window, this one included, at most `limit + 1`: the attempt
    /// is admitted when it is at most `limit`.
    pub count: u32,
    /// When the current window started.
    pub started: i64,
}

impl Count {
    /// Whether the counted attempt is within `limit`.
    pub fn admitted(&self, limit: u32) -> bool {
        self.count <= limit
    }

    /// Seconds until a window of `len` seconds ends, at least 1 (a `Retry-After`).
    pub fn retry_after(&self, len: i64, now: i64) -> u64 {
        u64::try_from(self.started.saturating_add(len).saturating_sub(now).max(1)).unwrap_or(1)
    }
}

/// Short-lived state shared by every process of a deployment. Each method is one atomic
/// step of the backend (one statement on a database); its answer is a future, as for the
/// other stores, ready at once in memory.
pub trait SharedState: Send + Sync + 'static {
    /// Stores `entry` under `key`, replacing what was there (`now` lets a bounded memory
    /// drop expired entries first).
    fn put(&self, ns: Namespace, key: &Digest, entry: Entry, now: i64) -> StoreFuture<()>;

    /// The entry under `key`, unless it has expired at `now`.
    fn get(&self, ns: Namespace, key: &Digest, now: i64) -> StoreFuture<Option<Entry>>;

    /// Removes the entry under `key` and answers it unless it had expired at `now`: of
    /// several takers, on any process, one gets it.
    fn take(&self, ns: Namespace, key: &Digest, now: i64) -> StoreFuture<Option<Entry>>;

    /// Removes the entry (or counter) under `key`; an absent one is not an error.
    fn remove(&self, ns: Namespace, key: &Digest) -> StoreFuture<()>;

    /// Removes every entry of `owner` in `ns`; answers how many there were.
    fn remove_owned_by(&self, ns: Namespace, owner: &str) -> StoreFuture<usize>;

    /// Counts one attempt against `key` in a fixed window of `len` seconds: a window that
    /// has passed at `now` restarts at `now`; the count grows by one, but not past
    /// `limit + 1`, so refused attempts neither overflow it nor extend the window. `keep`
    /// asks a bounded memory to evict this counter last (a real account's count, which a
    /// flood of invented names must not push out).
    fn count(
        &self,
        ns: Namespace,
        key: &Digest,
        len: i64,
        limit: u32,
        now: i64,
        keep: bool,
    ) -> StoreFuture<Count>;

    /// Gives back one attempt counted in the window that started at `started` (a login
    /// that succeeded, or one refused by another counter); nothing when that window has
    /// been replaced or has passed.
    fn uncount(&self, ns: Namespace, key: &Digest, started: i64, now: i64) -> StoreFuture<()>;

    /// Removes entries expired at `now`, at most `limit` in one database batch; answers how
    /// many. On a shared database one process at a time sweeps (the others skip the tick
    /// and answer 0); in memory every expired entry goes.
    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<usize>;
}

/// One entry or counter in memory.
#[derive(Debug, Clone)]
struct Slot {
    entry: Entry,
    count: u32,
    started: i64,
    keep: bool,
}

/// [`SharedState`] in this process's memory: every method does its work in the call and
/// answers a ready future. Cheap to clone (the map is shared).
#[derive(Debug, Clone, Default)]
pub struct MemorySharedState {
    namespaces: Arc<Mutex<HashMap<Namespace, HashMap<Digest, Slot>>>>,
}

impl MemorySharedState {
    /// Runs `f` on the map of `ns` (created when absent). A poisoned lock is taken over:
    /// every step leaves the map consistent, and the state is short-lived anyway.
    fn with<T>(&self, ns: Namespace, f: impl FnOnce(&mut HashMap<Digest, Slot>) -> T) -> T {
        let mut all = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(all.entry(ns).or_default())
    }

    /// How many entries `ns` holds, expired or not (tests and bounds).
    pub fn len(&self, ns: Namespace) -> usize {
        self.with(ns, |map| map.len())
    }

    /// Whether `ns` holds nothing.
    pub fn is_empty(&self, ns: Namespace) -> bool {
        self.len(ns) == 0
    }
}

/// Makes room for `key` in `map` holding `cap` entries at most: when it is new and the map
/// is full, expired entries go first, then the one closest to expiry among those not
/// marked `keep` (among all, if every one is).
fn make_room(map: &mut HashMap<Digest, Slot>, key: &Digest, cap: usize, now: i64) {
    if map.contains_key(key) || map.len() < cap {
        return;
    }
    map.retain(|_, s| s.entry.expires_at > now);
    if map.len() < cap {
        return;
    }
    let victim = map
        .iter()
        .filter(|(_, s)| !s.keep)
        .min_by_key(|(_, s)| s.entry.expires_at)
        .or_else(|| map.iter().min_by_key(|(_, s)| s.entry.expires_at))
        .map(|(k, _)| *k);
    if let Some(k) = victim {
        map.remove(&k);
    }
}

impl SharedState for MemorySharedState {
    fn put(&self, ns: Namespace, key: &Digest, entry: Entry, now: i64) -> StoreFuture<()> {
        self.with(ns, |map| {
            make_room(map, key, ns.capacity(), now);
            let started = entry.expires_at;
            map.insert(
                *key,
                Slot {
                    entry,
                    count: 0,
                    started,
                    keep: false,
                },
            );
        });
        ready(Ok(()))
    }

    fn get(&self, ns: Namespace, key: &Digest, now: i64) -> StoreFuture<Option<Entry>> {
        let found = self.with(ns, |map| {
            map.get(key)
                .filter(|s| s.entry.expires_at > now)
                .map(|s| s.entry.clone())
        });
        ready(Ok(found))
    }

    fn take(&self, ns: Namespace, key: &Digest, now: i64) -> StoreFuture<Option<Entry>> {
        let taken = self.with(ns, |map| {
            map.remove(key)
                .filter(|s| s.entry.expires_at > now)
                .map(|s| s.entry)
        });
        ready(Ok(taken))
    }

    fn remove(&self, ns: Namespace, key: &Digest) -> StoreFuture<()> {
        self.with(ns, |map| map.remove(key));
        ready(Ok(()))
    }

    fn remove_owned_by(&self, ns: Namespace, owner: &str) -> StoreFuture<usize> {
        let removed = self.with(ns, |map| {
            let before = map.len();
            map.retain(|_, s| s.entry.owner.as_deref() != Some(owner));
            before - map.len()
        });
        ready(Ok(removed))
    }

    fn count(
        &self,
        ns: Namespace,
        key: &Digest,
        len: i64,
        limit: u32,
        now: i64,
        keep: bool,
    ) -> StoreFuture<Count> {
        let counted = self.with(ns, |map| {
            make_room(map, key, ns.capacity(), now);
            let fresh = Slot {
                entry: Entry {
                    value: Vec::new(),
                    owner: None,
                    expires_at: now.saturating_add(len),
                },
                count: 0,
                started: now,
                keep,
            };
            let slot = map.entry(*key).or_insert_with(|| fresh.clone());
            if slot.entry.expires_at <= now {
                *slot = fresh;
            }
            slot.count = slot.count.saturating_add(1).min(limit.saturating_add(1));
            slot.keep = keep;
            Count {
                count: slot.count,
                started: slot.started,
            }
        });
        ready(Ok(counted))
    }

    fn uncount(&self, ns: Namespace, key: &Digest, started: i64, now: i64) -> StoreFuture<()> {
        self.with(ns, |map| {
            if let Some(slot) = map.get_mut(key) {
                if slot.started == started && slot.entry.expires_at > now {
                    slot.count = slot.count.saturating_sub(1);
                }
            }
        });
        ready(Ok(()))
    }

    fn sweep(&self, now: i64, _limit: usize) -> StoreFuture<usize> {
        let mut all = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut removed = 0;
        for map in all.values_mut() {
            let before = map.len();
            map.retain(|_, s| s.entry.expires_at > now);
            removed += before - map.len();
        }
        ready(Ok(removed))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;

    fn key(n: u32) -> Digest {
        Digest::of(&n.to_be_bytes())
    }

    fn now<T>(f: StoreFuture<T>) -> T {
        f.now_or_never().unwrap().unwrap()
    }

    #[test]
    fn a_counter_admits_limit_attempts_per_window_and_gives_one_back() {
        let s = MemorySharedState::default();
        let ns = Namespace::LoginName;
        let counts: Vec<u32> = (0..5)
            .map(|_| now(s.count(ns, &key(1), 60, 3, 100, false)).count)
            .collect();
        assert_eq!(counts, [1, 2, 3, 4, 4], "capped at limit + 1");
        let c = now(s.count(ns, &key(1), 60, 3, 159, false));
        assert!(!c.admitted(3));
        assert_eq!(c.started, 100, "a refusal does not extend the window");
        assert_eq!(c.retry_after(60, 159), 1);
        now(s.uncount(ns, &key(1), 100, 159));
        assert_eq!(now(s.count(ns, &key(1), 60, 3, 159, false)).count, 4);
        now(s.uncount(ns, &key(1), 99, 159));
        assert_eq!(now(s.count(ns, &key(1), 60, 3, 159, false)).count, 4);
        let c = now(s.count(ns, &key(1), 60, 3, 160, false));
        assert_eq!((c.count, c.started), (1, 160), "a new window");
        assert_eq!(
            now(s.count(Namespace::LoginAddress, &key(1), 60, 3, 160, false)).count,
            1
        );
    }

    #[test]
    fn entries_expire_are_taken_once_and_removed_by_owner() {
        let s = MemorySharedState::default();
        let ns = Namespace::SignIn;
        let entry = |owner: &str| Entry {
            value: owner.as_bytes().to_vec(),
            owner: Some(owner.into()),
            expires_at: 200,
        };
        now(s.put(ns, &key(1), entry("alice"), 0));
        now(s.put(ns, &key(2), entry("alice"), 0));
        now(s.put(ns, &key(3), entry("bob"), 0));
        assert_eq!(now(s.get(ns, &key(1), 199)), Some(entry("alice")));
        assert_eq!(now(s.get(ns, &key(1), 200)), None, "expired");
        assert_eq!(now(s.get(Namespace::LoginName, &key(1), 0)), None);
        assert_eq!(now(s.take(ns, &key(3), 0)), Some(entry("bob")));
        assert_eq!(now(s.take(ns, &key(3), 0)), None, "once");
        assert_eq!(now(s.remove_owned_by(ns, "alice")), 2);
        assert!(s.is_empty(ns));
        now(s.put(ns, &key(4), entry("carol"), 0));
        now(s.count(Namespace::LoginName, &key(4), 10, 5, 0, false));
        assert_eq!(now(s.sweep(199, 1)), 1, "the counter's window ended");
        assert_eq!(now(s.sweep(200, 1)), 1);
        assert!(s.is_empty(ns));
    }

    #[test]
    fn a_full_namespace_evicts_expired_then_unkept_closest_to_expiry() {
        let s = MemorySharedState::default();
        let ns = Namespace::LoginName;
        let cap = u32::try_from(ns.capacity()).unwrap();
        let long = 1_000_000;
        now(s.count(ns, &key(0), 10, 5, 0, false));
        // A real account's counter, the closest to expiry of the live ones.
        now(s.count(ns, &key(1), long, 5, 1, true));
        for n in 2..cap {
            now(s.count(ns, &key(n), long, 5, i64::from(n), false));
        }
        assert_eq!(s.len(ns), ns.capacity());
        now(s.count(ns, &key(cap), long, 5, 20, false));
        assert_eq!(s.len(ns), ns.capacity());
        assert!(
            now(s.get(ns, &key(0), 0)).is_none(),
            "the expired one went first"
        );
        now(s.count(ns, &key(cap + 1), long, 5, 20, false));
        assert_eq!(s.len(ns), ns.capacity());
        assert!(now(s.get(ns, &key(1), 20)).is_some(), "kept");
        assert!(
            now(s.get(ns, &key(2), 20)).is_none(),
            "the unkept closest to expiry"
        );
        assert!(now(s.get(ns, &key(3), 20)).is_some());
    }
}
