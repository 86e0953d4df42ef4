//! The ledger over a store whose answers come later, as a database's would: each intent
//! runs only after the actor has gone back to its mailbox. The ledger must give the same
//! answers as over sled's ready futures, and keep its in-memory revoked set right when
//! messages interleave with pending intents.

use std::sync::Mutex;

use super::{tests::active, *};
use crate::{
    config::Config,
    domain::{clock::ManualClock, secrets::TokenKey},
    storage::{
        sled::{Durability, SledTokenStore},
        GrantRevocation, IssueOutcome, NewToken, Persist, RevokedGrants, RotateOutcome, Rotation,
        Swept, TokenRecord, TokenRevocation,
    },
};

/// A [`TokenStore`] that runs each intent on a sled store after yielding once.
struct Deferred(Arc<Mutex<SledTokenStore>>);

impl Deferred {
    fn later<T: Send + 'static>(
        &self,
        intent: impl FnOnce(&SledTokenStore) -> StoreFuture<T> + Send + 'static,
    ) -> StoreFuture<T> {
        let store = Arc::clone(&self.0);
        Box::pin(async move {
            tokio::task::yield_now().await;
            let answer = intent(&store.lock().unwrap());
            answer.await
        })
    }
}

impl TokenStore for Deferred {
    fn issue(&self, access: NewToken, refresh: Option<NewToken>) -> StoreFuture<IssueOutcome> {
        self.later(move |s| s.issue(access, refresh))
    }
    fn rotate(&self, rotation: Rotation) -> StoreFuture<RotateOutcome> {
        self.later(move |s| s.rotate(rotation))
    }
    fn get(&self, key: &TokenKey) -> StoreFuture<Option<TokenRecord>> {
        let key = *key;
        self.later(move |s| s.get(&key))
    }
    fn revoke_token(
        &self,
        key: &TokenKey,
        client_id: &str,
        forget_at: i64,
    ) -> StoreFuture<TokenRevocation> {
        let (key, client_id) = (*key, client_id.to_owned());
        self.later(move |s| s.revoke_token(&key, &client_id, forget_at))
    }
    fn revoke_grant(&self, grant: GrantId, forget_at: i64) -> StoreFuture<GrantRevocation> {
        self.later(move |s| s.revoke_grant(grant, forget_at))
    }
    fn record_lifetime(&self, lifetime: i64, until: i64) -> StoreFuture<Vec<(i64, i64)>> {
        self.later(move |s| s.record_lifetime(lifetime, until))
    }
    fn tokens_after(&self, after: Option<TokenKey>, limit: usize) -> StoreFuture<Vec<NewToken>> {
        self.later(move |s| s.tokens_after(after, limit))
    }
    fn lifetimes(&self) -> StoreFuture<Vec<(i64, i64)>> {
        self.later(|s| s.lifetimes())
    }
    fn import_tokens(&self, tokens: Vec<NewToken>) -> StoreFuture<usize> {
        self.later(move |s| s.import_tokens(tokens))
    }
    fn revoked_grants(&self) -> StoreFuture<RevokedGrants> {
        self.later(|s| s.revoked_grants())
    }
    fn grants_of(&self, holder: &GrantHolder) -> StoreFuture<Vec<(GrantId, i64)>> {
        let holder = holder.clone();
        self.later(move |s| s.grants_of(&holder))
    }
    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept> {
        self.later(move |s| s.sweep(now, limit))
    }
    fn count(&self) -> StoreFuture<usize> {
        self.later(|s| s.count())
    }
    fn persist(&self) -> Persist {
        self.0.lock().unwrap().persist()
    }
}

async fn start() -> (Addr<TokenLedger>, Arc<ManualClock>) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let sled = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    let store = Deferred(Arc::new(Mutex::new(sled)));
    let settings = Arc::new(Config::default().settings(8000).unwrap());
    let clock = ManualClock::new(1_000);
    let key = Arc::new(ServerKey::from_bytes(&[5u8; 32]).unwrap());
    let ledger = TokenLedger::new(Box::new(store), settings, clock.clone(), key)
        .await
        .unwrap();
    (ledger.start(), clock)
}

