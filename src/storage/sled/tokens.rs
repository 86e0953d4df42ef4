//! [`TokenStore`] on sled: the token ledger's trees of tokens ([`TOKENS_TREE`]), revoked
//! grants ([`REVOKED_GRANTS_TREE`]) and token lifetimes ([`LIFETIMES_TREE`]), with their
//! bounded sweeps.

use super::{read_i64, walk_slice, Durability, LIFETIMES_TREE, REVOKED_GRANTS_TREE, TOKENS_TREE};
use crate::{
    domain::secrets::TokenKey,
    storage::{
        codec::{decode_token, encode_token, token_expires_at},
        ready, GrantHolder, GrantId, GrantRevocation, IssueOutcome, NewToken, Persist,
        RevokedGrants, RotateOutcome, Rotation, StorageError, StoreFuture, Successors, Swept,
        TokenKind, TokenRecord, TokenRevocation, TokenStore,
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

impl SledTokenStore {
    fn get_now(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError> {
        match self.tokens.get(key.0)? {
            Some(v) => decode_token(&v).map(Some).ok_or_else(corrupt_token),
            None => Ok(None),
        }
    }

    fn put_now(&self, key: &TokenKey, record: &TokenRecord) -> Result<(), StorageError> {
        self.tokens.insert(key.0, encode_token(record))?;
        Ok(())
    }

    /// Whether `grant` has a revocation record, readable or not (fail closed).
    fn is_revoked(&self, grant: &GrantId) -> Result<bool, StorageError> {
        Ok(self.revoked.contains_key(grant.0)?)
    }

    fn issue_now(
        &self,
        access: &NewToken,
        refresh: Option<&NewToken>,
    ) -> Result<IssueOutcome, StorageError> {
        if self.is_revoked(&access.record.grant_id)? {
            return Ok(IssueOutcome::GrantRevoked);
        }
        self.put_now(&access.key, &access.record)?;
        if let Some(refresh) = refresh {
            self.put_now(&refresh.key, &refresh.record)?;
        }
        Ok(IssueOutcome::Issued)
    }

    fn revoke_grant_now(
        &self,
        grant: GrantId,
        forget_at: i64,
    ) -> Result<GrantRevocation, StorageError> {
        let current = self.revoked.get(grant.0)?;
        let newly = current.is_none();
        // A record that exists but cannot be read is revoked for good already.
        let current = current.map(|v| read_i64(&v).unwrap_or(i64::MAX));
        match current {
            Some(until) if until >= forget_at => Ok(GrantRevocation {
                grant_id: grant,
                newly,
                forget_at: until,
            }),
            _ => {
                self.revoked.insert(grant.0, &forget_at.to_be_bytes()[..])?;
                Ok(GrantRevocation {
                    grant_id: grant,
                    newly,
                    forget_at,
                })
            }
        }
    }

    fn rotate_now(&self, r: &Rotation) -> Result<RotateOutcome, StorageError> {
        let Some(mut old) = self.get_now(&r.presented)? else {
            return Ok(RotateOutcome::Invalid);
        };
        if old.kind != TokenKind::Refresh
            || old.client_id != r.client_id
            || old.expires_at <= r.now
            || self.is_revoked(&old.grant_id)?
        {
            return Ok(RotateOutcome::Invalid);
        }
        if let Some(rotated_at_us) = old.rotated_at_us {
            let rotated_at = rotated_at_us.div_euclid(1_000_000);
            if !(r.grace > 0 && r.now - rotated_at <= r.grace) {
                let revoked = self.revoke_grant_now(old.grant_id, r.forget_at)?;
                return Ok(RotateOutcome::Reused {
                    grant_id: old.grant_id,
                    forget_at: revoked.forget_at,
                    client_id: old.client_id,
                });
            }
        }
        let access_scopes = match &r.scopes {
            Some(s) if !s.is_subset(&old.scopes) => return Ok(RotateOutcome::InvalidScope),
            Some(s) => s.clone(),
            None => old.scopes.clone(),
        };
        if let Some(rotated_at_us) = old.rotated_at_us {
            let (access, refresh) = (r.successors)(&old.grant_id, rotated_at_us);
            let same_grant = |t: &TokenRecord| t.grant_id == old.grant_id;
            let access_record = self.get_now(&access.key())?.filter(same_grant);
            let refresh_record = self.get_now(&refresh.key())?.filter(same_grant);
            return Ok(match (access_record, refresh_record) {
                (Some(a), Some(f)) if a.expires_at > r.now && f.expires_at > r.now => {
                    RotateOutcome::Repeated(Successors {
                        access,
                        refresh,
                        access_record: a,
                    })
                }
                _ => RotateOutcome::Invalid,
            });
        }
        let (access, refresh) = (r.successors)(&old.grant_id, r.rotated_at_us);
        let access_record = TokenRecord {
            kind: TokenKind::Access,
            grant_id: old.grant_id,
            client_id: old.client_id.clone(),
            subject: old.subject.clone(),
            scopes: access_scopes,
            resource: old.resource.clone(),
            issued_at: r.now,
            expires_at: r.access_expires_at,
            rotated_at_us: None,
        };
        // The new refresh token keeps the grant's full scope (OAuth 2.1 §4.3.3); only the
        // access token is narrowed.
        let refresh_record = TokenRecord {
            kind: TokenKind::Refresh,
            scopes: old.scopes.clone(),
            expires_at: r.refresh_expires_at,
            ..access_record.clone()
        };
        self.put_now(&access.key(), &access_record)?;
        self.put_now(&refresh.key(), &refresh_record)?;
        // Rotated out only after the successors are written: sled's log is ordered, so a
        // crash before the flush leaves either both or the presented token still current
        // (never a rotated token whose successors are missing, which the client could not
        // recover from).
        old.rotated_at_us = Some(r.rotated_at_us);
        self.put_now(&r.presented, &old)?;
        Ok(RotateOutcome::Rotated(Successors {
            access,
            refresh,
            access_record,
        }))
    }

    fn revoke_token_now(
        &self,
        key: &TokenKey,
        client_id: &str,
        forget_at: i64,
    ) -> Result<TokenRevocation, StorageError> {
        let Some(record) = self.get_now(key)? else {
            return Ok(TokenRevocation::Ignored);
        };
        if record.client_id != client_id {
            return Ok(TokenRevocation::Ignored);
        }
        Ok(match record.kind {
            TokenKind::Access => {
                self.tokens.remove(key.0)?;
                TokenRevocation::AccessRemoved
            }
            TokenKind::Refresh => {
                // The revocation first: a crash between the two leaves the grant revoked.
                let revoked = self.revoke_grant_now(record.grant_id, forget_at)?;
                self.tokens.remove(key.0)?;
                TokenRevocation::GrantRevoked(revoked)
            }
        })
    }

    fn record_lifetime_now(
        &self,
        lifetime: i64,
        in_force_until: i64,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        let key = lifetime.to_be_bytes();
        let current = self.lifetimes.get(key)?.and_then(|v| read_i64(&v));
        if current.is_none_or(|until| until < in_force_until) {
            self.lifetimes
                .insert(key, &in_force_until.to_be_bytes()[..])?;
        }
        self.lifetimes_now()
    }

    fn lifetimes_now(&self) -> Result<Vec<(i64, i64)>, StorageError> {
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

    fn revoked_grants_now(&self) -> Result<RevokedGrants, StorageError> {
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

    fn grants_of_now(&self, holder: &GrantHolder) -> Result<Vec<(GrantId, i64)>, StorageError> {
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

    fn sweep_now(&self, now: i64, limit: usize) -> Result<Swept, StorageError> {
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
}

/// Each intent runs to completion inside the call (see [`TokenStore`]'s atomicity section:
/// the ledger, the one owner of these trees, handles one message at a time) and answers a
/// ready future.
impl TokenStore for SledTokenStore {
    fn issue(&self, access: NewToken, refresh: Option<NewToken>) -> StoreFuture<IssueOutcome> {
        ready(self.issue_now(&access, refresh.as_ref()))
    }

    fn rotate(&self, rotation: Rotation) -> StoreFuture<RotateOutcome> {
        ready(self.rotate_now(&rotation))
    }

    fn get(&self, key: &TokenKey) -> StoreFuture<Option<TokenRecord>> {
        ready(self.get_now(key))
    }

    fn revoke_token(
        &self,
        key: &TokenKey,
        client_id: &str,
        forget_at: i64,
    ) -> StoreFuture<TokenRevocation> {
        ready(self.revoke_token_now(key, client_id, forget_at))
    }

    fn revoke_grant(&self, grant: GrantId, forget_at: i64) -> StoreFuture<GrantRevocation> {
        ready(self.revoke_grant_now(grant, forget_at))
    }

    fn record_lifetime(&self, lifetime: i64, in_force_until: i64) -> StoreFuture<Vec<(i64, i64)>> {
        ready(self.record_lifetime_now(lifetime, in_force_until))
    }

    fn revoked_grants(&self) -> StoreFuture<RevokedGrants> {
        ready(self.revoked_grants_now())
    }

    fn grants_of(&self, holder: &GrantHolder) -> StoreFuture<Vec<(GrantId, i64)>> {
        ready(self.grants_of_now(holder))
    }

    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept> {
        ready(self.sweep_now(now, limit))
    }

    fn count(&self) -> StoreFuture<usize> {
        ready(Ok(self.tokens.len()))
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        scope::Scopes,
        secrets::{AccessToken, RefreshToken},
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
            store
                .put_now(&AccessToken::generate().key(), &record)
                .unwrap();
        }
        store
            .tokens
            .insert(&[0u8; 40][..], &b"not a record"[..])
            .unwrap();
        let of = |holder| {
            let mut grants = store.grants_of_now(&holder).unwrap();
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
            store.revoke_grant_now(*g, 10).unwrap();
        }
        let garbled = GrantId([9; 16]);
        store.revoked.insert(garbled.0, &b"bad"[..]).unwrap();
        store.revoked.insert(&b"short key"[..], &b"x"[..]).unwrap();

        let loaded = store.revoked_grants_now().unwrap();
        assert_eq!(loaded.undecodable, 2);
        assert!(loaded.grants.contains(&(garbled, i64::MAX)), "fail closed");

        // Seven records, three per slice: the sweep takes three ticks to go round.
        let mut forgotten = Vec::new();
        let mut undecodable = 0;
        for _ in 0..3 {
            let swept = store.sweep_now(100, 3).unwrap();
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
        assert!(store.lifetimes_now().unwrap().is_empty());
        store.record_lifetime_now(100, 50).unwrap();
        store.record_lifetime_now(100, 20).unwrap();
        store.record_lifetime_now(10, 60).unwrap();
        let mut seen = store.lifetimes_now().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, [(10, 60), (100, 50)]);
        // (10, 60) can cover tokens until 70, (100, 50) until 150.
        store.sweep_now(70, 10).unwrap();
        assert_eq!(store.lifetimes_now().unwrap(), [(100, 50)]);
        store.sweep_now(149, 10).unwrap();
        assert_eq!(store.lifetimes_now().unwrap(), [(100, 50)]);
        store.sweep_now(150, 10).unwrap();
        assert!(store.lifetimes_now().unwrap().is_empty());
        // An unreadable record reads as a lifetime that never ends (fail closed).
        db.open_tree(LIFETIMES_TREE)
            .unwrap()
            .insert(7i64.to_be_bytes(), &b"x"[..])
            .unwrap();
        assert_eq!(store.lifetimes_now().unwrap(), [(i64::MAX, i64::MAX)]);
    }

    /// Runs an intent through the trait, as the ledger does; sled answers at once.
    fn run<T>(answer: StoreFuture<T>) -> T {
        use futures_util::FutureExt as _;
        answer
            .now_or_never()
            .expect("the sled store answers ready futures")
            .unwrap()
    }

    fn refresh_token(grant: GrantId, expires_at: i64) -> TokenRecord {
        TokenRecord {
            kind: TokenKind::Refresh,
            scopes: Scopes::parse("mcp:read mcp:write").unwrap(),
            ..token(grant, "app", Some("alice"), expires_at)
        }
    }

    /// A rotation at second `now` (stamped `now` seconds exactly) with a 10 s window.
    fn rotation(presented: &RefreshToken, now: i64, scopes: Option<&str>) -> Rotation {
        let presented_secret = presented.secret().to_owned();
        Rotation {
            presented: presented.key(),
            client_id: "app".into(),
            scopes: scopes.map(|s| Scopes::parse(s).unwrap()),
            now,
            rotated_at_us: now * 1_000_000,
            grace: 10,
            access_expires_at: now + 100,
            refresh_expires_at: now + 1_000,
            forget_at: now + 5_000,
            // Deterministic per (presented, grant, time), like the ledger's HMAC.
            successors: Box::new(move |grant, at| {
                let tag = format!("{presented_secret}-{:?}-{at}", grant.0);
                let derive = |kind: &str| {
                    let digest =
                        crate::domain::secrets::Digest::of(format!("{tag}-{kind}").as_bytes());
                    crate::domain::secrets::ordered_token_with(
                        u64::try_from(at).unwrap(),
                        &digest.0,
                    )
                };
                (
                    AccessToken::new(derive("access")),
                    RefreshToken::new(derive("refresh")),
                )
            }),
        }
    }

    fn stored(store: &SledTokenStore, grant: GrantId, expires_at: i64) -> RefreshToken {
        let token = RefreshToken::generate();
        store
            .put_now(&token.key(), &refresh_token(grant, expires_at))
            .unwrap();
        token
    }

    #[test]
    fn issue_stores_the_tokens_unless_the_grant_is_revoked() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let grant = GrantId::generate();
        let new = |record: TokenRecord| NewToken {
            key: AccessToken::generate().key(),
            record,
        };
        let (access, refresh) = (
            new(token(grant, "app", None, 50)),
            new(refresh_token(grant, 90)),
        );
        let (access_key, refresh_key) = (access.key, refresh.key);
        assert_eq!(
            run(store.issue(access, Some(refresh))),
            IssueOutcome::Issued
        );
        assert_eq!(run(store.get(&access_key)).unwrap().expires_at, 50);
        assert_eq!(
            run(store.get(&refresh_key)).unwrap().kind,
            TokenKind::Refresh
        );
        assert_eq!(run(store.count()), 2);

        run(store.revoke_grant(grant, 100));
        let late = new(token(grant, "app", None, 50));
        let late_key = late.key;
        assert_eq!(run(store.issue(late, None)), IssueOutcome::GrantRevoked);
        assert!(run(store.get(&late_key)).is_none(), "nothing stored");
        assert_eq!(run(store.count()), 2);
    }

    #[test]
    fn rotate_rotates_once_repeats_within_the_window_and_revokes_on_reuse_after_it() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let grant = GrantId::generate();
        let presented = stored(&store, grant, 10_000);

        // Rotated: successors stored with the presented token's claims, the access token
        // narrowed, the presented token marked.
        let RotateOutcome::Rotated(first) =
            run(store.rotate(rotation(&presented, 100, Some("mcp:read"))))
        else {
            panic!("first presentation rotates");
        };
        assert_eq!(first.access_record.scopes.to_string(), "mcp:read");
        assert_eq!(first.access_record.expires_at, 200);
        let successor = run(store.get(&first.refresh.key())).unwrap();
        assert_eq!(successor.scopes.to_string(), "mcp:read mcp:write");
        assert_eq!((successor.grant_id, successor.expires_at), (grant, 1_100));
        let old = run(store.get(&presented.key())).unwrap();
        assert_eq!(old.rotated_at_us, Some(100_000_000));
        assert_eq!(run(store.count()), 3);

        // Repeated within the window: the same pair (derived for the first rotation's
        // time), nothing written.
        let RotateOutcome::Repeated(again) = run(store.rotate(rotation(&presented, 110, None)))
        else {
            panic!("a replay within the window repeats");
        };
        assert_eq!(again.access.secret(), first.access.secret());
        assert_eq!(again.refresh.secret(), first.refresh.secret());
        assert_eq!(again.access_record.scopes.to_string(), "mcp:read");
        assert_eq!(run(store.count()), 3);

        // A wider scope is refused before anything else is decided.
        assert!(matches!(
            run(store.rotate(rotation(&presented, 110, Some("mcp:admin")))),
            RotateOutcome::InvalidScope
        ));

        // Reused after the window: the grant is revoked in the same intent.
        let RotateOutcome::Reused {
            grant_id,
            forget_at,
            ..
        } = run(store.rotate(rotation(&presented, 111, None)))
        else {
            panic!("a replay after the window is reuse");
        };
        assert_eq!((grant_id, forget_at), (grant, 111 + 5_000));
        let loaded = run(store.revoked_grants());
        assert_eq!(loaded.grants, [(grant, 5_111)]);
        // And then every token of the grant is refused, the successor included.
        assert!(matches!(
            run(store.rotate(rotation(&first.refresh, 112, None))),
            RotateOutcome::Invalid
        ));
    }

    #[test]
    fn rotate_refuses_unknown_expired_foreign_and_access_tokens_without_writing() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let grant = GrantId::generate();
        let invalid = |outcome| assert!(matches!(outcome, RotateOutcome::Invalid), "{outcome:?}");
        invalid(run(store.rotate(rotation(
            &RefreshToken::generate(),
            100,
            None,
        ))));
        let expired = stored(&store, grant, 100);
        invalid(run(store.rotate(rotation(&expired, 100, None))));
        let live = stored(&store, grant, 1_000);
        let mut foreign = rotation(&live, 100, None);
        foreign.client_id = "other".into();
        invalid(run(store.rotate(foreign)));
        let access = RefreshToken::generate();
        store
            .put_now(&access.key(), &token(grant, "app", Some("alice"), 1_000))
            .unwrap();
        invalid(run(store.rotate(rotation(&access, 100, None))));
        assert_eq!(run(store.count()), 3, "nothing written");
        assert!(run(store.get(&live.key())).unwrap().rotated_at_us.is_none());
        // Within the window, a successor gone since (revoked with its access token, or
        // swept) makes the repeat invalid rather than minting it again.
        let RotateOutcome::Rotated(first) = run(store.rotate(rotation(&live, 100, None))) else {
            panic!("rotates");
        };
        assert_eq!(
            run(store.revoke_token(&first.access.key(), "app", 0)),
            TokenRevocation::AccessRemoved
        );
        invalid(run(store.rotate(rotation(&live, 105, None))));
    }

    #[test]
    fn revoking_a_token_is_per_client_and_a_refresh_token_takes_its_grant() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let grant = GrantId::generate();
        let refresh = stored(&store, grant, 1_000);
        assert_eq!(
            run(store.revoke_token(&refresh.key(), "other", 50)),
            TokenRevocation::Ignored
        );
        assert_eq!(
            run(store.revoke_token(&RefreshToken::generate().key(), "app", 50)),
            TokenRevocation::Ignored
        );
        assert_eq!(
            run(store.revoke_token(&refresh.key(), "app", 50)),
            TokenRevocation::GrantRevoked(GrantRevocation {
                grant_id: grant,
                newly: true,
                forget_at: 50
            })
        );
        assert!(run(store.get(&refresh.key())).is_none());
        // A revocation only ever lasts longer.
        let again = run(store.revoke_grant(grant, 40));
        assert_eq!((again.newly, again.forget_at), (false, 50));
        let later = run(store.revoke_grant(grant, 70));
        assert_eq!((later.newly, later.forget_at), (false, 70));
        // An unreadable record is revoked for good.
        store.revoked.insert(grant.0, &b"bad"[..]).unwrap();
        assert_eq!(run(store.revoke_grant(grant, 80)).forget_at, i64::MAX);
    }
}
