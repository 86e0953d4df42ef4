//! The token ledger: owns tokens (`oauth.tokens.v1`, keyed by the token's issue-time prefix
//! and SHA-256), the token lifetimes it has issued with (`oauth.token_lifetimes.v1`) and
//! the set of revoked grants (`oauth.revoked_grants.v1`, kept in memory too, so validating an access token is
//! one store lookup plus a hash-set check). Expired entries are removed by a bounded
//! incremental sweep.
//!
//! Implements issuance (OAuth 2.1 §3.2.3), refresh with rotation and reuse detection
//! (§4.3.1, RFC 9700 §4.14.2), revocation (RFC 7009 §2.1: revoking a refresh token revokes
//! its grant) and introspection (RFC 7662).
//!
//! # The grace window
//! Rotation is strict except for `refresh_grace` seconds after a token's first rotation:
//! real clients refresh in parallel (several processes sharing one credential store), and
//! refusing the slower request would log their user out. Within the window, presenting the
//! rotated token again answers the very pair its first rotation answered, so parallel
//! refreshes converge on one branch of the grant, and a thief replaying a leaked request
//! gets nothing the client does not hold too (and loses it when the client rotates on).
//! Only digests are stored, so the successors are derived from the presented token with
//! the server key (`successors` in `refresh.rs`, handed to the store's `rotate`): the
//! ledger recomputes them instead of remembering them. Past the window, reuse revokes the
//! grant.
//!
//! # Revoked grants
//! No token is minted into a revoked grant ([`LedgerError::GrantRevoked`]), and a
//! revocation is remembered until the grant's last token has expired, because the
//! lifetimes configured when a grant is revoked may be shorter than those its tokens were
//! issued with. The ledger records its longest token lifetime and until when it may issue
//! with it (at start and every sweep interval, never per token), and a revocation is kept
//! until a token issued under any recorded lifetime must have expired. An earlier design
//! recorded each grant's latest expiry on every issuance: the same guarantee, but one more
//! write per token, which cost about a tenth of the issuance rate (BENCHMARKS.md).
//!
//! # Storage intents
//! Every write is one atomic intent of [`TokenStore`] (issue, rotate, revoke a token,
//! revoke a grant), with the policy passed in: lifetimes, the grace window, how long a
//! revocation lasts, the successors' derivation. The store arbitrates; the ledger decides.
//! Its answers are futures ([`reply_after`](super::reply_after)): ready ones on sled, so a
//! message is answered in its handler, but the ledger is correct if they complete later,
//! with other messages handled in between, because its in-memory state changes only from
//! an intent's answer:
//! - a revocation enters the revoked set when the store has made it
//!   ([`TokenLedger::grant_revoked`], in `revoke.rs`), before the requester is answered;
//!   until then the grant's tokens still validate, as they did before the request;
//! - issuance and rotation do not trust the set: the store refuses a revoked grant in the
//!   same transaction (the set only spares the store a refused write);
//! - a sweep forgets a grant only if its time is still past when the sweep's answer
//!   arrives, so a revocation renewed meanwhile is kept.
//!
//! # Layout
//! | File | Owns |
//! |------|------|
//! | `mod.rs` | the actor, its state, start-up, the messages and their replies |
//! | `issue.rs` | minting: [`IssueTokens`] |
//! | `refresh.rs` | rotation, the grace window and reuse detection: [`RefreshTokens`] |
//! | `revoke.rs` | revocation (the one place a grant becomes revoked) and how long it is remembered: [`RevokeToken`], [`RevokeGrant`], [`RevokeGrantsOf`] |
//! | `introspect.rs` | whether a token is active: [`IntrospectToken`] |
//! | `sweep.rs` | the bounded incremental sweep: [`Sweep`] |
//!
//! # Messages
//! | Message | Reply | Writes |
//! |---------|-------|--------|
//! | [`IssueTokens`] | `Durable<Result<IssuedTokens, LedgerError>>` | an access token, maybe a refresh token |
//! | [`RefreshTokens`] | `Durable<Result<IssuedTokens, LedgerError>>` | the successors and the rotation mark; or a revocation (reuse) |
//! | [`IntrospectToken`] | `Result<Option<TokenInfo>, LedgerError>` | nothing (one read) |
//! | [`RevokeToken`] | `Durable<Result<(), LedgerError>>` | removes the token; a refresh token revokes its grant |
//! | [`RevokeGrant`] | `Durable<Result<(), LedgerError>>` | a revocation |
//! | [`RevokeGrantsOf`] | `Durable<Result<usize, LedgerError>>` | revocations (administration only) |
//! | [`CountTokens`] | `Result<usize, StorageError>` | nothing |
//! | [`Sweep`] / [`Stop`] | | expired entries removed / none |

