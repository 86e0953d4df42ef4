//! Revocation (RFC 7009 §2.1: revoking a refresh token revokes its grant; OAuth 2.1
//! §4.1.3: a replayed code revokes its grant; administration), and how long a revocation
//! is remembered (the lifetime records and the horizon, see the ledger's module docs).
//!
//! The store revokes ([`TokenStore::revoke_grant`](crate::storage::TokenStore),
//! `revoke_token`, and `rotate` on reuse); [`TokenLedger::grant_revoked`] is the one place
//! where the ledger learns of it, and where a grant enters its revoked set.

use actix::prelude::*;
use futures_util::{stream, StreamExt as _};

use super::{
    after_persist, reply_after, LedgerError, RevokeGrant, RevokeGrantsOf, RevokeToken, TokenLedger,
};
use crate::storage::{GrantRevocation, StoreFuture, TokenRevocation};

/// Grant revocations of one [`RevokeGrantsOf`] in flight at once: no more than the smallest
/// pool made (administration's two connections), so none waits for a connection behind the
/// others.
const REVOKE_CONCURRENCY: usize = 2;

impl TokenLedger {
    /// The longest lifetime of a token this ledger issues, in seconds.
    pub(super) fn lifetime(&self) -> i64 {
        let cfg = &self.settings.config;
        i64::try_from(cfg.refresh_token_ttl.max(cfg.access_token_ttl).as_secs()).unwrap_or(i64::MAX)
    }

    /// Records that this ledger's lifetime is in force for two more sweep intervals (it
    /// renews this every interval); the answer is every lifetime on record, including those
    /// of earlier runs with other settings, for [`Self::set_horizon`].
    pub(super) fn record_lifetime(&self) -> StoreFuture<Vec<(i64, i64)>> {
        let now = self.clock.now();
        let interval = i64::try_from(self.settings.config.sweep_interval.as_secs()).unwrap_or(0);
        let until = now.saturating_add(interval.saturating_mul(2));
        self.store.record_lifetime(self.lifetime(), until)
    }

    /// Recomputes the horizon from every recorded lifetime.
    pub(super) fn set_horizon(&mut self, lifetimes: &[(i64, i64)]) {
        self.horizon = lifetimes
            .iter()
            .map(|(lifetime, until)| until.saturating_add(*lifetime))
            .max()
            .unwrap_or(i64::MIN);
    }

    /// The shortest memory of a grant revoked now: until a token issued now would have
    /// expired, or one issued under an earlier run's longer lifetimes ([`Self::horizon`]).
    pub(super) fn default_forget_at(&self) -> i64 {
        self.clock
            .now()
            .saturating_add(self.lifetime())
            .max(self.horizon)
    }

    /// The store has revoked a grant: from now on none of its tokens validate here. The
    /// one place a grant enters the revoked set (a revocation epoch for caches of
    /// validated tokens belongs here).
    pub(super) fn grant_revoked(&mut self, revocation: GrantRevocation) {
        let forget_at = self
            .revoked
            .entry(revocation.grant_id)
            .or_insert(revocation.forget_at);
        *forget_at = (*forget_at).max(revocation.forget_at);
        self.revocations.bump();
    }
}

impl Handler<RevokeToken> for TokenLedger {
    type Result = ActorResponse<Self, <RevokeToken as Message>::Result>;
    fn handle(&mut self, msg: RevokeToken, _: &mut Self::Context) -> Self::Result {
        let answer =
            self.store
                .revoke_token(&msg.token.key(), &msg.client_id, self.default_forget_at());
        reply_after(self, answer, |act, out| {
            let result = match out {
                // RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access
                // tokens of the same grant.
                Ok(TokenRevocation::GrantRevoked(revocation)) => {
                    act.grant_revoked(revocation);
                    Ok(())
                }
                // The one other way a token stops validating before its expiry: a cache of
                // validated tokens must forget it here too.
                Ok(TokenRevocation::AccessRemoved) => {
                    act.revocations.bump();
                    Ok(())
                }
                // Other clients' and unknown tokens are left alone, with the same answer.
                Ok(TokenRevocation::Ignored) => Ok(()),
                Err(e) => Err(e.into()),
            };
            after_persist(&*act.store, result)
        })
    }
}

impl Handler<RevokeGrant> for TokenLedger {
    type Result = ActorResponse<Self, <RevokeGrant as Message>::Result>;
    fn handle(&mut self, msg: RevokeGrant, _: &mut Self::Context) -> Self::Result {
        let forget_at = self.default_forget_at();
        if self
            .revoked
            .get(&msg.grant_id)
            .is_some_and(|f| *f >= forget_at)
        {
            // Revoked for long enough already: nothing to write.
            return ActorResponse::reply(after_persist(&*self.store, Ok(())));
        }
        let answer = self.store.revoke_grant(msg.grant_id, forget_at);
        reply_after(self, answer, |act, out| {
            let result = out.map(|revocation| act.grant_revoked(revocation));
            after_persist(&*act.store, result.map_err(LedgerError::from))
        })
    }
}

impl Handler<RevokeGrantsOf> for TokenLedger {
    type Result = ActorResponse<Self, <RevokeGrantsOf as Message>::Result>;
    fn handle(&mut self, msg: RevokeGrantsOf, _: &mut Self::Context) -> Self::Result {
        let grants = self.store.grants_of(&msg.holder);
        // Two steps (find, then revoke each), so always answered as a future: this is the
        // administration path, where a boxed future costs nothing worth measuring.
        let revoke = grants.into_actor(self).then(|found, act, _| {
            let now = act.clock.now();
            let default_forget_at = act.default_forget_at();
            let revocations: Vec<StoreFuture<GrantRevocation>> = match found {
                Ok(grants) => grants
                    .into_iter()
                    // Every token of such a grant has expired already; nothing to stop.
                    .filter(|(_, latest_expiry)| *latest_expiry > now)
                    // Remembered until the grant's last stored token expires, even when
                    // that is later than a token issued now would live (the ledger may
                    // have run with a longer TTL than this process was given). No new token
                    // can join a revoked grant, so none outlives this.
                    .map(|(grant, latest_expiry)| (grant, default_forget_at.max(latest_expiry)))
                    // Revoked for long enough already (a rerun after a partial failure):
                    // nothing to write.
                    .filter(|(grant, forget_at)| {
                        act.revoked.get(grant).is_none_or(|f| f < forget_at)
                    })
                    .map(|(grant, forget_at)| act.store.revoke_grant(grant, forget_at))
                    .collect(),
                Err(e) => vec![Box::pin(futures_util::future::ready(Err(e))) as StoreFuture<_>],
            };
            // A few at a time: a client or user may have thousands of grants, and each
            // revocation is a transaction that needs a pooled connection (administration
            // has two); all at once, most would time out waiting for one. Every revocation
            // is attempted even when one fails, so a failure leaves as little as possible
            // unrevoked (and a rerun finishes the rest).
            stream::iter(revocations)
                .buffer_unordered(REVOKE_CONCURRENCY)
                .collect::<Vec<_>>()
                .into_actor(act)
                .map(|outs, act, _| {
                    let mut newly = 0;
                    let mut failed = None;
                    for out in outs {
                        match out {
                            Ok(revocation) => {
                                newly += usize::from(revocation.newly);
                                act.grant_revoked(revocation);
                            }
                            Err(e) => failed = failed.or(Some(e)),
                        }
                    }
                    let result = match failed {
                        Some(e) => Err(LedgerError::from(e)),
                        None => Ok(newly),
                    };
                    after_persist(&*act.store, result)
                })
        });
        ActorResponse::r#async(revoke)
    }
}
