//! Actor-level tests of the ledger: `Addr::send`, no HTTP, an injected clock.

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

async fn start() -> (Addr<TokenLedger>, Arc<ManualClock>) {
    start_with(Config::default()).await
}

async fn start_with(config: Config) -> (Addr<TokenLedger>, Arc<ManualClock>) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    let settings = Arc::new(config.settings(8000).unwrap());
    let clock = ManualClock::new(1_000);
    let ledger = TokenLedger::new(Box::new(store), settings, clock.clone(), key())
        .await
        .unwrap();
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

/// Whether the ledger answers `token` as active (introspection).
pub(super) async fn active(addr: &Addr<TokenLedger>, token: &str) -> bool {
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
    let (addr, clock) = start().await;
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
    let (addr, _) = start_with(config).await;
    let first = pair(&addr, GrantId::generate()).await;
    let rt = first.refresh_token.unwrap();
    rotated(&addr, refresh(&rt, None)).await.unwrap();
    // Same second, no window: reuse revokes the grant.
    let again = rotated(&addr, refresh(&rt, None)).await;
    assert!(matches!(again, Err(LedgerError::InvalidGrant)), "{again:?}");
}

#[actix::test]
async fn within_the_grace_window_a_rotation_is_answered_again_identically() {
    let (addr, clock) = start().await;
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
        addr.send(CountTokens).await.unwrap().unwrap(),
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
    };
    let (one, other) = (
        ledger(&[1; 32]).await.unwrap(),
        ledger(&[2; 32]).await.unwrap(),
    );
    let rt = RefreshToken::generate();
    let (a1, r1) = one.successors(&rt, 1_000);
    let (a2, r2) = one.successors(&rt, 1_000);
    assert_eq!((a1.secret(), r1.secret()), (a2.secret(), r2.secret()));
    assert_ne!(a1.secret(), r1.secret());
    assert_eq!(a1.secret().len(), 54, "shaped like every other token");
    assert_eq!(
        &a1.key().0[..8],
        &1_000u64.to_be_bytes(),
        "the rotation time is the prefix"
    );
    let (a3, _) = other.successors(&rt, 1_000);
    assert_ne!(a1.secret(), a3.secret(), "another key, other successors");
    let (a4, _) = one.successors(&RefreshToken::generate(), 1_000);
    assert_ne!(a1.secret(), a4.secret());
}

#[actix::test]
async fn no_token_is_minted_into_a_revoked_grant_and_revocation_is_per_client() {
    let (addr, _) = start().await;
    let grant = GrantId::generate();
    addr.send(RevokeGrant { grant_id: grant })
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let before = addr.send(CountTokens).await.unwrap().unwrap();
    let refused = addr.send(issue(grant)).await.unwrap().wait().await;
    assert!(
        matches!(refused, Err(LedgerError::GrantRevoked)),
        "{refused:?}"
    );
    assert_eq!(addr.send(CountTokens).await.unwrap().unwrap(), before);

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
    let (addr, clock) = start().await;
    let t = pair(&addr, GrantId::generate()).await;
    assert_eq!(addr.send(CountTokens).await.unwrap().unwrap(), 2);
    clock.advance(Duration::from_secs(3601));
    assert!(!active(&addr, t.access_token.secret()).await);
    assert_eq!(addr.send(Sweep).await.unwrap().unwrap(), 1);
    assert_eq!(
        addr.send(CountTokens).await.unwrap().unwrap(),
        1,
        "the refresh token lives on"
    );
}

#[actix::test]
async fn an_undecodable_revocation_keeps_its_grant_revoked_and_is_counted() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let clock = ManualClock::new(1_000);
    let first = ledger_on(&db, Config::default(), clock.clone()).await;
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
        .await
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
    let issuer = ledger_on(&db, Config::default(), clock.clone()).await;
    let grant = GrantId::generate();
    let t = pair(&issuer, grant).await;
    drop(issuer);
    let mut short = Config::default();
    short.access_token_ttl = Duration::from_secs(60);
    short.refresh_token_ttl = Duration::from_secs(3600);
    let revoker = ledger_on(&db, short, clock.clone()).await;
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

async fn ledger_on(db: &sled::Db, config: Config, clock: Arc<ManualClock>) -> Addr<TokenLedger> {
    let store = SledTokenStore::open(db, Durability::relaxed()).unwrap();
    let settings = Arc::new(config.settings(8000).unwrap());
    TokenLedger::new(Box::new(store), settings, clock, key())
        .await
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
    let addr = ledger_on(&db, Config::default(), clock.clone()).await;
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
    let reopened = ledger_on(&db, Config::default(), clock).await;
    assert!(!active(&reopened, issued[0].access_token.secret()).await);
    assert!(active(&reopened, issued[1].access_token.secret()).await);
}

#[actix::test]
async fn a_revocation_outlives_the_grants_tokens_whatever_the_configured_ttl() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let clock = ManualClock::new(1_000);
    let issuer = ledger_on(&db, Config::default(), clock.clone()).await;
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
    let admin = ledger_on(&db, short, clock.clone()).await;
    assert_eq!(revoke_of(&admin, GrantHolder::Subject("u".into())).await, 1);
    clock.advance(Duration::from_secs(7 * 24 * 3600));
    issuer.send(Sweep).await.unwrap().unwrap();
    let reopened = ledger_on(&db, Config::default(), clock.clone()).await;
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