fn issue(grant_id: GrantId) -> IssueTokens {
    IssueTokens {
        grant_id,
        client_id: "c".into(),
        subject: Some("u".into()),
        scopes: Scopes::parse("mcp:read").unwrap(),
        resource: "http://localhost:8000/mcp".into(),
        with_refresh: true,
    }
}

fn refresh(token: &RefreshToken) -> RefreshTokens {
    RefreshTokens {
        refresh_token: token.clone(),
        client_id: "c".into(),
        scopes: None,
    }
}

#[actix::test]
async fn rotation_repeat_and_reuse_answer_as_over_sled() {
    let (addr, clock) = start().await;
    let first = addr
        .send(issue(GrantId::generate()))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let rt = first.refresh_token.unwrap();
    let a = addr.send(refresh(&rt)).await.unwrap().wait().await.unwrap();
    let b = addr.send(refresh(&rt)).await.unwrap().wait().await.unwrap();
    assert!(!a.repeated && b.repeated);
    assert_eq!(a.access_token.secret(), b.access_token.secret());
    assert!(active(&addr, a.access_token.secret()).await);
    clock.advance(std::time::Duration::from_secs(11));
    let reuse = addr.send(refresh(&rt)).await.unwrap().wait().await;
    assert!(matches!(reuse, Err(LedgerError::InvalidGrant)), "{reuse:?}");
    // The revocation the store made is in the ledger's set before the answer.
    assert!(!active(&addr, a.access_token.secret()).await);
    assert_eq!(addr.send(CountTokens).await.unwrap().unwrap(), 4);
}

#[actix::test]
async fn a_revocation_racing_an_issuance_never_leaves_live_tokens() {
    let (addr, _) = start().await;
    let grant = GrantId::generate();
    // Both sent before either is answered: the ledger handles the second while the
    // first's intent is still pending.
    let revoke = addr.send(RevokeGrant { grant_id: grant });
    let issued = addr.send(issue(grant));
    let (revoke, issued) = futures_util::future::join(revoke, issued).await;
    revoke.unwrap().wait().await.unwrap();
    match issued.unwrap().wait().await {
        Err(LedgerError::GrantRevoked) => {}
        Ok(t) => assert!(
            !active(&addr, t.access_token.secret()).await,
            "tokens issued before the revocation are revoked with it"
        ),
        Err(e) => panic!("{e:?}"),
    }
    // And a refresh token revoked by its client takes the grant's access tokens along.
    let t = addr
        .send(issue(GrantId::generate()))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let rt = t.refresh_token.unwrap();
    let revoke = RevokeToken {
        token: PresentedToken::new(rt.secret().to_owned()),
        client_id: "c".into(),
    };
    addr.send(revoke).await.unwrap().wait().await.unwrap();
    assert!(!active(&addr, t.access_token.secret()).await);
}

#[actix::test]
async fn sweeping_and_administration_answer_as_over_sled() {
    let (addr, clock) = start().await;
    let grant = GrantId::generate();
    let mut msg = issue(grant);
    msg.subject = Some("v".into());
    let t = addr.send(msg).await.unwrap().wait().await.unwrap();
    let holder = GrantHolder::Subject("v".into());
    let revoked = addr.send(RevokeGrantsOf { holder }).await.unwrap();
    assert_eq!(revoked.wait().await.unwrap(), 1);
    assert!(!active(&addr, t.access_token.secret()).await);
    // Past every token's life and the revocation's memory: all swept, and the grant
    // forgotten (a token minted into it now would be accepted again).
    clock.advance(std::time::Duration::from_secs(40 * 24 * 3600));
    assert_eq!(addr.send(Sweep).await.unwrap().unwrap(), 2);
    assert_eq!(addr.send(CountTokens).await.unwrap().unwrap(), 0);
    let again = addr.send(issue(grant)).await.unwrap().wait().await;
    assert!(again.is_ok(), "{again:?}");
}
