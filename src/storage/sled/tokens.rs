//! [`TokenStore`] on sled: the token ledger's trees of tokens ([`TOKENS_TREE`]), revoked
//! grants ([`REVOKED_GRANTS_TREE`]) and token lifetimes ([`LIFETIMES_TREE`]), with their
//! bounded sweeps.

use super::{read_i64, walk_slice, Durability, LIFETIMES_TREE, REVOKED_GRANTS_TREE, TOKENS_TREE};
use crate::{
    domain::secrets::TokenKey,
    storage::{
        codec::{decode_token, encode_token, token_expires_at},
        GrantHolder, GrantId, Persist, RevokedGrants, StorageError, Swept, TokenRecord, TokenStore,
    },
};

/// A revoked-grant record as read.
enum RevokedEntry {
    /// A grant and its forget time.
    Grant(GrantId, i64),
    /// A record that does not decode: the grant when the key still names one.
    Undecodable(Option<GrantId>),
}

fn decode_revoked(key: &[u8], value: &[u8]) -> RevokedEntry {
    let Ok(id) = <[u8; 16]>::try_from(key) else {
        return RevokedEntry::Undecodable(None);
    };
    match read_i64(value) {
        Some(forget_at) => RevokedEntry::Grant(GrantId(id), forget_at),
        None => RevokedEntry::Undecodable(Some(GrantId(id))),
    }
}

/// Logs a revoked-grant record that does not decode. The grant id is no secret (it never
/// leaves the server) and tells an operator which record it is.
fn log_undecodable_revocation(grant: Option<GrantId>, value_len: usize) {
    match grant {
        Some(grant) => tracing::error!(
            tree = REVOKED_GRANTS_TREE,
            grant = ?grant,
            bytes = value_len,
            "revoked grant with an unreadable forget time: kept, and revoked for good"
        ),
        None => tracing::error!(
            tree = REVOKED_GRANTS_TREE,
            bytes = value_len,
            "revoked-grant record with an unreadable key: kept, but it names no grant"
        ),
    }
}

/// [`TokenStore`] on sled.
///
/// No expiry index: an index entry per token doubled the writes of every issuance. The
/// sweeper instead walks the token tree a bounded slice at a time from a cursor, reading
/// only each record's fixed-offset `expires_at`.
#[derive(Debug)]
pub struct SledTokenStore {
    tokens: sled::Tree,
    revoked: sled::Tree,
    lifetimes: sled::Tree,
    durability: Durability,
    /// Where the incremental sweeps continue, one per tree (the store is owned by one
    /// actor).
    sweep_cursor: std::cell::RefCell<Vec<u8>>,
    revoked_cursor: std::cell::RefCell<Vec<u8>>,
}

impl SledTokenStore {
    /// Opens the token ledger's trees.
    pub fn open(db: &sled::Db, durability: Durability) -> Result<Self, StorageError> {
        Ok(Self {
            tokens: db.open_tree(TOKENS_TREE)?,
            revoked: db.open_tree(REVOKED_GRANTS_TREE)?,
            lifetimes: db.open_tree(LIFETIMES_TREE)?,
            durability,
            sweep_cursor: std::cell::RefCell::new(Vec::new()),
            revoked_cursor: std::cell::RefCell::new(Vec::new()),
        })
    }
}

fn corrupt_token() -> StorageError {
    StorageError::Corrupt {
        tree: TOKENS_TREE,
        reason: "undecodable token record".into(),
    }
}

impl TokenStore for SledTokenStore {
    fn put(&self, key: &TokenKey, record: &TokenRecord) -> Result<(), StorageError> {
        self.tokens.insert(key.0, encode_token(record))?;
        Ok(())
    }

    fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError> {
        match self.tokens.get(key.0)? {
            Some(v) => decode_token(&v).map(Some).ok_or_else(corrupt_token),
            None => Ok(None),
        }
    }

