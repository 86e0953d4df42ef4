//! Minting: the first tokens of a grant ([`IssueTokens`], OAuth 2.1 §3.2.3), refused into
//! a revoked grant; and the storing of a pair, shared with rotation.

use actix::prelude::*;

use super::{after_persist, IssueTokens, IssuedTokens, LedgerError, TokenLedger};
use crate::{
    domain::{
        clock::expiry,
        grant::{GrantId, TokenKind},
        scope::Scopes,
        secrets::{AccessToken, RefreshToken},
    },
    storage::{StorageError, TokenRecord},
};

impl TokenLedger {
    /// Stores a new access token, and a refresh token with the grant's scope if given; no
    /// flush.
    #[expect(
        clippy::too_many_arguments,
        reason = "the claims of a token record, spelt out once for both callers"
    )]
    pub(super) fn mint(
        &mut self,
        access_token: AccessToken,
        refresh: Option<(RefreshToken, &Scopes)>,
        grant_id: GrantId,
        client_id: &str,
        subject: Option<&str>,
        access_scopes: Scopes,
        resource: &str,
    ) -> Result<IssuedTokens, StorageError> {
        let now = self.clock.now();
        let cfg = &self.settings.config;
        let mut record = TokenRecord {
            kind: TokenKind::Access,
            grant_id,
            client_id: client_id.to_owned(),
            subject: subject.map(str::to_owned),
            scopes: access_scopes.clone(),
            resource: resource.to_owned(),
            issued_at: now,
            expires_at: expiry(now, cfg.access_token_ttl),
            rotated_at_us: None,
        };
        self.store.put(&access_token.key(), &record)?;
        let refresh_token = match refresh {
            Some((token, scopes)) => {
                record.kind = TokenKind::Refresh;
                record.scopes = scopes.clone();
                record.expires_at = expiry(now, cfg.refresh_token_ttl);
                self.store.put(&token.key(), &record)?;
                Some(token)
            }
            None => None,
        };
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            scopes: access_scopes,
            expires_in: cfg.access_token_ttl.as_secs(),
            repeated: false,
        })
    }
}

impl Handler<IssueTokens> for TokenLedger {
    type Result = MessageResult<IssueTokens>;
    fn handle(&mut self, msg: IssueTokens, _: &mut Self::Context) -> Self::Result {
        // A replay of the grant's code may have overtaken this exchange and revoked the
        // grant. Checked here, by the owner of the revoked set, in the same message that
        // mints: either the tokens exist before the revocation (which then kills them) or
        // none are minted. So of an exchange racing replays of its code, at most one gets
        // 200, and never with tokens that are dead from birth (OAuth 2.1 §4.1.3).
        if self.revoked.contains_key(&msg.grant_id) {
            return MessageResult(after_persist(&*self.store, Err(LedgerError::GrantRevoked)));
        }
        let refresh = msg
            .with_refresh
            .then(|| (RefreshToken::generate(), &msg.scopes));
        let result = self
            .mint(
                AccessToken::generate(),
                refresh,
                msg.grant_id,
                &msg.client_id,
                msg.subject.as_deref(),
                msg.scopes.clone(),
                &msg.resource,
            )
            .map_err(LedgerError::from);
        MessageResult(after_persist(&*self.store, result))
    }
}