#[cfg(test)]
mod deferred_tests;
mod introspect;
mod issue;
mod refresh;
mod revoke;
mod sweep;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;

use super::{reply_after, token_cache::Revocations, Stop, Sweep};
use crate::{
    config::Settings,
    domain::{
        clock::Clock,
        grant::{GrantHolder, GrantId, TokenKind},
        scope::Scopes,
        secrets::{AccessToken, PresentedToken, RefreshToken},
        server_key::ServerKey,
    },
    metrics::{ActorKind, Metered, Metrics},
    storage::{Durable, StorageError, StoreFuture, TokenStore},
};

/// Ledger failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Unknown, expired, rotated-out or foreign refresh token.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// The grant was revoked before its first tokens were minted (a replay of its
    /// authorization code overtook the exchange): none are (OAuth 2.1 §4.1.3).
    #[error("grant revoked")]
    GrantRevoked,
    /// The requested scope is wider than the grant.
    #[error("scope exceeds grant")]
    InvalidScope,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A token response's credentials.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when the grant has one.
    pub refresh_token: Option<RefreshToken>,
    /// Scope of the access token.
    pub scopes: Scopes,
    /// Access token lifetime in seconds (what is left of it, for a repeated answer).
    pub expires_in: u64,
    /// Whether this repeats an earlier rotation's answer (grace window): nothing new was
    /// minted.
    pub repeated: bool,
}

/// What a valid token stands for.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Access or refresh.
    pub kind: TokenKind,
    /// The client it was issued to.
    pub client_id: String,
    /// The resource owner; `None` for client_credentials.
    pub subject: Option<String>,
    /// The token's scope.
    pub scopes: Scopes,
    /// Audience (RFC 8707 resource).
    pub resource: String,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// Issues the first tokens of a grant (after a code redemption or for client_credentials).
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<IssuedTokens, LedgerError>>")]
pub struct IssueTokens {
    /// The grant; if it has been revoked meanwhile (code replay race), nothing is minted
    /// and the answer is [`LedgerError::GrantRevoked`].
    pub grant_id: GrantId,
    /// The client.
    pub client_id: String,
    /// The resource owner, if any.
    pub subject: Option<String>,
    /// Granted scopes.
    pub scopes: Scopes,
    /// Audience.
    pub resource: String,
    /// Whether to issue a refresh token.
    pub with_refresh: bool,
}

/// Rotates a refresh token: a new pair, the old refresh token rotated out. Within the
/// grace window after its rotation, the same token answers the same pair again.
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<IssuedTokens, LedgerError>>")]
pub struct RefreshTokens {
    /// The presented refresh token.
    pub refresh_token: RefreshToken,
    /// The authenticated client.
    pub client_id: String,
    /// A narrower scope for the new access token, if requested.
    pub scopes: Option<Scopes>,
}

/// Looks up a token for introspection or bearer validation; `None` when it is not active.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<TokenInfo>, LedgerError>")]
pub struct IntrospectToken {
    /// The presented token.
    pub token: PresentedToken,
}

/// Revokes a token on behalf of a client (RFC 7009). Tokens of other clients and unknown
/// tokens are left alone, and the answer is the same, so the endpoint is no oracle.
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<(), LedgerError>>")]
pub struct RevokeToken {
    /// The presented token.
    pub token: PresentedToken,
    /// The authenticated client.
    pub client_id: String,
}

