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
//! the server key (`TokenLedger::successors`): the ledger recomputes them
//! instead of remembering them. Past the window, reuse revokes the grant.
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

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;

use super::{token_cache::Revocations, Stop, Sweep};
use crate::{
    config::Settings,
    domain::{
        clock::{expiry, Clock},
        grant::{GrantHolder, GrantId, TokenKind},
        scope::Scopes,
        secrets::{ordered_token_with, AccessToken, PresentedToken, RefreshToken},
        server_key::ServerKey,
    },
    metrics::{ActorKind, Metered, Metrics},
    storage::{Durable, StorageError, TokenRecord, TokenStore},
};

/// Records examined per tree and sweep tick (one tick per `sweep_interval`, default a
/// minute): a million live tokens are covered in ten minutes, for a few tens of
/// milliseconds of work per tick. Scanning more often kept cold pages flowing through
/// sled's small cache and slowed every request down.
const SWEEP_BATCH: usize = 100_000;

/// [`ServerKey::mac`] label of the grace-window successors: a MAC made for nothing else.
const SUCCESSOR_LABEL: &str = "oauth-mcp refresh successor v1";

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
/// Finding the grants walks the whole token tree on the actor's thread (there is no index
/// by subject or client). That is acceptable only because the one sender is `oauth-mcp
/// admin`, on a stopped server's data directory, where no request waits behind it.
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<usize, LedgerError>>")]
pub struct RevokeGrantsOf {
    /// Whose grants.
    pub holder: GrantHolder,
}

