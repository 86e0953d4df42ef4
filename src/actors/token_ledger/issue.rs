//! Minting: the first tokens of a grant ([`IssueTokens`], OAuth 2.1 §3.2.3), refused into
//! a revoked grant.

use actix::prelude::*;

use super::{after_persist, reply_after, IssueTokens, IssuedTokens, LedgerError, TokenLedger};
use crate::{
    domain::{
        clock::expiry,
        grant::TokenKind,
        secrets::{AccessToken, RefreshToken},
    },
    storage::{IssueOutcome, NewToken, TokenRecord},
};

impl Handler<IssueTokens> for TokenLedger {
    type Result = ActorResponse<Self, <IssueTokens as Message>::Result>;
    fn handle(&mut self, msg: IssueTokens, _: &mut Self::Context) -> Self::Result {
        // A replay of the grant's code may have overtaken this exchange and revoked the
        // grant. The store checks that in the same transaction that stores the tokens:
        // either the tokens exist before the revocation (which then kills them) or none
        // are minted. So of an exchange racing replays of its code, at most one gets 200,
        // and never with tokens that are dead from birth (OAuth 2.1 §4.1.3). The revoked
        // set only spares the store a refused write.
        if self.revoked.contains_key(&msg.grant_id) {
            return ActorResponse::reply(after_persist(
                &*self.store,
                Err(LedgerError::GrantRevoked),
            ));
        }
        let now = self.clock.now();
        let cfg = &self.settings.config;
        let expires_in = cfg.access_token_ttl.as_secs();
        // `offline_access` stays on the grant (the refresh token's scope) and never reaches
        // the resource server (SEP-2207).
        let scopes = msg.scopes.for_access_token();
        let access_token = AccessToken::generate();
        let access = NewToken {
            key: access_token.key(),
            record: TokenRecord {
                kind: TokenKind::Access,
                grant_id: msg.grant_id,
                client_id: msg.client_id,
                subject: msg.subject,
                scopes: scopes.clone(),
                resource: msg.resource,
                issued_at: now,
                expires_at: expiry(now, cfg.access_token_ttl),
                rotated_at_us: None,
            },
        };
        let refresh_token = msg.with_refresh.then(RefreshToken::generate);
        let refresh = refresh_token.as_ref().map(|token| NewToken {
            key: token.key(),
            record: TokenRecord {
                kind: TokenKind::Refresh,
                scopes: msg.scopes.clone(),
                expires_at: expiry(now, cfg.refresh_token_ttl),
                ..access.record.clone()
            },
        });
        let answer = self.store.issue(access, refresh);
        reply_after(self, answer, move |act, out| {
            let result = match out {
                Ok(IssueOutcome::Issued) => Ok(IssuedTokens {
                    access_token,
                    refresh_token,
                    scopes,
                    expires_in,
                    repeated: false,
                }),
                Ok(IssueOutcome::GrantRevoked) => Err(LedgerError::GrantRevoked),
                Err(e) => Err(e.into()),
            };
            after_persist(&*act.store, result)
        })
    }
}