    fn remove(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError> {
        match self.tokens.remove(key.0)? {
            Some(v) => decode_token(&v).map(Some).ok_or_else(corrupt_token),
            None => Ok(None),
        }
    }

    fn record_lifetime(&self, lifetime: i64, in_force_until: i64) -> Result<(), StorageError> {
        let key = lifetime.to_be_bytes();
        let current = self.lifetimes.get(key)?.and_then(|v| read_i64(&v));
        if current.is_none_or(|until| until < in_force_until) {
            self.lifetimes
                .insert(key, &in_force_until.to_be_bytes()[..])?;
        }
        Ok(())
    }

    fn lifetimes(&self) -> Result<Vec<(i64, i64)>, StorageError> {
        let mut out = Vec::new();
        for kv in self.lifetimes.iter() {
            let (k, v) = kv?;
            match (read_i64(&k), read_i64(&v)) {
                (Some(lifetime), Some(until)) => out.push((lifetime, until)),
                // Fail closed: a record that cannot be read might have been the longest
                // lifetime; report it as one that never ends, so revocations are kept.
                _ => {
                    tracing::error!(
                        tree = LIFETIMES_TREE,
                        "undecodable token lifetime record; revocations are kept for good"
                    );
                    out.push((i64::MAX, i64::MAX));
                }
            }
        }
        Ok(out)
    }

    fn put_revoked_grant(&self, grant: &GrantId, forget_at: i64) -> Result<(), StorageError> {
        self.revoked.insert(grant.0, &forget_at.to_be_bytes()[..])?;
        Ok(())
    }

    fn revoked_grants(&self) -> Result<RevokedGrants, StorageError> {
        let mut out = RevokedGrants::default();
        for kv in self.revoked.iter() {
            let (k, v) = kv?;
            match decode_revoked(&k, &v) {
                RevokedEntry::Grant(grant, forget_at) => out.grants.push((grant, forget_at)),
                RevokedEntry::Undecodable(grant) => {
                    log_undecodable_revocation(grant, v.len());
                    out.undecodable += 1;
                    if let Some(grant) = grant {
                        out.grants.push((grant, i64::MAX));
                    }
                }
            }
        }
        Ok(out)
    }

    fn grants_of(&self, holder: &GrantHolder) -> Result<Vec<(GrantId, i64)>, StorageError> {
        let mut grants: std::collections::HashMap<GrantId, i64> = Default::default();
        for kv in self.tokens.iter() {
            let (_, v) = kv?;
            // An undecodable record can never validate, so it belongs to no one.
            let Some(record) = decode_token(&v) else {
                continue;
            };
            if holder.holds(&record.client_id, record.subject.as_deref()) {
                let latest = grants.entry(record.grant_id).or_insert(record.expires_at);
                *latest = (*latest).max(record.expires_at);
            }
        }
        Ok(grants.into_iter().collect())
    }

    fn sweep(&self, now: i64, limit: usize) -> Result<Swept, StorageError> {
        let mut swept = Swept::default();
        walk_slice(&self.tokens, &self.sweep_cursor, limit, |key, value| {
            // A token record too short to hold its expiry is dropped too: it can never
            // validate, and it is no revocation (those live in their own tree).
            if token_expires_at(value).is_none_or(|expires| expires <= now) {
                self.tokens.remove(key)?;
                swept.removed += 1;
            }
            Ok(())
        })?;
        walk_slice(&self.revoked, &self.revoked_cursor, limit, |key, value| {
            match decode_revoked(key, value) {
                RevokedEntry::Grant(grant, forget_at) if forget_at <= now => {
                    self.revoked.remove(key)?;
                    swept.forgotten_grants.push(grant);
                }
                RevokedEntry::Grant(..) => {}
                // Never dropped: what cannot be read cannot be shown to be over.
                RevokedEntry::Undecodable(grant) => {
                    log_undecodable_revocation(grant, value.len());
                    swept.undecodable_revocations += 1;
                    swept.undecodable_grants.extend(grant);
                }
            }
            Ok(())
        })?;
        // A handful of records (one per lifetime the server ever ran with): no bound needed.
        for kv in self.lifetimes.iter() {
            let (k, v) = kv?;
            if let (Some(lifetime), Some(until)) = (read_i64(&k), read_i64(&v)) {
                if until.saturating_add(lifetime) <= now {
                    self.lifetimes.remove(k)?;
                }
            }
        }
        Ok(swept)
    }

    fn count(&self) -> usize {
        self.tokens.len()
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{scope::Scopes, secrets::AccessToken},
        storage::TokenKind,
    };

    fn token(grant: GrantId, client: &str, subject: Option<&str>, expires_at: i64) -> TokenRecord {
        TokenRecord {
            kind: TokenKind::Access,
            grant_id: grant,
            client_id: client.into(),
            subject: subject.map(Into::into),
            scopes: Scopes::parse("mcp:read").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            issued_at: 0,
            expires_at,
            rotated_at_us: None,
        }
    }

    #[test]
    fn grants_of_a_subject_or_client_with_their_latest_expiry() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let (a, b, c) = (
            GrantId::generate(),
            GrantId::generate(),
            GrantId::generate(),
        );
        for record in [
            token(a, "app", Some("alice"), 10),
            token(a, "app", Some("alice"), 30),
            token(b, "app", Some("bob"), 20),
            token(c, "machine", None, 40),
        ] {
            store.put(&AccessToken::generate().key(), &record).unwrap();
        }
        store
            .tokens
            .insert(&[0u8; 40][..], &b"not a record"[..])
            .unwrap();
        let of = |holder| {
            let mut grants = store.grants_of(&holder).unwrap();
            grants.sort_by_key(|(_, exp)| *exp);
            grants
        };
        assert_eq!(of(GrantHolder::Subject("alice".into())), vec![(a, 30)]);
        assert_eq!(
            of(GrantHolder::Client("app".into())),
            vec![(b, 20), (a, 30)]
        );
        assert_eq!(of(GrantHolder::Client("machine".into())), vec![(c, 40)]);
        assert!(of(GrantHolder::Subject("nobody".into())).is_empty());
    }

