//! Refresh with rotation (OAuth 2.1 §4.3.1), the grace window and reuse detection
//! (RFC 9700 §4.14.2): see the module docs of the ledger for why the window exists and why
//! the successors are derived rather than remembered. The ledger decides the policy (the
//! window, the lifetimes, how long a reuse revocation lasts, the successors' derivation)
//! and the store's `rotate` intent applies it atomically to the presented token.

use std::sync::Arc;

use actix::prelude::*;

use super::{after_persist, reply_after, IssuedTokens, LedgerError, RefreshTokens, TokenLedger};
use crate::{
    domain::{
        clock::expiry,
        secrets::{ordered_token_with, AccessToken, RefreshToken},
        server_key::ServerKey,
    },
    storage::{GrantRevocation, RotateOutcome, Rotation},
};

/// [`ServerKey::mac`] label of the grace-window successors: a MAC made for nothing else.
///
/// v2: of the presented token and the time only. v1 also took the grant id, which adds
/// nothing (the presented token belongs to one grant) but kept a store from knowing the
/// successors before it had read the presented token; without it the PostgreSQL backend
/// sends a rotation's read and write together, one round trip fewer (`storage/postgres/
/// tokens.rs`, `FAST_ROTATE`). A token rotated under v1 and presented again within the
/// window after the upgrade is answered `invalid_grant` (its v1 successors are not found):
/// once, for the seconds of one window (docs/deployment.md, "Upgrading").
const SUCCESSOR_LABEL: &str = "oauth-mcp refresh successor v2";

/// The successor pair of `presented` when it is rotated at `rotated_at_us`: HMAC-SHA256
/// under the server key of the presented token, the time and the kind, so that the same
/// token always has the same successors, which nobody without the key can compute (the
/// database holds only digests). The time prefix is the rotation time, so the keys of
/// successors sort like those of random tokens issued then.
fn successors(
    key: &ServerKey,
    presented: &RefreshToken,
    rotated_at_us: i64,
) -> (AccessToken, RefreshToken) {
    let micros = u64::try_from(rotated_at_us).unwrap_or(0);
    let derive = |kind: &[u8]| {
        let body = key.mac(
            SUCCESSOR_LABEL,
            &[presented.secret().as_bytes(), &micros.to_be_bytes(), kind],
        );
        ordered_token_with(micros, &body)
    };
    (
        AccessToken::new(derive(b"access")),
        RefreshToken::new(derive(b"refresh")),
    )
}

impl TokenLedger {
    /// [`successors`] under this ledger's key.
    #[cfg(test)]
    pub(super) fn successors(
        &self,
        presented: &RefreshToken,
        rotated_at_us: i64,
    ) -> (AccessToken, RefreshToken) {
        successors(&self.key, presented, rotated_at_us)
    }

    /// The rotation of `msg`'s token now, with this ledger's policy.
    fn rotation(&self, msg: RefreshTokens, now: i64) -> Rotation {
        let cfg = &self.settings.config;
        // The injected clock's second (it decides the grace window) with the system
        // clock's microseconds: successors issued in one second then get keys in time order,
        // as random tokens' are, instead of one shared prefix (whose inserts, scattered over
        // that second's leaves, cost about a sixth of the refresh rate).
        let rotated_at_us = now
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(chrono::Utc::now().timestamp_subsec_micros()));
        let key = Arc::clone(&self.key);
        let presented = msg.refresh_token;
        Rotation {
            presented: presented.key(),
            client_id: msg.client_id,
            scopes: msg.scopes,
            now,
            rotated_at_us,
            // Times are whole seconds, so a grace of N lets reuse through for N to N + 1
            // seconds; zero turns the window off entirely.
            grace: i64::try_from(cfg.refresh_grace.as_secs()).unwrap_or(0),
            access_expires_at: expiry(now, cfg.access_token_ttl),
            refresh_expires_at: expiry(now, cfg.refresh_token_ttl),
            forget_at: self.default_forget_at(),
            successors: Box::new(move |at| successors(&key, &presented, at)),
        }
    }
}

impl Handler<RefreshTokens> for TokenLedger {
    type Result = ActorResponse<Self, <RefreshTokens as Message>::Result>;
    fn handle(&mut self, msg: RefreshTokens, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let answer = self.store.rotate(self.rotation(msg, now));
        let expires_in = self.settings.config.access_token_ttl.as_secs();
        reply_after(self, answer, move |act, out| {
            let result = match out {
                Ok(RotateOutcome::Rotated(s)) => Ok(IssuedTokens {
                    access_token: s.access,
                    refresh_token: Some(s.refresh),
                    scopes: s.access_record.scopes,
                    expires_in,
                    repeated: false,
                }),
                // Within the grace window: the answer of the token's first rotation,
                // recomputed. The successors are handed out as they are now: a successor
                // rotated since is handed out rotated (its holder can use it only within
                // its own window, for the pair the client got then), and one revoked or
                // expired since is never minted again: the answer is `invalid_grant`
                // (without revoking anything; the grant's own state says whether it is
                // alive).
                Ok(RotateOutcome::Repeated(s)) => {
                    tracing::debug!(client_id = %s.access_record.client_id, "refresh token presented again within the grace window; earlier answer repeated");
                    Ok(IssuedTokens {
                        access_token: s.access,
                        refresh_token: Some(s.refresh),
                        expires_in: u64::try_from(s.access_record.expires_at - now).unwrap_or(0),
                        scopes: s.access_record.scopes,
                        repeated: true,
                    })
                }
                // Reuse of a rotated-out token past the window: either the client or an
                // attacker holds a stolen copy. The store has revoked the whole grant
                // (OAuth 2.1 §4.3.1).
                Ok(RotateOutcome::Reused {
                    grant_id,
                    forget_at,
                    client_id,
                }) => {
                    tracing::warn!(client_id = %client_id, "refresh token reuse detected, grant revoked");
                    act.grant_revoked(GrantRevocation {
                        grant_id,
                        newly: true,
                        forget_at,
                    });
                    Err(LedgerError::InvalidGrant)
                }
                Ok(RotateOutcome::Invalid) => Err(LedgerError::InvalidGrant),
                Ok(RotateOutcome::InvalidScope) => Err(LedgerError::InvalidScope),
                Err(e) => Err(e.into()),
            };
            // Errors wait for the flush too: a reuse has revoked its grant.
            after_persist(&*act.store, result)
        })
    }
}