/// Revokes a whole grant (code replay).
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<(), LedgerError>>")]
pub struct RevokeGrant {
    /// The grant.
    pub grant_id: GrantId,
}

/// Revokes every grant of a resource owner or a client (administration: a compromised
/// account, a removed user or client). Answers how many grants were newly revoked, counting
/// only grants with a token that could still be used. Each is remembered until its last
/// token would have expired, so every access and refresh token of those grants stops
/// validating.
///
/// Finding the grants walks the whole token tree (there is no index by subject or client;
/// the store's `grants_of` answers a future, which sled computes on a blocking thread, so
/// requests do not wait behind it). The one sender is `oauth-mcp admin`, directly or
/// through a running server's admin socket.
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<usize, LedgerError>>")]
pub struct RevokeGrantsOf {
    /// Whose grants.
    pub holder: GrantHolder,
}

/// Number of token records held (live, rotated or expired-not-yet-swept).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, StorageError>")]
pub struct CountTokens;

/// The token ledger actor.
pub struct TokenLedger {
    store: Box<dyn TokenStore>,
    /// Revoked grant → when it may be forgotten.
    revoked: HashMap<GrantId, i64>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    /// Keys the derivation of grace-window successors.
    key: Arc<ServerKey>,
    metrics: Option<Arc<Metrics>>,
    /// Undecodable revocation records found when loading, counted once metrics are given.
    undecodable_at_load: usize,
    /// Until when a token issued under any recorded lifetime (this process's included)
    /// can live: the shortest memory a revocation made now may have.
    horizon: i64,
    /// Bumped by every change that can deactivate a token early (caches in front of us).
    revocations: Revocations,
}

impl TokenLedger {
    /// Opens the ledger, loading the revoked grants. A revocation record that does not
    /// decode is kept and logged; if it still names its grant, that grant stays revoked
    /// for good (fail closed), and it is counted in the metrics given by
    /// [`with_metrics`](Self::with_metrics).
    pub async fn new(
        store: Box<dyn TokenStore>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        key: Arc<ServerKey>,
    ) -> Result<Self, StorageError> {
        let loaded = store.revoked_grants().await?;
        let mut ledger = Self {
            store,
            revoked: loaded.grants.into_iter().collect(),
            settings,
            clock,
            key,
            metrics: None,
            undecodable_at_load: loaded.undecodable,
            horizon: i64::MIN,
            revocations: Revocations::default(),
        };
        // Before any token is issued: a token is acknowledged only after a flush of the
        // whole database, which then holds this record too.
        let lifetimes = ledger.record_lifetime().await?;
        ledger.set_horizon(&lifetimes);
        Ok(ledger)
    }

    /// Reports revocations to `revocations` (see [`super::token_cache`]).
    pub fn with_revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = revocations;
        self
    }

    /// Counts undecodable revocation records (at load and in sweeps) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.undecodable_revocations(self.undecodable_at_load);
        self.metrics = Some(metrics);
        self
    }
}

/// Answers `result` together with the wait for the writes made so far (see [`Durable`]).
fn after_persist<T>(
    store: &dyn TokenStore,
    result: Result<T, LedgerError>,
) -> Durable<Result<T, LedgerError>> {
    Durable::new(result, store.persist())
}

impl Metered for TokenLedger {
    const KIND: ActorKind = ActorKind::Ledger;
}

impl Actor for TokenLedger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.config.mailbox_capacity);
        // One bounded slice per interval (see `SWEEP_BATCH`).
        ctx.run_interval(self.settings.config.sweep_interval, |act, ctx| {
            let answer = act.sweep();
            ctx.spawn(answer.into_actor(act).map(|out, act, _| {
                if let Err(e) = act.swept(out) {
                    tracing::warn!(error = %e, "token sweep failed");
                }
            }));
        });
    }
}

impl Handler<Stop> for TokenLedger {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<CountTokens> for TokenLedger {
    type Result = ActorResponse<Self, Result<usize, StorageError>>;
    fn handle(&mut self, _: CountTokens, _: &mut Self::Context) -> Self::Result {
        let answer: StoreFuture<usize> = self.store.count();
        reply_after(self, answer, |_, out| out)
    }
}
