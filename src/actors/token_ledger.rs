//! The token ledger: owns tokens (`oauth.tokens.v1`, keyed by the token's issue-time prefix
//! and SHA-256) and the set of revoked grants (kept in memory too, so validating an access
//! token is one store lookup plus a hash-set check). Expired tokens are removed by a
//! bounded incremental sweep.
//!
//! Implements issuance (OAuth 2.1 §3.2.3), refresh with rotation and reuse detection
//! (§4.3.1, RFC 9700 §4.14.2), revocation (RFC 7009 §2.1: revoking a refresh token revokes
//! its grant) and introspection (RFC 7662).

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;

use super::{Stop, Sweep};
use crate::{
    config::Settings,
    domain::{
        clock::{expiry, Clock},
        scope::Scopes,
        secrets::{AccessToken, PresentedToken, RefreshToken},
    },
    storage::{Durable, GrantHolder, GrantId, StorageError, TokenKind, TokenRecord, TokenStore},
};

/// Token records examined per sweep tick (one tick per `sweep_interval`, default a minute):
/// a million live tokens are covered in ten minutes, for a few tens of milliseconds of work
/// per tick. Scanning more often kept cold pages flowing through sled's small cache and
/// slowed every request down.
const SWEEP_BATCH: usize = 100_000;

/// Ledger failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Unknown, expired, rotated-out or foreign refresh token.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// The requested scope is wider than the grant.
    #[error("scope exceeds grant")]
    InvalidScope,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A freshly issued token response.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when the grant has one.
    pub refresh_token: Option<RefreshToken>,
    /// Scope of the access token.
    pub scopes: Scopes,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
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
    /// The grant; if it has been revoked meanwhile (code replay race), the tokens are
    /// minted inactive.
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

/// Rotates a refresh token: a new pair, the old refresh token rotated out.
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
}

