//! Cross-instance invalidation (issue 14): each instance on a shared PostgreSQL database
//! applies the changes every instance (and `oauth-mcp admin`) records in the change feed
//! (`crate::storage::postgres::changes`) to its own in-memory state, and says how fresh
//! that state is ([`Freshness`]), so that the state is trusted only within a stated bound
//! and bypassed otherwise (fail closed).
//!
//! What is cached and how a change reaches it:
//! - the `/mcp` token cache ([`super::token_cache`]): a `grant` or `token` change bumps its
//!   [`Revocations`], so every entry obtained before is dropped;
//! - the client registry's index of clients and users: a `client` or `user` change makes
//!   it forget that entry ([`ForgetClient`], [`ForgetUser`]), read again from the store on
//!   the next lookup;
//! - not cached and so right at once: bearer validation by the ledger (`TokenStore::get`
//!   on PostgreSQL answers nothing for a revoked grant), issuance, rotation and redemption
//!   (the database arbitrates each).
//!
//! # The bound
//! The listener ([`ChangeFeed`]) reads the changes numbered after the last one it applied
//! on every notification and every [`POLL`] (a lost notification costs one tick), applies
//! them, and then records that the caches may serve until the read's *start* plus
//! [`BOUND`]. Numbers commit in order, so a read that started after a change committed
//! returns it. Hence a change committed at time `c` is never ignored by a cache after
//! `c + BOUND`: a hit at `h` needs a read started after `h - BOUND`; if `h > c + BOUND` that
//! read started after `c` and applied the change before extending the freshness. While the
//! feed is down, a poll fails or is late, [`Freshness::is_fresh`] is false and the caches
//! are bypassed (every `/mcp` request asks the ledger; the registry reads through), which
//! also covers changes committed while the listener was away: after a reconnection it reads
//! on from its last number, or starts over from the stores when that number was trimmed.
//!
//! On sled there is one process and no feed: [`Freshness::local`] is always fresh and the
//! registry's index is complete.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix::prelude::*;

use super::{
    client_registry::{ClientRegistry, ForgetClient, ForgetUser, ReloadIndex},
    token_cache::Revocations,
};
use crate::storage::{
    postgres::{Change, ChangeKind, PgStores, Wake},
    StorageError,
};

/// How long after a successful read of the feed *started* the caches may serve without
/// another: the staleness bound of a revocation or a client/user change made elsewhere.
pub const BOUND: Duration = Duration::from_millis(90);

/// How often the feed is read when no notification arrives (a lost notification is
/// noticed this late at most), well within [`BOUND`].
pub const POLL: Duration = Duration::from_millis(25);

/// Most changes applied per read; a longer backlog is read on at once, the caches staying
/// bypassed until it is caught up.
const BATCH: i64 = 1_000;

/// The first wait before reconnecting, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Until when the in-memory state of this instance may be trusted, shared by the feed
/// (which extends it) and the caches (which check it on every hit).
#[derive(Debug)]
pub struct Freshness {
    /// `false` on sled: always fresh, and the registry's index is complete.
    shared: bool,
    base: Instant,
    /// Microseconds after `base` until which the state is fresh; 0: not fresh.
    until_us: AtomicU64,
}

impl Freshness {
    /// One process owns the data (sled): always fresh.
    pub fn local() -> Arc<Self> {
        Arc::new(Self {
            shared: false,
            base: Instant::now(),
            until_us: AtomicU64::new(u64::MAX),
        })
    }

