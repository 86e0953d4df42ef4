//! The authorization-code issuer: owns the code tree (`oauth.codes.v2`), where a live code
//! is replaced by a small redeemed marker when it is used, both keyed by the code's time
//! prefix and SHA-256 (see `TokenKey`: redeemed codes are kept a day, and random keys would
//! scatter inserts).
//!
//! OAuth 2.1 §4.1.2 / §4.1.3: codes are short-lived, bound to client, redirect URI, PKCE
//! challenge, scopes, resource and user, and single use. Single use is the store's
//! `redeem` intent: one transaction on a shared database; on sled it holds under concurrent
//! redemption because this actor alone owns the tree and handles one message at a time,
//! and the sled store reads the live code and replaces it with its marker inside the call.
//! A replayed code answers [`CodeError::Replayed`] with its grant so the caller can revoke
//! every token issued from it (§7.5.2 "Reuse of Authorization Codes").
//!
//! The actor keeps no state of its own beyond the store, so it is correct whenever the
//! store's answers arrive ([`reply_after`](super::reply_after)).

use std::sync::Arc;

use actix::prelude::*;

use super::{reply_after, Stop, Sweep};
use crate::{
    config::Settings,
    domain::{
        clock::{expiry, Clock},
        grant::{GrantHolder, GrantId},
        scope::Scopes,
        secrets::AuthorizationCode,
    },
    metrics::{ActorKind, Metered, Metrics},
    storage::{CodeRecord, CodeStore, Durable, Redemption, StorageError, StoreFuture, Swept},
};

/// Code tree entries examined per sweep tick.
const SWEEP_BATCH: usize = 100_000;

/// Code issuer failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Unknown, expired, or issued to another client.
    #[error("invalid authorization code")]
    Invalid,
    /// The code was already redeemed; its grant must be revoked.
    #[error("authorization code replayed")]
    Replayed(GrantId),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Issues a code for an approved authorization request.
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<AuthorizationCode, CodeError>>")]
pub struct IssueCode {
    /// Client the code is for.
    pub client_id: String,
    /// Redirect URI the code will be delivered to.
    pub redirect_uri: String,
    /// Whether the client sent `redirect_uri` explicitly.
    pub redirect_uri_explicit: bool,
    /// Validated S256 challenge.
    pub code_challenge: String,
    /// Granted scopes.
    pub scopes: Scopes,
    /// Resource the tokens will be bound to.
    pub resource: String,
    /// The authenticated user.
    pub subject: String,
}

/// Redeems a code: removes it (even when the client does not match, so a stolen code is
/// burnt) and answers what it was bound to.
#[derive(Debug, Message)]
#[rtype(result = "Result<CodeRecord, CodeError>")]
pub struct RedeemCode {
    /// The presented code.
    pub code: AuthorizationCode,
    /// The authenticated client.
    pub client_id: String,
}

/// Discards every code issued but not yet redeemed for a resource owner or to a client, so
/// a grant being revoked cannot be completed afterwards (administration; the token ledger's
/// `RevokeGrantsOf` handles grants that already have tokens). Answers how many codes were
/// discarded.
///
/// Walks the whole code tree on the actor's thread: acceptable because the one sender is
/// `oauth-mcp admin` (directly or through a running server's admin socket), and the tree
/// holds only the codes of the last minute and the redeemed-code markers.
#[derive(Debug, Message)]
#[rtype(result = "Durable<Result<usize, CodeError>>")]
pub struct DiscardCodesOf {
    /// Whose codes.
    pub holder: GrantHolder,
}

/// The code issuer actor.
pub struct CodeIssuer {
    store: Box<dyn CodeStore>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<Metrics>>,
}

impl CodeIssuer {
    /// A code issuer over `store`.
    pub fn new(store: Box<dyn CodeStore>, settings: Arc<Settings>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            settings,
            clock,
            metrics: None,
        }
    }

    /// Counts code records the sweep cannot decode (kept, as they may mark redeemed codes)
    /// in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Starts one bounded slice of sweeping; [`Self::swept`] applies the answer.
    fn sweep(&self) -> StoreFuture<Swept> {
        // Bounded like the ledger's sweep: redeemed codes are kept a day, so the tree can be
        // large under load.
        self.store.sweep(self.clock.now(), SWEEP_BATCH)
    }

    fn swept(&mut self, answer: Result<Swept, StorageError>) -> Result<usize, StorageError> {
        let swept = answer?;
        if let Some(metrics) = &self.metrics {
            metrics.undecodable_revocations(swept.undecodable_revocations);
        }
        Ok(swept.removed)
    }
}