impl TokenLedger {
    /// Opens the ledger, loading the revoked grants.
    pub fn new(
        store: Box<dyn TokenStore>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StorageError> {
        let revoked = store.revoked_grants()?.into_iter().collect();
        Ok(Self {
            store,
            revoked,
            settings,
            clock,
        })
    }

    fn access_ttl_secs(&self) -> u64 {
        self.settings.config.access_token_ttl.as_secs()
    }

    /// Mints a pair (or an access token alone) and stores it; no flush.
    fn mint(
        &mut self,
        grant_id: GrantId,
        client_id: &str,
        subject: Option<&str>,
        access_scopes: Scopes,
        grant_scopes: Option<&Scopes>,
        resource: &str,
    ) -> Result<IssuedTokens, StorageError> {
        let now = self.clock.now();
        let cfg = &self.settings.config;
        let access_token = AccessToken::generate();
        let mut record = TokenRecord {
            kind: TokenKind::Access,
            grant_id,
            client_id: client_id.to_owned(),
            subject: subject.map(str::to_owned),
            scopes: access_scopes.clone(),
            resource: resource.to_owned(),
            issued_at: now,
            expires_at: expiry(now, cfg.access_token_ttl),
            rotated_at: None,
        };
        self.store.put(&access_token.key(), &record)?;
        let refresh_token = match grant_scopes {
            Some(scopes) => {
                let token = RefreshToken::generate();
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
            expires_in: self.access_ttl_secs(),
        })
    }

    /// Marks a grant revoked, remembered for as long as any of its tokens could live.
    fn revoke_grant(&mut self, grant_id: GrantId) -> Result<(), StorageError> {
        self.revoke_grant_until(grant_id, self.default_forget_at())
    }

    /// When a grant revoked now may be forgotten: once a token issued now would have
    /// expired.
    fn default_forget_at(&self) -> i64 {
        let cfg = &self.settings.config;
        expiry(
            self.clock.now(),
            cfg.refresh_token_ttl.max(cfg.access_token_ttl),
        )
    }

    fn revoke_grant_until(
        &mut self,
        grant_id: GrantId,
        forget_at: i64,
    ) -> Result<(), StorageError> {
        self.store.put_revoked_grant(&grant_id, forget_at)?;
        self.revoked.insert(grant_id, forget_at);
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
            && record.rotated_at.is_none()
            && !self.revoked.contains_key(&record.grant_id)
    }

    fn sweep(&mut self) -> Result<usize, StorageError> {
        let now = self.clock.now();
        self.revoked.retain(|_, forget_at| *forget_at > now);
        // Bounded so one sweep never holds the actor for long; the next tick continues where
        // this one stopped.
        self.store.sweep(now, SWEEP_BATCH)
    }
}

/// Answers `result` together with the wait for the writes made so far (see [`Durable`]).
fn after_persist<T>(
    store: &dyn TokenStore,
    result: Result<T, LedgerError>,
) -> Durable<Result<T, LedgerError>> {
    Durable::new(result, store.persist())
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
        // A grant revoked already (a replay of the same code overtook this exchange) still
        // gets its tokens minted: they are inactive from birth, since every validation checks
        // the revoked grants. So the race between an exchange and a replay of its code ends
        // the same whichever message arrives first: exactly one exchange answered 200, and
        // the grant revoked (OAuth 2.1 §4.1.3).
        let grant_scopes = msg.with_refresh.then_some(&msg.scopes);
        let result = self
            .mint(
                msg.grant_id,
                &msg.client_id,
                msg.subject.as_deref(),
                msg.scopes.clone(),
                grant_scopes,
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
        if let Some(rotated_at) = old.rotated_at {
            let grace = i64::try_from(self.settings.config.refresh_grace.as_secs()).unwrap_or(0);
            // Times are whole seconds, so a grace of N lets reuse through for N to N + 1
            // seconds; zero turns the window off entirely.
            if grace == 0 || now - rotated_at > grace {
                // Reuse of a rotated-out token: either the client or an attacker holds a
                // stolen copy. Revoke the whole grant (OAuth 2.1 §4.3.1).
                tracing::warn!(client_id = %old.client_id, "refresh token reuse detected, grant revoked");
                self.revoke_grant(old.grant_id)?;
                return Err(LedgerError::InvalidGrant);
            }
            // Within the grace window: the same client refreshing from parallel requests.
            // It gets its own new pair; the grant stays alive.
        }
        let access_scopes = match msg.scopes {
            Some(s) if !s.is_subset(&old.scopes) => return Err(LedgerError::InvalidScope),
            Some(s) => s,
            None => old.scopes.clone(),
        };
        if old.rotated_at.is_none() {
            old.rotated_at = Some(now);
            self.store.put(&digest, &old)?;
        }
        // The new refresh token keeps the grant's full scope (OAuth 2.1 §4.3.3); only the
        // access token is narrowed.
        let issued = self.mint(
            old.grant_id,
            &old.client_id,
            old.subject.as_deref(),
            access_scopes,
            Some(&old.scopes),
            &old.resource,
        )?;
        Ok(issued)
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
        storage::sled_store::{Durability, SledTokenStore},
    };

    fn start() -> (Addr<TokenLedger>, Arc<ManualClock>) {
        start_with(Config::default())
    }

    fn start_with(config: Config) -> (Addr<TokenLedger>, Arc<ManualClock>) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let settings = Arc::new(config.settings(8000).unwrap());
        let clock = ManualClock::new(1_000);
        let ledger = TokenLedger::new(Box::new(store), settings, clock.clone()).unwrap();
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
    async fn grace_window_allows_parallel_refresh() {
        let (addr, _) = start();
        let first = pair(&addr, GrantId::generate()).await;
        let rt = first.refresh_token.unwrap();
        let a = rotated(&addr, refresh(&rt, None)).await.unwrap();
        let b = rotated(&addr, refresh(&rt, None)).await.unwrap();
        assert!(active(&addr, a.access_token.secret()).await);
        assert!(active(&addr, b.refresh_token.unwrap().secret()).await);
    }

    #[actix::test]
    async fn tokens_of_a_revoked_grant_are_born_inactive_and_revocation_is_per_client() {
        let (addr, _) = start();
        let grant = GrantId::generate();
        addr.send(RevokeGrant { grant_id: grant })
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let dead = pair(&addr, grant).await;
        assert!(!active(&addr, dead.access_token.secret()).await);
        assert!(!active(&addr, dead.refresh_token.unwrap().secret()).await);

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

    fn ledger_on(db: &sled::Db, config: Config, clock: Arc<ManualClock>) -> Addr<TokenLedger> {
        let store = SledTokenStore::open(db, Durability::relaxed()).unwrap();
        let settings = Arc::new(config.settings(8000).unwrap());
        TokenLedger::new(Box::new(store), settings, clock)
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
