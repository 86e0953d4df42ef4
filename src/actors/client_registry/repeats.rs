//! Recent public-client registrations by fingerprint, so that a repeated identical
//! registration (RFC 7591 §3) answers the client it registered before (issue 13).
//!
//! Hosted MCP clients reach us from a few shared egress addresses and register again on
//! every new session; counted one by one, their registrations exhaust the per-address limit
//! and lock every user behind that address out. So the registry remembers, for 24 hours,
//! which public client each ([`NewClient::fingerprint`]: address key + effective metadata)
//! registered, and answers a repeat with that client, with no write and without counting
//! it against the per-address limit or `max_registered_clients`: the limit counts distinct
//! clients. Confidential clients are never remembered: their secret is shown once and
//! cannot be shown again, so each registration gets a new client.
//!
//! In memory, like the throttles: per process on the embedded backend (one process serves
//! a data directory), empty after a restart (a repeat then registers a new client, which is
//! the safe direction). A shared backend must keep the fingerprint with the client instead
//! (the contract is in [`ClientStore`](crate::storage::ClientStore)).
//!
//! [`NewClient::fingerprint`]: crate::domain::client::NewClient::fingerprint

use std::collections::{BTreeSet, HashMap};

use crate::domain::secrets::Digest;

/// How long a registration is answered again for a repeat, from its first registration.
pub(super) const REPEAT_WINDOW_SECS: i64 = 24 * 3600;

/// Most registrations remembered; past it the oldest is forgotten (its next repeat then
/// registers a new client). 10,000 entries take about 1.5 MB.
pub(super) const MAX_REMEMBERED: usize = 10_000;

/// Fingerprint → (client_id, first registered at), bounded and oldest-first evictable.
#[derive(Debug, Default)]
pub(super) struct RecentRegistrations {
    by_fingerprint: HashMap<Digest, (String, i64)>,
    /// The same entries by registration time, for pruning and eviction.
    by_time: BTreeSet<(i64, Digest)>,
}

impl RecentRegistrations {
    /// The client registered under `fingerprint` within [`REPEAT_WINDOW_SECS`] of `now`.
    pub(super) fn get(&self, fingerprint: &Digest, now: i64) -> Option<&str> {
        self.by_fingerprint
            .get(fingerprint)
            .filter(|(_, at)| now - *at < REPEAT_WINDOW_SECS)
            .map(|(id, _)| id.as_str())
    }

    /// Remembers that `client_id` was registered under `fingerprint` at `at`, replacing
    /// what it was before, and forgets the oldest entries past [`MAX_REMEMBERED`].
    pub(super) fn insert(&mut self, fingerprint: Digest, client_id: String, at: i64) {
        if let Some((_, old)) = self.by_fingerprint.insert(fingerprint, (client_id, at)) {
            self.by_time.remove(&(old, fingerprint));
        }
        self.by_time.insert((at, fingerprint));
        while self.by_fingerprint.len() > MAX_REMEMBERED {
            let Some((_, oldest)) = self.by_time.pop_first() else {
                break;
            };
            self.by_fingerprint.remove(&oldest);
        }
    }

    /// Forgets `fingerprint` (its client is gone).
    pub(super) fn remove(&mut self, fingerprint: &Digest) {
        if let Some((_, at)) = self.by_fingerprint.remove(fingerprint) {
            self.by_time.remove(&(at, *fingerprint));
        }
    }

    /// Forgets the registrations older than [`REPEAT_WINDOW_SECS`].
    pub(super) fn prune(&mut self, now: i64) {
        while let Some(&(at, fingerprint)) = self.by_time.first() {
            if now - at < REPEAT_WINDOW_SECS {
                break;
            }
            self.by_time.pop_first();
            self.by_fingerprint.remove(&fingerprint);
        }
    }

    /// How many registrations are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_fingerprint.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u32) -> Digest {
        Digest::of(&n.to_be_bytes())
    }

    #[test]
    fn answers_within_the_window_only() {
        let mut recent = RecentRegistrations::default();
        recent.insert(fp(1), "a".into(), 100);
        assert_eq!(recent.get(&fp(1), 100 + REPEAT_WINDOW_SECS - 1), Some("a"));
        assert_eq!(recent.get(&fp(1), 100 + REPEAT_WINDOW_SECS), None);
        assert_eq!(recent.get(&fp(2), 100), None);
        recent.prune(100 + REPEAT_WINDOW_SECS - 1);
        assert_eq!(recent.len(), 1);
        recent.prune(100 + REPEAT_WINDOW_SECS);
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_replaced_entry_is_pruned_by_its_new_time() {
        let mut recent = RecentRegistrations::default();
        recent.insert(fp(1), "old".into(), 0);
        recent.insert(fp(1), "new".into(), 1000);
        recent.prune(REPEAT_WINDOW_SECS);
        assert_eq!(recent.get(&fp(1), REPEAT_WINDOW_SECS), Some("new"));
        recent.remove(&fp(1));
        assert_eq!(recent.len(), 0);
        assert!(recent.by_time.is_empty());
    }

    #[test]
    fn the_oldest_is_evicted_past_the_bound() {
        let mut recent = RecentRegistrations::default();
        for n in 0..=u32::try_from(MAX_REMEMBERED).unwrap() {
            recent.insert(fp(n), n.to_string(), i64::from(n));
        }
        assert_eq!(recent.len(), MAX_REMEMBERED);
        assert_eq!(recent.get(&fp(0), 0), None);
        assert_eq!(recent.get(&fp(1), 1), Some("1"));
    }
}