impl Metered for CodeIssuer {
    const KIND: ActorKind = ActorKind::Codes;
}

impl Actor for CodeIssuer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.config.mailbox_capacity);
        ctx.run_interval(self.settings.config.sweep_interval, |act, ctx| {
            let answer = act.sweep();
            ctx.spawn(answer.into_actor(act).map(|out, act, _| {
                if let Err(e) = act.swept(out) {
                    tracing::warn!(error = %e, "code sweep failed");
                }
            }));
        });
    }
}

impl Handler<Stop> for CodeIssuer {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Sweep> for CodeIssuer {
    type Result = ActorResponse<Self, Result<usize, StorageError>>;
    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        let answer = self.sweep();
        reply_after(self, answer, Self::swept)
    }
}

impl Handler<IssueCode> for CodeIssuer {
    type Result = ActorResponse<Self, <IssueCode as Message>::Result>;
    fn handle(&mut self, msg: IssueCode, _: &mut Self::Context) -> Self::Result {
        let code = AuthorizationCode::generate();
        let record = CodeRecord {
            grant_id: GrantId::generate(),
            client_id: msg.client_id,
            redirect_uri: msg.redirect_uri,
            redirect_uri_explicit: msg.redirect_uri_explicit,
            code_challenge: msg.code_challenge,
            scopes: msg.scopes,
            resource: msg.resource,
            subject: msg.subject,
            expires_at: expiry(self.clock.now(), self.settings.config.code_ttl),
        };
        let answer = self.store.insert(&code.key(), record);
        reply_after(self, answer, |act, out| {
            let result = out.map(|()| code).map_err(CodeError::from);
            // The code leaves the server only once it is durable: a code the client holds
            // must survive a crash.
            Durable::new(result, act.store.persist())
        })
    }
}

impl Handler<RedeemCode> for CodeIssuer {
    type Result = ActorResponse<Self, Result<CodeRecord, CodeError>>;
    fn handle(&mut self, msg: RedeemCode, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let forget_at = expiry(now, self.settings.config.used_code_retention);
        let answer = self
            .store
            .redeem(&msg.code.key(), &msg.client_id, now, forget_at);
        // No flush here: the tokens issued next are flushed before the reply, and sled has
        // one ordered log, so that flush covers this redemption too. A backend with
        // separate transactions per store would persist here.
        reply_after(self, answer, |_, out| match out? {
            Redemption::Redeemed(record) => Ok(record),
            Redemption::Replayed(grant) => Err(CodeError::Replayed(grant)),
            Redemption::Invalid => Err(CodeError::Invalid),
        })
    }
}

