//! Revocation (RFC 7009 §2.1: revoking a refresh token revokes its grant; OAuth 2.1
//! §4.1.3: a replayed code revokes its grant; administration), and how long a revocation
//! is remembered (the lifetime records and the horizon, see the ledger's module docs).
//!
//! [`TokenLedger::revoke_grant_until`] is the one place where a grant becomes revoked.

use actix::prelude::*;

use super::{after_persist, LedgerError, RevokeGrant, RevokeGrantsOf, RevokeToken, TokenLedger};
use crate::{
    domain::grant::{GrantHolder, GrantId, TokenKind},
    storage::StorageError,
};

impl TokenLedger {
    /// The longest lifetime of a token this ledger issues, in seconds.
    pub(super) fn lifetime(&self) -> i64 {
        let cfg = &self.settings.config;
        i64::try_from(cfg.refresh_token_ttl.max(cfg.access_token_ttl).as_secs()).unwrap_or(i64::MAX)
    }

    /// Records that this ledger's lifetime is in force for two more sweep intervals (it
    /// renews this every interval), then recomputes the horizon from every lifetime on
    /// record, including those of earlier runs with other settings.
    pub(super) fn record_lifetime(&mut self) -> Result<(), StorageError> {
        let now = self.clock.now();
        let interval = i64::try_from(self.settings.config.sweep_interval.as_secs()).unwrap_or(0);
        let until = now.saturating_add(interval.saturating_mul(2));
        self.store.record_lifetime(self.lifetime(), until)?;
        self.horizon = self
            .store
            .lifetimes()?
            .into_iter()
            .map(|(lifetime, until)| until.saturating_add(lifetime))
            .max()
            .unwrap_or(i64::MIN);
        Ok(())
    }

    /// Marks a grant revoked, remembered for as long as any of its tokens could live.
    pub(super) fn revoke_grant(&mut self, grant_id: GrantId) -> Result<(), StorageError> {
        let forget_at = self.default_forget_at();
        if self.revoked.get(&grant_id).is_some_and(|f| *f >= forget_at) {
            return Ok(());
        }
        self.revoke_grant_until(grant_id, forget_at)
    }

    /// The shortest memory of a grant revoked now: until a token issued now would have
    /// expired, or one issued under an earlier run's longer lifetimes ([`Self::horizon`]).
    pub(super) fn default_forget_at(&self) -> i64 {
        self.clock
            .now()
            .saturating_add(self.lifetime())
            .max(self.horizon)
    }

    pub(super) fn revoke_grant_until(
        &mut self,
        grant_id: GrantId,
        forget_at: i64,
    ) -> Result<(), StorageError> {
        self.store.put_revoked_grant(&grant_id, forget_at)?;
        self.revoked.insert(grant_id, forget_at);
        Ok(())
    }

    pub(super) fn revoke_grants_of(&mut self, holder: &GrantHolder) -> Result<usize, StorageError> {
        let now = self.clock.now();
        let default_forget_at = self.default_forget_at();
        let mut revoked = 0;
        for (grant_id, latest_expiry) in self.store.grants_of(holder)? {
            if latest_expiry <= now {
                // Every token of this grant has expired already; nothing left to stop.
                continue;
            }
            // Remembered until the grant's last stored token expires, even when that is
            // later than a token issued now would live (the ledger may have run with a
            // longer TTL than this process was given). No new token can join a revoked
            // grant, so none outlives this.
            let forget_at = default_forget_at.max(latest_expiry);
            if self.revoked.get(&grant_id).is_some_and(|f| *f >= forget_at) {
                continue;
            }
            let newly = !self.revoked.contains_key(&grant_id);
            self.revoke_grant_until(grant_id, forget_at)?;
            revoked += usize::from(newly);
        }
        Ok(revoked)
    }
}

impl Handler<RevokeToken> for TokenLedger {
    type Result = MessageResult<RevokeToken>;
    fn handle(&mut self, msg: RevokeToken, _: &mut Self::Context) -> Self::Result {
        let result = (|| {
            let digest = msg.token.key();
            let Some(record) = self.store.get(&digest)? else {
                return Ok(());
            };
            if record.client_id != msg.client_id {
                return Ok(());
            }
            match record.kind {
                TokenKind::Access => {
                    self.store.remove(&digest)?;
                }
                // RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access
                // tokens of the same grant.
                TokenKind::Refresh => {
                    self.revoke_grant(record.grant_id)?;
                    self.store.remove(&digest)?;
                }
            }
            Ok(())
        })();
        MessageResult(after_persist(&*self.store, result))
    }
}

impl Handler<RevokeGrant> for TokenLedger {
    type Result = MessageResult<RevokeGrant>;
    fn handle(&mut self, msg: RevokeGrant, _: &mut Self::Context) -> Self::Result {
        let result = self.revoke_grant(msg.grant_id).map_err(LedgerError::from);
        MessageResult(after_persist(&*self.store, result))
    }
}

impl Handler<RevokeGrantsOf> for TokenLedger {
    type Result = MessageResult<RevokeGrantsOf>;
    fn handle(&mut self, msg: RevokeGrantsOf, _: &mut Self::Context) -> Self::Result {
        let result = self
            .revoke_grants_of(&msg.holder)
            .map_err(LedgerError::from);
        MessageResult(after_persist(&*self.store, result))
    }
}
