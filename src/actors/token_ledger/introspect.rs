//! Introspection (RFC 7662) and bearer validation: one store read plus a check of the
//! in-memory revoked set.

use actix::prelude::*;

use super::{reply_after, IntrospectToken, LedgerError, TokenInfo, TokenLedger};
use crate::storage::TokenRecord;

impl TokenLedger {
    pub(super) fn active(&self, record: &TokenRecord) -> bool {
        record.expires_at > self.clock.now()
            && record.rotated_at_us.is_none()
            && !self.revoked.contains_key(&record.grant_id)
    }
}

impl Handler<IntrospectToken> for TokenLedger {
    type Result = ActorResponse<Self, Result<Option<TokenInfo>, LedgerError>>;
    fn handle(&mut self, msg: IntrospectToken, _: &mut Self::Context) -> Self::Result {
        let answer = self.store.get(&msg.token.key());
        reply_after(self, answer, |act, out| {
            let Some(record) = out? else {
                return Ok(None);
            };
            if !act.active(&record) {
                return Ok(None);
            }
            Ok(Some(TokenInfo {
                kind: record.kind,
                client_id: record.client_id,
                subject: record.subject,
                scopes: record.scopes,
                resource: record.resource,
                issued_at: record.issued_at,
                expires_at: record.expires_at,
            }))
        })
    }
}