    #[test]
    fn revoked_grants_are_swept_a_bounded_slice_at_a_time_and_undecodable_ones_kept() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let grants: Vec<GrantId> = (0..5u8).map(|i| GrantId([i; 16])).collect();
        for g in &grants {
            store.put_revoked_grant(g, 10).unwrap();
        }
        let garbled = GrantId([9; 16]);
        store.revoked.insert(garbled.0, &b"bad"[..]).unwrap();
        store.revoked.insert(&b"short key"[..], &b"x"[..]).unwrap();

        let loaded = store.revoked_grants().unwrap();
        assert_eq!(loaded.undecodable, 2);
        assert!(loaded.grants.contains(&(garbled, i64::MAX)), "fail closed");

        // Seven records, three per slice: the sweep takes three ticks to go round.
        let mut forgotten = Vec::new();
        let mut undecodable = 0;
        for _ in 0..3 {
            let swept = store.sweep(100, 3).unwrap();
            assert!(swept.forgotten_grants.len() <= 3);
            forgotten.extend(swept.forgotten_grants);
            undecodable += swept.undecodable_revocations;
            if let Some(g) = swept.undecodable_grants.first() {
                assert_eq!(*g, garbled);
            }
        }
        forgotten.sort_by_key(|g| g.0);
        assert_eq!(forgotten, grants);
        assert_eq!(undecodable, 2);
        assert_eq!(
            store.revoked.len(),
            2,
            "undecodable records are never dropped"
        );
    }

    #[test]
    fn lifetime_records_only_grow_and_are_swept_once_no_token_can_outlive_them() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        assert!(store.lifetimes().unwrap().is_empty());
        store.record_lifetime(100, 50).unwrap();
        store.record_lifetime(100, 20).unwrap();
        store.record_lifetime(10, 60).unwrap();
        let mut seen = store.lifetimes().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, [(10, 60), (100, 50)]);
        // (10, 60) can cover tokens until 70, (100, 50) until 150.
        store.sweep(70, 10).unwrap();
        assert_eq!(store.lifetimes().unwrap(), [(100, 50)]);
        store.sweep(149, 10).unwrap();
        assert_eq!(store.lifetimes().unwrap(), [(100, 50)]);
        store.sweep(150, 10).unwrap();
        assert!(store.lifetimes().unwrap().is_empty());
        // An unreadable record reads as a lifetime that never ends (fail closed).
        db.open_tree(LIFETIMES_TREE)
            .unwrap()
            .insert(7i64.to_be_bytes(), &b"x"[..])
            .unwrap();
        assert_eq!(store.lifetimes().unwrap(), [(i64::MAX, i64::MAX)]);
    }
}