    /// A shared database: not fresh until the feed has read it.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self {
            shared: true,
            base: Instant::now(),
            until_us: AtomicU64::new(0),
        })
    }

    /// Whether other processes write the same data: then an in-memory index is a cache,
    /// and a miss must be read from the store.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether the in-memory state may be served now.
    pub fn is_fresh(&self) -> bool {
        let until = self.until_us.load(Ordering::SeqCst);
        until == u64::MAX || self.micros(Instant::now()) < until
    }

    /// A read of the feed that started at `started` was applied: fresh until `started +
    /// BOUND` (never moved back).
    fn extend(&self, started: Instant) {
        let until = self.micros(started).saturating_add(micros(BOUND)).max(1);
        self.until_us.fetch_max(until, Ordering::SeqCst);
    }

    /// As if a read of the feed had just started and been applied (other modules' tests).
    #[cfg(test)]
    pub(crate) fn extend_for_tests(&self) {
        self.extend(Instant::now());
    }

    /// The feed is down or behind: not fresh until it has read again.
    fn lapse(&self) {
        if self.shared {
            self.until_us.store(0, Ordering::SeqCst);
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        micros(at.saturating_duration_since(self.base))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Whether a value read from a store at `started` may still be used although a change was
/// applied meanwhile (the read may predate it): only within [`BOUND`] of the read's start,
/// the same promise as the caches'.
pub fn read_within_bound(started: Instant) -> bool {
    started.elapsed() < BOUND
}

/// The listener of one instance: a task of its own (see the module docs).
pub struct ChangeFeed {
    stores: PgStores,
    revocations: Revocations,
    registry: Addr<ClientRegistry>,
    freshness: Arc<Freshness>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// A feed applying changes to `revocations` (the token cache's) and `registry`, and
    /// keeping `freshness` (give it [`Freshness::shared`]).
    pub fn new(
        stores: PgStores,
        revocations: Revocations,
        registry: Addr<ClientRegistry>,
        freshness: Arc<Freshness>,
    ) -> Self {
        Self {
            stores,
            revocations,
            registry,
            freshness,
        }
    }

    /// Runs the feed until the returned handle is aborted (`Services::shutdown`).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut last: Option<i64> = None;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut caught_up = false;
            if let Err(e) = self.session(&mut last, &mut caught_up).await {
                tracing::warn!(error = %e, "change feed interrupted: caches bypassed until it is back");
            }
            self.freshness.lapse();
            if caught_up {
                backoff = FIRST_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: catch up from `last` (or start over), then read on every
    /// notification and poll until the connection fails.
    async fn session(
        &self,
        last: &mut Option<i64>,
        caught_up: &mut bool,
    ) -> Result<(), StorageError> {
        let mut listener = self.stores.listen().await?;
        // Listening before reading: a change committed from here on notifies us.
        let head = listener.head().await?;
        // Every cached token goes at each (re)connection: cheap (one miss per token), and
        // nothing learnt while the feed was away is missed. (A revocation by an instance of
        // a build before schema 2, during a rolling upgrade, writes no change at all: the
        // cache serves it until its entry's time to live; docs/deployment.md, rolling
        // upgrades.)
        self.revocations.bump();
        match *last {
            Some(seen) if seen <= head => {}
            // First start, or the numbers went back (a restored database): everything
            // this instance holds may be out of date.
            _ => {
                self.start_over().await?;
                *last = Some(head);
            }
        }
        loop {
            let started = Instant::now();
            let seen = last.unwrap_or(0);
            let changes = listener.read_after(seen, BATCH).await?;
            let head_moved = changes.is_empty() && !*caught_up && listener.head().await? > seen;
            // Numbers are consecutive unless some were trimmed: check every step, not just
            // the first (the trim removes a prefix, but a reader must not rely on that).
            let gap = changes.first().is_some_and(|c| c.seq != seen + 1)
                || changes
                    .iter()
                    .zip(changes.iter().skip(1))
                    .any(|(a, b)| b.seq != a.seq + 1);
            if gap || head_moved {
                // Trimmed while this instance was away: start over from the stores.
                tracing::info!(
                    after = seen,
                    "change feed has a gap: reloading the registry"
                );
                let head = listener.head().await?;
                self.start_over().await?;
                *last = Some(head);
                continue;
            }
            let full = i64::try_from(changes.len()).unwrap_or(i64::MAX) >= BATCH;
            if let Some(newest) = changes.last().map(|c| c.seq) {
                self.apply(&changes).await?;
                *last = Some(newest);
            }
            if full {
                continue;
            }
            if !*caught_up {
                tracing::info!(seq = last.unwrap_or(0), "change feed listening");
                *caught_up = true;
            }
            self.freshness.extend(started);
            if listener.wait(POLL).await == Wake::Closed {
                return Err(StorageError::Database(
                    "the change feed's connection closed".into(),
                ));
            }
        }
    }

    /// Everything may have changed: drop every cached token and reload the registry.
    async fn start_over(&self) -> Result<(), StorageError> {
        self.revocations.bump();
        self.registry.send(ReloadIndex).await.map_err(mailbox)?
    }

    async fn apply(&self, changes: &[Change]) -> Result<(), StorageError> {
        let mut revoked = false;
        for change in changes {
            tracing::debug!(
                seq = change.seq,
                kind = ?change.kind,
                delay_ms = change.delay_ms,
                "change applied"
            );
            match change.kind {
                Some(ChangeKind::Grant | ChangeKind::Token) => revoked = true,
                Some(ChangeKind::Client) => {
                    let forget = ForgetClient {
                        client_id: change.subject.clone(),
                    };
                    self.registry.send(forget).await.map_err(mailbox)?;
                }
                Some(ChangeKind::User) => {
                    let forget = ForgetUser {
                        username: change.subject.clone(),
                    };
                    self.registry.send(forget).await.map_err(mailbox)?;
                }
                // A kind of a later build: fail closed.
                None => {
                    self.start_over().await?;
                }
            }
        }
        if revoked {
            self.revocations.bump();
        }
        Ok(())
    }
}

fn mailbox(e: MailboxError) -> StorageError {
    StorageError::Database(format!("the client registry did not take a change: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_is_always_fresh_and_shared_only_within_the_bound_of_a_read() {
        let local = Freshness::local();
        assert!(local.is_fresh() && !local.is_shared());
        local.lapse();
        assert!(local.is_fresh(), "sled has no feed to wait for");

        let shared = Freshness::shared();
        assert!(!shared.is_fresh(), "not fresh before the first read");
        shared.extend(Instant::now());
        assert!(shared.is_fresh());
        shared.lapse();
        assert!(!shared.is_fresh());
        // A read that started longer than the bound ago makes nothing fresh.
        std::thread::sleep(BOUND * 2);
        let long_ago = Instant::now() - BOUND - Duration::from_millis(5);
        shared.extend(long_ago);
        assert!(!shared.is_fresh());
        shared.extend(Instant::now());
        std::thread::sleep(BOUND + Duration::from_millis(5));
        assert!(!shared.is_fresh(), "fresh past the bound without a read");
    }
}