impl Handler<DiscardCodesOf> for CodeIssuer {
    type Result = ActorResponse<Self, <DiscardCodesOf as Message>::Result>;
    fn handle(&mut self, msg: DiscardCodesOf, _: &mut Self::Context) -> Self::Result {
        let answer = self.store.remove_live_codes_of(&msg.holder);
        reply_after(self, answer, |act, out| {
            Durable::new(out.map_err(CodeError::from), act.store.persist())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        domain::clock::ManualClock,
        storage::sled::{Durability, SledCodeStore},
    };

    fn start() -> (Addr<CodeIssuer>, Arc<ManualClock>) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledCodeStore::open(&db, Durability::relaxed()).unwrap();
        let settings = Arc::new(Config::default().settings(8000).unwrap());
        let clock = ManualClock::new(1_000);
        (
            CodeIssuer::new(Box::new(store), settings, clock.clone()).start(),
            clock,
        )
    }

    fn issue() -> IssueCode {
        IssueCode {
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_explicit: true,
            code_challenge: "x".into(),
            scopes: Scopes::parse("mcp:read").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            subject: "u".into(),
        }
    }

    #[actix::test]
    async fn single_use_and_replay_reports_grant() {
        let (addr, _) = start();
        let code = addr.send(issue()).await.unwrap().wait().await.unwrap();
        let first = addr
            .send(RedeemCode {
                code: code.clone(),
                client_id: "c".into(),
            })
            .await
            .unwrap()
            .unwrap();
        let again = addr
            .send(RedeemCode {
                code,
                client_id: "c".into(),
            })
            .await
            .unwrap();
        match again {
            Err(CodeError::Replayed(g)) => assert_eq!(g, first.grant_id),
            other => panic!("expected replay, got {other:?}"),
        }
    }

    #[actix::test]
    async fn wrong_client_and_expiry_are_invalid() {
        let (addr, clock) = start();
        let code = addr.send(issue()).await.unwrap().wait().await.unwrap();
        let r = addr
            .send(RedeemCode {
                code,
                client_id: "other".into(),
            })
            .await
            .unwrap();
        assert!(matches!(r, Err(CodeError::Invalid)));
        let code = addr.send(issue()).await.unwrap().wait().await.unwrap();
        clock.advance(std::time::Duration::from_secs(61));
        let r = addr
            .send(RedeemCode {
                code,
                client_id: "c".into(),
            })
            .await
            .unwrap();
        assert!(matches!(r, Err(CodeError::Invalid)));
        let unknown = AuthorizationCode::new("nope".into());
        let r = addr
            .send(RedeemCode {
                code: unknown,
                client_id: "c".into(),
            })
            .await
            .unwrap();
        assert!(matches!(r, Err(CodeError::Invalid)));
    }

    #[actix::test]
    async fn a_code_presented_by_another_client_is_burnt() {
        let (addr, _) = start();
        let code = addr.send(issue()).await.unwrap().wait().await.unwrap();
        let redeem = |client: &str| RedeemCode {
            code: code.clone(),
            client_id: client.into(),
        };
        let stolen = addr.send(redeem("other")).await.unwrap();
        assert!(matches!(stolen, Err(CodeError::Invalid)));
        let owner = addr.send(redeem("c")).await.unwrap();
        assert!(matches!(owner, Err(CodeError::Invalid)), "{owner:?}");
    }

    #[actix::test]
    async fn sweep_drops_expired_codes_and_forgotten_redemptions() {
        let (addr, clock) = start();
        let redeemed = addr.send(issue()).await.unwrap().wait().await.unwrap();
        addr.send(RedeemCode {
            code: redeemed.clone(),
            client_id: "c".into(),
        })
        .await
        .unwrap()
        .unwrap();
        let _unused = addr.send(issue()).await.unwrap().wait().await.unwrap();

        // After the code lifetime only the unused code has expired.
        clock.advance(std::time::Duration::from_secs(61));
        assert_eq!(addr.send(Sweep).await.unwrap().unwrap(), 1);
        let replay = addr
            .send(RedeemCode {
                code: redeemed.clone(),
                client_id: "c".into(),
            })
            .await
            .unwrap();
        assert!(matches!(replay, Err(CodeError::Replayed(_))), "{replay:?}");

        // After the retention the redemption is forgotten as well.
        clock.advance(std::time::Duration::from_secs(24 * 3600));
        assert_eq!(addr.send(Sweep).await.unwrap().unwrap(), 1);
        assert_eq!(addr.send(Sweep).await.unwrap().unwrap(), 0);
        let late = addr
            .send(RedeemCode {
                code: redeemed,
                client_id: "c".into(),
            })
            .await
            .unwrap();
        assert!(matches!(late, Err(CodeError::Invalid)), "{late:?}");
    }

    #[actix::test]
    async fn concurrent_redemption_has_one_winner() {
        let (addr, _) = start();
        let code = addr.send(issue()).await.unwrap().wait().await.unwrap();
        let tries = (0..32).map(|_| {
            addr.send(RedeemCode {
                code: code.clone(),
                client_id: "c".into(),
            })
        });
        let results = futures_util::future::join_all(tries).await;
        let wins = results
            .into_iter()
            .filter(|r| matches!(r, Ok(Ok(_))))
            .count();
        assert_eq!(wins, 1);
    }

    #[actix::test]
    async fn discarded_codes_cannot_be_redeemed() {
        let (addr, _) = start();
        let alice = addr.send(issue()).await.unwrap().wait().await.unwrap();
        let bob = IssueCode {
            subject: "bob".into(),
            ..issue()
        };
        let bob = addr.send(bob).await.unwrap().wait().await.unwrap();
        let discard = DiscardCodesOf {
            holder: GrantHolder::Subject("u".into()),
        };
        let n = addr.send(discard).await.unwrap().wait().await.unwrap();
        assert_eq!(n, 1);
        let redeem = |code: &AuthorizationCode| RedeemCode {
            code: code.clone(),
            client_id: "c".into(),
        };
        let gone = addr.send(redeem(&alice)).await.unwrap();
        assert!(matches!(gone, Err(CodeError::Invalid)), "{gone:?}");
        assert!(addr.send(redeem(&bob)).await.unwrap().is_ok());
        let discard = DiscardCodesOf {
            holder: GrantHolder::Client("c".into()),
        };
        let n = addr.send(discard).await.unwrap().wait().await.unwrap();
        assert_eq!(n, 0, "redeemed codes are not live codes");
    }
}
