//! [`TokenStore`] on sled: the token ledger's trees of tokens ([`TOKENS_TREE`]), revoked
//! grants ([`REVOKED_GRANTS_TREE`]) and token lifetimes ([`LIFETIMES_TREE`]), with their
//! bounded sweeps.

use super::{read_i64, walk_slice, Durability, LIFETIMES_TREE, REVOKED_GRANTS_TREE, TOKENS_TREE};
use crate::{
    domain::secrets::TokenKey,
    storage::{
        codec::{decode_token, encode_token, token_expires_at},
        ready, GrantHolder, GrantId, GrantRevocation, IssueOutcome, NewToken, Persist,
        RevokedGrants, RotateOutcome, Rotation, RotationStep, StorageError, StoreFuture,
        Successors, Swept, TokenKind, TokenRecord, TokenRevocation, TokenStore,
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

/// Every grant of `holder` with a token in `tokens`, with its latest expiry: a walk of the
/// whole tree (administration only).
fn grants_in(
    tokens: &sled::Tree,
    holder: &GrantHolder,
) -> Result<Vec<(GrantId, i64)>, StorageError> {
    let mut grants: std::collections::HashMap<GrantId, i64> = Default::default();
    for kv in tokens.iter() {
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
        if !r.accepts(&old) || self.is_revoked(&old.grant_id)? {
            return Ok(RotateOutcome::Invalid);
        }
        match r.step(&old) {
            RotationStep::Reuse => {
                let revoked = self.revoke_grant_now(old.grant_id, r.forget_at)?;
                Ok(RotateOutcome::Reused {
                    grant_id: old.grant_id,
                    forget_at: revoked.forget_at,
                    client_id: old.client_id,
                })
            }
            RotationStep::InvalidScope => Ok(RotateOutcome::InvalidScope),
            RotationStep::Repeat { access, refresh } => {
                let access_record = self.get_now(&access.key())?;
                let refresh_record = self.get_now(&refresh.key())?;
                Ok(r.repeated(
                    &old.grant_id,
                    access,
                    refresh,
                    access_record,
                    refresh_record,
                ))
            }
            RotationStep::Rotate {
                access,
                refresh,
                access_record,
                refresh_record,
            } => {
                self.put_now(&access.key(), &access_record)?;
                self.put_now(&refresh.key(), &refresh_record)?;
                // Rotated out only after the successors are written: sled's log is
                // ordered, so a crash before the flush leaves either both or the presented
                // token still current (never a rotated token whose successors are missing,
                // which the client could not recover from).
                old.rotated_at_us = Some(r.rotated_at_us);
                self.put_now(&r.presented, &old)?;
                Ok(RotateOutcome::Rotated(Successors {
                    access,
                    refresh,
                    access_record,
                }))
            }
        }
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

    #[cfg(test)]
    fn grants_of_now(&self, holder: &GrantHolder) -> Result<Vec<(GrantId, i64)>, StorageError> {
        grants_in(&self.tokens, holder)
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
impl SledTokenStore {
    fn tokens_after_now(
        &self,
        after: Option<TokenKey>,
        limit: usize,
    ) -> Result<Vec<NewToken>, StorageError> {
        let range = match after {
            Some(after) => self.tokens.range((
                std::ops::Bound::Excluded(after.0),
                std::ops::Bound::Unbounded,
            )),
            None => self.tokens.iter(),
        };
        let mut page = Vec::new();
        for kv in range.take(limit) {
            let (k, v) = kv?;
            let key = <[u8; 40]>::try_from(&k[..]).map_err(|_| corrupt_token())?;
            let record = decode_token(&v).ok_or_else(corrupt_token)?;
            page.push(NewToken {
                key: TokenKey(key),
                record,
            });
        }
        Ok(page)
    }

    fn import_tokens_now(&self, tokens: &[NewToken]) -> Result<usize, StorageError> {
        let mut inserted = 0;
        for t in tokens {
            let absent = self.tokens.compare_and_swap(
                t.key.0,
                None::<&[u8]>,
                Some(encode_token(&t.record)),
            )?;
            if absent.is_ok() {
                inserted += 1;
            }
        }
        Ok(inserted)
    }
}

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

    /// On a blocking thread, over a handle of the tree: through the admin socket a running
    /// server's ledger keeps serving while the walk runs (it awaits this future without
    /// blocking). The walk reads a moving tree; a grant first issued while it runs may be
    /// missed, as one issued just after the revocation would be.
    fn grants_of(&self, holder: &GrantHolder) -> StoreFuture<Vec<(GrantId, i64)>> {
        let (tokens, holder) = (self.tokens.clone(), holder.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || grants_in(&tokens, &holder))
                .await
                .map_err(|e| StorageError::Database(format!("the token walk failed: {e}")))?
        })
    }

    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept> {
        ready(self.sweep_now(now, limit))
    }

    fn count(&self) -> StoreFuture<usize> {
        ready(Ok(self.tokens.len()))
    }

    fn tokens_after(&self, after: Option<TokenKey>, limit: usize) -> StoreFuture<Vec<NewToken>> {
        ready(self.tokens_after_now(after, limit))
    }

    fn lifetimes(&self) -> StoreFuture<Vec<(i64, i64)>> {
        ready(self.lifetimes_now())
    }

    fn import_tokens(&self, tokens: Vec<NewToken>) -> StoreFuture<usize> {
        ready(self.import_tokens_now(&tokens))
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

#[cfg(test)]
mod tests;
