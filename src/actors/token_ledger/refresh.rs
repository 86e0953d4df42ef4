//! Refresh with rotation (OAuth 2.1 §4.3.1), the grace window and reuse detection
//! (RFC 9700 §4.14.2): see the module docs of the ledger for why the window exists and why
//! the successors are derived rather than remembered.

use actix::prelude::*;

use super::{after_persist, IssuedTokens, LedgerError, RefreshTokens, TokenLedger};
use crate::{
    domain::{
        grant::{GrantId, TokenKind},
        secrets::{ordered_token_with, AccessToken, RefreshToken},
    },
    storage::TokenRecord,
};

/// [`ServerKey::mac`](crate::domain::server_key::ServerKey::mac) label of the grace-window
/// successors: a MAC made for nothing else.
const SUCCESSOR_LABEL: &str = "oauth-mcp refresh successor v1";

impl TokenLedger {
    /// The successor pair of `presented` when it is rotated at `rotated_at_us`: HMAC-SHA256
    /// under the server key of the grant and the presented token, so that the same token
    /// always has the same successors, which nobody without the key can compute (the
    /// database holds only digests). The time prefix is the rotation time, so the keys of
    /// successors sort like those of random tokens issued then.
    pub(super) fn successors(
        &self,
        presented: &RefreshToken,
        grant: &GrantId,
        rotated_at_us: i64,
    ) -> (AccessToken, RefreshToken) {
        let micros = u64::try_from(rotated_at_us).unwrap_or(0);
        let derive = |kind: &[u8]| {
            let body = self.key.mac(
                SUCCESSOR_LABEL,
                &[&grant.0, presented.secret().as_bytes(), kind],
            );
            ordered_token_with(micros, &body)
        };
        (
            AccessToken::new(derive(b"access")),
            RefreshToken::new(derive(b"refresh")),
        )
    }

    /// Whether a token rotated at `rotated_at` is still within the grace window at `now`.
    fn in_grace(&self, now: i64, rotated_at: i64) -> bool {
        let grace = i64::try_from(self.settings.config.refresh_grace.as_secs()).unwrap_or(0);
        // Times are whole seconds, so a grace of N lets reuse through for N to N + 1
        // seconds; zero turns the window off entirely.
        grace > 0 && now - rotated_at <= grace
    }
}

impl Handler<RefreshTokens> for TokenLedger {
    type Result = MessageResult<RefreshTokens>;
    fn handle(&mut self, msg: RefreshTokens, _: &mut Self::Context) -> Self::Result {
        let result = self.refresh(msg);
        MessageResult(after_persist(&*self.store, result))
    }
}

impl TokenLedger {
    fn refresh(&mut self, msg: RefreshTokens) -> Result<IssuedTokens, LedgerError> {
        let now = self.clock.now();
        let digest = msg.refresh_token.key();
        let Some(mut old) = self.store.get(&digest)? else {
            return Err(LedgerError::InvalidGrant);
        };
        if old.kind != TokenKind::Refresh
            || old.client_id != msg.client_id
            || old.expires_at <= now
            || self.revoked.contains_key(&old.grant_id)
        {
            return Err(LedgerError::InvalidGrant);
        }
        if let Some(rotated_at_us) = old.rotated_at_us {
            if !self.in_grace(now, rotated_at_us.div_euclid(1_000_000)) {
                // Reuse of a rotated-out token: either the client or an attacker holds a
                // stolen copy. Revoke the whole grant (OAuth 2.1 §4.3.1).
                tracing::warn!(client_id = %old.client_id, "refresh token reuse detected, grant revoked");
                self.revoke_grant(old.grant_id)?;
                return Err(LedgerError::InvalidGrant);
            }
        }
        let access_scopes = match msg.scopes {
            Some(s) if !s.is_subset(&old.scopes) => return Err(LedgerError::InvalidScope),
            Some(s) => s,
            None => old.scopes.clone(),
        };
        if let Some(rotated_at_us) = old.rotated_at_us {
            return self.repeat_rotation(&msg.refresh_token, &old, rotated_at_us, now);
        }
        // The injected clock's second (it decides the grace window) with the system
        // clock's microseconds: successors issued in one second then get keys in time order,
        // as random tokens' are, instead of one shared prefix (whose inserts, scattered over
        // that second's leaves, cost about a sixth of the refresh rate).
        let rotated_at_us = now
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(chrono::Utc::now().timestamp_subsec_micros()));
        let (access, refresh) = self.successors(&msg.refresh_token, &old.grant_id, rotated_at_us);
        // The new refresh token keeps the grant's full scope (OAuth 2.1 §4.3.3); only the
        // access token is narrowed.
        let issued = self.mint(
            access,
            Some((refresh, &old.scopes)),
            old.grant_id,
            &old.client_id,
            old.subject.as_deref(),
            access_scopes,
            &old.resource,
        )?;
        // Rotated out only after the successors are written: sled's log is ordered, so a
        // crash before the flush leaves either both or the presented token still current
        // (never a rotated token whose successors are missing, which the client could not
        // recover from).
        old.rotated_at_us = Some(rotated_at_us);
        self.store.put(&digest, &old)?;
        Ok(issued)
    }

    /// Within the grace window: the answer of the token's first rotation, recomputed. The
    /// successors are handed out as they are now: a successor rotated since is handed out
    /// rotated (its holder can use it only within its own window, for the pair the client
    /// got then), and one revoked or expired since is never minted again: the answer is
    /// `invalid_grant` (without revoking anything; the grant's own state says whether it
    /// is alive).
    fn repeat_rotation(
        &self,
        presented: &RefreshToken,
        old: &TokenRecord,
        rotated_at_us: i64,
        now: i64,
    ) -> Result<IssuedTokens, LedgerError> {
        let (access, refresh) = self.successors(presented, &old.grant_id, rotated_at_us);
        let same_grant = |r: &TokenRecord| r.grant_id == old.grant_id;
        let access_record = self.store.get(&access.key())?.filter(same_grant);
        let refresh_record = self.store.get(&refresh.key())?.filter(same_grant);
        match (access_record, refresh_record) {
            (Some(a), Some(r)) if a.expires_at > now && r.expires_at > now => {
                tracing::debug!(client_id = %old.client_id, "refresh token presented again within the grace window; earlier answer repeated");
                Ok(IssuedTokens {
                    access_token: access,
                    refresh_token: Some(refresh),
                    scopes: a.scopes,
                    expires_in: u64::try_from(a.expires_at - now).unwrap_or(0),
                    repeated: true,
                })
            }
            _ => Err(LedgerError::InvalidGrant),
        }
    }
}