/// Number of token records held (live, rotated or expired-not-yet-swept).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
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
    pub fn new(
        store: Box<dyn TokenStore>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        key: Arc<ServerKey>,
    ) -> Result<Self, StorageError> {
        let loaded = store.revoked_grants()?;
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
        ledger.record_lifetime()?;
        Ok(ledger)
    }

    /// The longest lifetime of a token this ledger issues, in seconds.
    fn lifetime(&self) -> i64 {
        let cfg = &self.settings.config;
        i64::try_from(cfg.refresh_token_ttl.max(cfg.access_token_ttl).as_secs()).unwrap_or(i64::MAX)
    }

    /// Records that this ledger's lifetime is in force for two more sweep intervals (it
    /// renews this every interval), then recomputes the horizon from every lifetime on
    /// record, including those of earlier runs with other settings.
    fn record_lifetime(&mut self) -> Result<(), StorageError> {
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

    /// The successor pair of `presented` when it is rotated at `rotated_at_us`: HMAC-SHA256
    /// under the server key of the grant and the presented token, so that the same token
    /// always has the same successors, which nobody without the key can compute (the
    /// database holds only digests). The time prefix is the rotation time, so the keys of
    /// successors sort like those of random tokens issued then.
    fn successors(
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

    /// Stores a new access token, and a refresh token with the grant's scope if given; no
    /// flush.
    #[expect(
        clippy::too_many_arguments,
        reason = "the claims of a token record, spelt out once for both callers"
    )]
    fn mint(
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

    /// Marks a grant revoked, remembered for as long as any of its tokens could live.
    fn revoke_grant(&mut self, grant_id: GrantId) -> Result<(), StorageError> {
        let forget_at = self.default_forget_at();
        if self.revoked.get(&grant_id).is_some_and(|f| *f >= forget_at) {
            return Ok(());
        }
        self.revoke_grant_until(grant_id, forget_at)
    }

    /// The shortest memory of a grant revoked now: until a token issued now would have
    /// expired, or one issued under an earlier run's longer lifetimes ([`Self::horizon`]).
    fn default_forget_at(&self) -> i64 {
        self.clock
            .now()
            .saturating_add(self.lifetime())
            .max(self.horizon)
    }

    fn revoke_grant_until(
        &mut self,
        grant_id: GrantId,
        forget_at: i64,
    ) -> Result<(), StorageError> {
        self.store.put_revoked_grant(&grant_id, forget_at)?;
        self.revoked.insert(grant_id, forget_at);
        self.revocations.bump();
        Ok(())
    }

    fn revoke_grants_of(&mut self, holder: &GrantHolder) -> Result<usize, StorageError> {
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

    fn active(&self, record: &TokenRecord) -> bool {
        record.expires_at > self.clock.now()
            && record.rotated_at_us.is_none()
            && !self.revoked.contains_key(&record.grant_id)
    }

    /// One bounded slice per tree (see `SWEEP_BATCH`): the in-memory set loses exactly the
    /// grants the store forgot, so pruning it is bounded too (a grant past its forget time
    /// but not yet reached only stays refused a little longer).
    fn sweep(&mut self) -> Result<usize, StorageError> {
        self.record_lifetime()?;
        let swept = self.store.sweep(self.clock.now(), SWEEP_BATCH)?;
        for grant in &swept.forgotten_grants {
            self.revoked.remove(grant);
        }
        // Fail closed: a revocation whose end cannot be read never ends.
        for grant in swept.undecodable_grants {
            self.revoked.insert(grant, i64::MAX);
            self.revocations.bump();
        }
        if let Some(metrics) = &self.metrics {
            metrics.undecodable_revocations(swept.undecodable_revocations);
        }
        Ok(swept.removed)
    }

    /// Whether a token rotated at `rotated_at` is still within the grace window at `now`.
    fn in_grace(&self, now: i64, rotated_at: i64) -> bool {
        let grace = i64::try_from(self.settings.config.refresh_grace.as_secs()).unwrap_or(0);
        // Times are whole seconds, so a grace of N lets reuse through for N to N + 1
        // seconds; zero turns the window off entirely.
        grace > 0 && now - rotated_at <= grace
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
        ctx.run_interval(self.settings.config.sweep_interval, |act, _| {
            if let Err(e) = act.sweep() {
                tracing::warn!(error = %e, "token sweep failed");
            }
        });
    }
}

impl Handler<Stop> for TokenLedger {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Sweep> for TokenLedger {
    type Result = Result<usize, StorageError>;
    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        self.sweep()
    }
}

impl Handler<CountTokens> for TokenLedger {
    type Result = usize;
    fn handle(&mut self, _: CountTokens, _: &mut Self::Context) -> usize {
        self.store.count()
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

impl Handler<IntrospectToken> for TokenLedger {
    type Result = Result<Option<TokenInfo>, LedgerError>;
    fn handle(&mut self, msg: IntrospectToken, _: &mut Self::Context) -> Self::Result {
        let Some(record) = self.store.get(&msg.token.key())? else {
            return Ok(None);
        };
        if !self.active(&record) {
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
                    self.revocations.bump();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        config::Config,
        domain::clock::ManualClock,
        storage::sled::{Durability, SledTokenStore},
    };

    fn key() -> Arc<ServerKey> {
        Arc::new(ServerKey::from_bytes(&[5u8; 32]).unwrap())
    }

    fn start() -> (Addr<TokenLedger>, Arc<ManualClock>) {
        start_with(Config::default())
    }

    fn start_with(config: Config) -> (Addr<TokenLedger>, Arc<ManualClock>) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let settings = Arc::new(config.settings(8000).unwrap());
        let clock = ManualClock::new(1_000);
        let ledger = TokenLedger::new(Box::new(store), settings, clock.clone(), key()).unwrap();
        (ledger.start(), clock)
    }

    /// The answer to a rotation, once durable.
    async fn rotated(
        addr: &Addr<TokenLedger>,
        msg: RefreshTokens,
    ) -> Result<IssuedTokens, LedgerError> {
        addr.send(msg).await.unwrap().wait().await
    }

    /// A fresh pair in `grant`, once durable.
    async fn pair(addr: &Addr<TokenLedger>, grant: GrantId) -> IssuedTokens {
        addr.send(issue(grant)).await.unwrap().wait().await.unwrap()
    }

    async fn revoke(addr: &Addr<TokenLedger>, grant_id: GrantId) {
        addr.send(RevokeGrant { grant_id })
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }

    fn issue(grant_id: GrantId) -> IssueTokens {
        IssueTokens {
            grant_id,
            client_id: "c".into(),
            subject: Some("u".into()),
            scopes: Scopes::parse("mcp:read mcp:write").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            with_refresh: true,
        }
    }

    async fn active(addr: &Addr<TokenLedger>, token: &str) -> bool {
        let msg = IntrospectToken {
            token: PresentedToken::new(token.to_owned()),
        };
        addr.send(msg).await.unwrap().unwrap().is_some()
    }

    fn refresh(rt: &RefreshToken, scopes: Option<&str>) -> RefreshTokens {
        RefreshTokens {
            refresh_token: rt.clone(),
            client_id: "c".into(),
            scopes: scopes.map(|s| Scopes::parse(s).unwrap()),
        }
    }

    #[actix::test]
    async fn rotation_narrowing_and_reuse_detection() {
        let (addr, clock) = start();
        let first = pair(&addr, GrantId::generate()).await;
        let rt1 = first.refresh_token.unwrap();
        let second = rotated(&addr, refresh(&rt1, Some("mcp:read")))
            .await
            .unwrap();
        assert_eq!(second.scopes.to_string(), "mcp:read");
        let rt2 = second.refresh_token.unwrap();
        assert!(
            !active(&addr, rt1.secret()).await,
            "rotated token is no longer active"
        );
        // The new refresh token kept the full grant scope.
        let third = rotated(&addr, refresh(&rt2, None)).await.unwrap();
        assert_eq!(third.scopes.to_string(), "mcp:read mcp:write");
        // Widening is refused.
        let rt3 = third.refresh_token.unwrap();
        let wide = rotated(&addr, refresh(&rt3, Some("mcp:admin"))).await;
        assert!(matches!(wide, Err(LedgerError::InvalidScope)));
        // Reuse of rt1 after the grace window revokes everything in the grant.
        clock.advance(Duration::from_secs(11));
        let reuse = rotated(&addr, refresh(&rt1, None)).await;
        assert!(matches!(reuse, Err(LedgerError::InvalidGrant)));
        assert!(!active(&addr, rt3.secret()).await);
        assert!(!active(&addr, third.access_token.secret()).await);
    }

    #[actix::test]
    async fn zero_grace_refuses_any_reuse() {
        let mut config = Config::default();
        config.refresh_grace = Duration::ZERO;
        let (addr, _) = start_with(config);
        let first = pair(&addr, GrantId::generate()).await;
        let rt = first.refresh_token.unwrap();
        rotated(&addr, refresh(&rt, None)).await.unwrap();
        // Same second, no window: reuse revokes the grant.
        let again = rotated(&addr, refresh(&rt, None)).await;
        assert!(matches!(again, Err(LedgerError::InvalidGrant)), "{again:?}");
    }

    #[actix::test]
    async fn within_the_grace_window_a_rotation_is_answered_again_identically() {
        let (addr, clock) = start();
        let first = pair(&addr, GrantId::generate()).await;
        let rt = first.refresh_token.unwrap();
        let a = rotated(&addr, refresh(&rt, None)).await.unwrap();
        clock.advance(Duration::from_secs(3));
        let b = rotated(&addr, refresh(&rt, Some("mcp:read")))
            .await
            .unwrap();
        assert!(!a.repeated && b.repeated);
        assert_eq!(a.access_token.secret(), b.access_token.secret());
        let (ra, rb) = (a.refresh_token.unwrap(), b.refresh_token.unwrap());
        assert_eq!(ra.secret(), rb.secret());
        assert_eq!(b.scopes.to_string(), "mcp:read mcp:write");
        assert_eq!((a.expires_in, b.expires_in), (3600, 3597));
        assert!(active(&addr, ra.secret()).await);
        assert_eq!(
            addr.send(CountTokens).await.unwrap(),
            4,
            "nothing new stored"
        );
    }

    #[actix::test]
    async fn successors_are_keyed_by_the_server_key_and_the_presented_token() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let settings = Arc::new(Config::default().settings(8000).unwrap());
        let ledger = |key: &[u8; 32]| {
            let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
            let key = Arc::new(ServerKey::from_bytes(key).unwrap());
            TokenLedger::new(
                Box::new(store),
                Arc::clone(&settings),
                ManualClock::new(1),
                key,
            )
            .unwrap()
        };
        let (one, other) = (ledger(&[1; 32]), ledger(&[2; 32]));
        let grant = GrantId([3; 16]);
        let rt = RefreshToken::generate();
        let (a1, r1) = one.successors(&rt, &grant, 1_000);
        let (a2, r2) = one.successors(&rt, &grant, 1_000);
        assert_eq!((a1.secret(), r1.secret()), (a2.secret(), r2.secret()));
        assert_ne!(a1.secret(), r1.secret());
        assert_eq!(a1.secret().len(), 54, "shaped like every other token");
        assert_eq!(
            &a1.key().0[..8],
            &1_000u64.to_be_bytes(),
            "the rotation time is the prefix"
        );
        let (a3, _) = other.successors(&rt, &grant, 1_000);
        assert_ne!(a1.secret(), a3.secret(), "another key, other successors");
        let (a4, _) = one.successors(&RefreshToken::generate(), &grant, 1_000);
        assert_ne!(a1.secret(), a4.secret());
    }

    #[actix::test]
    async fn no_token_is_minted_into_a_revoked_grant_and_revocation_is_per_client() {
        let (addr, _) = start();
        let grant = GrantId::generate();
        addr.send(RevokeGrant { grant_id: grant })
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let before = addr.send(CountTokens).await.unwrap();
        let refused = addr.send(issue(grant)).await.unwrap().wait().await;
        assert!(
            matches!(refused, Err(LedgerError::GrantRevoked)),
            "{refused:?}"
        );
        assert_eq!(addr.send(CountTokens).await.unwrap(), before);

        let t = pair(&addr, GrantId::generate()).await;
        let token = PresentedToken::new(t.access_token.secret().to_owned());
        addr.send(RevokeToken {
            token: token.clone(),
            client_id: "other".into(),
        })
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
        assert!(
            active(&addr, t.access_token.secret()).await,
            "other clients cannot revoke"
        );
        addr.send(RevokeToken {
            token,
            client_id: "c".into(),
        })
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
        assert!(!active(&addr, t.access_token.secret()).await);
        assert!(
            active(&addr, t.refresh_token.unwrap().secret()).await,
            "revoking an access token keeps the grant"
        );
    }

    #[actix::test]
    async fn sweep_removes_expired_tokens() {
        let (addr, clock) = start();
        let t = pair(&addr, GrantId::generate()).await;
        assert_eq!(addr.send(CountTokens).await.unwrap(), 2);
        clock.advance(Duration::from_secs(3601));
        assert!(!active(&addr, t.access_token.secret()).await);
        assert_eq!(addr.send(Sweep).await.unwrap().unwrap(), 1);
        assert_eq!(
            addr.send(CountTokens).await.unwrap(),
            1,
            "the refresh token lives on"
        );
    }

    #[actix::test]
    async fn an_undecodable_revocation_keeps_its_grant_revoked_and_is_counted() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let clock = ManualClock::new(1_000);
        let first = ledger_on(&db, Config::default(), clock.clone());
        let grant = GrantId::generate();
        let t = pair(&first, grant).await;
        revoke(&first, grant).await;
        // The record's forget time is garbled on disk.
        db.open_tree(crate::storage::sled::REVOKED_GRANTS_TREE)
            .unwrap()
            .insert(grant.0, &b"garbled"[..])
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let settings = Arc::new(Config::default().settings(8000).unwrap());
        let reopened = TokenLedger::new(Box::new(store), settings, clock.clone(), key())
            .unwrap()
            .with_metrics(Arc::clone(&metrics))
            .start();
        let counted = |m: &Metrics| {
            m.render(0)
                .lines()
                .find_map(|l| l.strip_prefix("oauth_mcp_undecodable_revocations_total "))
                .map(str::to_owned)
        };
        assert_eq!(counted(&metrics).as_deref(), Some("1"));
        assert!(!active(&reopened, t.access_token.secret()).await);
        // Long after any forget time it could have had, sweeping keeps it, and counts again.
        clock.advance(Duration::from_secs(365 * 24 * 3600));
        reopened.send(Sweep).await.unwrap().unwrap();
        assert_eq!(counted(&metrics).as_deref(), Some("2"));
        let refused = reopened.send(issue(grant)).await.unwrap().wait().await;
        assert!(
            matches!(refused, Err(LedgerError::GrantRevoked)),
            "{refused:?}"
        );
    }

    #[actix::test]
    async fn a_revocation_lasts_as_long_as_the_grants_latest_token() {
        // Issued with the default 30-day refresh tokens, revoked by a ledger configured
        // with one-hour ones: remembered for the 30 days, not the hour.
        let db = sled::Config::new().temporary(true).open().unwrap();
        let clock = ManualClock::new(1_000);
        let issuer = ledger_on(&db, Config::default(), clock.clone());
        let grant = GrantId::generate();
        let t = pair(&issuer, grant).await;
        drop(issuer);
        let mut short = Config::default();
        short.access_token_ttl = Duration::from_secs(60);
        short.refresh_token_ttl = Duration::from_secs(3600);
        let revoker = ledger_on(&db, short, clock.clone());
        revoke(&revoker, grant).await;
        let rt = t.refresh_token.unwrap();
        clock.advance(Duration::from_secs(29 * 24 * 3600));
        revoker.send(Sweep).await.unwrap().unwrap();
        assert!(!active(&revoker, rt.secret()).await, "forgotten too early");
        // The 30-day lifetime was in force for two sweep intervals after the first ledger
        // started; a day later than that, nothing it issued can live.
        clock.advance(Duration::from_secs(24 * 3600 + 120));
        revoker.send(Sweep).await.unwrap().unwrap();
        let tree = db
            .open_tree(crate::storage::sled::REVOKED_GRANTS_TREE)
            .unwrap();
        assert!(tree.is_empty(), "forgotten once the last token expired");
    }

    fn ledger_on(db: &sled::Db, config: Config, clock: Arc<ManualClock>) -> Addr<TokenLedger> {
        let store = SledTokenStore::open(db, Durability::relaxed()).unwrap();
        let settings = Arc::new(config.settings(8000).unwrap());
        TokenLedger::new(Box::new(store), settings, clock, key())
            .unwrap()
            .start()
    }

    fn issue_to(client: &str, subject: Option<&str>) -> IssueTokens {
        IssueTokens {
            client_id: client.into(),
            subject: subject.map(Into::into),
            ..issue(GrantId::generate())
        }
    }

    async fn revoke_of(addr: &Addr<TokenLedger>, holder: GrantHolder) -> usize {
        let msg = RevokeGrantsOf { holder };
        addr.send(msg).await.unwrap().wait().await.unwrap()
    }

    #[actix::test]
    async fn revoking_the_grants_of_a_subject_or_client() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let clock = ManualClock::new(1_000);
        let addr = ledger_on(&db, Config::default(), clock.clone());
        let mut issued = Vec::new();
        for (client, subject) in [
            ("c", Some("u")),
            ("c", Some("v")),
            ("d", Some("u")),
            ("d", None),
        ] {
            let msg = issue_to(client, subject);
            issued.push(addr.send(msg).await.unwrap().wait().await.unwrap());
        }
        let user = || GrantHolder::Subject("u".into());
        assert_eq!(revoke_of(&addr, user()).await, 2);
        let mut still = Vec::new();
        for t in &issued {
            still.push(active(&addr, t.access_token.secret()).await);
        }
        assert_eq!(still, [false, true, false, true]);
        let rt = issued[0].refresh_token.clone().unwrap();
        assert!(!active(&addr, rt.secret()).await);
        let again = rotated(&addr, refresh(&rt, None)).await;
        assert!(matches!(again, Err(LedgerError::InvalidGrant)), "{again:?}");
        assert_eq!(revoke_of(&addr, user()).await, 0, "already revoked");

        assert_eq!(revoke_of(&addr, GrantHolder::Client("d".into())).await, 1);
        assert!(!active(&addr, issued[3].access_token.secret()).await);
        assert!(active(&addr, issued[1].access_token.secret()).await);

        // Durable: a ledger opened later on the same database knows the revocations.
        let reopened = ledger_on(&db, Config::default(), clock);
        assert!(!active(&reopened, issued[0].access_token.secret()).await);
        assert!(active(&reopened, issued[1].access_token.secret()).await);
    }

    #[actix::test]
    async fn a_revocation_outlives_the_grants_tokens_whatever_the_configured_ttl() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let clock = ManualClock::new(1_000);
        let issuer = ledger_on(&db, Config::default(), clock.clone());
        let t = issuer
            .send(issue_to("c", Some("u")))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let rt = t.refresh_token.unwrap();
        // Revoked by a process configured with much shorter lifetimes than the tokens got.
        let mut short = Config::default();
        short.refresh_token_ttl = Duration::from_secs(3600);
        let admin = ledger_on(&db, short, clock.clone());
        assert_eq!(revoke_of(&admin, GrantHolder::Subject("u".into())).await, 1);
        clock.advance(Duration::from_secs(7 * 24 * 3600));
        issuer.send(Sweep).await.unwrap().unwrap();
        let reopened = ledger_on(&db, Config::default(), clock.clone());
        assert!(!active(&reopened, rt.secret()).await);
        let reuse = reopened
            .send(refresh(&rt, None))
            .await
            .unwrap()
            .wait()
            .await;
        assert!(matches!(reuse, Err(LedgerError::InvalidGrant)), "{reuse:?}");
        // Grants whose tokens have all expired are not counted.
        clock.advance(Duration::from_secs(31 * 24 * 3600));
        assert_eq!(
            revoke_of(&reopened, GrantHolder::Client("c".into())).await,
            0
        );
    }
}
