//! The PostgreSQL code store: redeem once, replays, burnt codes, holder removal, sweeps (as
//! the sled store's tests), and concurrent redemptions of one code.

use super::db;
use crate::{
    domain::{scope::Scopes, secrets::AccessToken},
    storage::{postgres::PgStores, CodeRecord, CodeStore, GrantHolder, GrantId, Redemption},
};

fn code(client: &str, subject: &str) -> CodeRecord {
    CodeRecord {
        grant_id: GrantId::generate(),
        client_id: client.into(),
        redirect_uri: "http://localhost/cb".into(),
        redirect_uri_explicit: true,
        code_challenge: "x".repeat(43),
        scopes: Scopes::parse("mcp:read mcp:write").unwrap(),
        resource: "http://localhost:8000/mcp".into(),
        subject: subject.into(),
        expires_at: 100,
    }
}

/// Counts the rows of `codes`: (live, redeemed markers).
async fn rows(stores: &PgStores) -> (i64, i64) {
    let client = stores.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE used_at IS NULL), \
             count(*) FILTER (WHERE used_at IS NOT NULL) FROM codes",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_then_reports_its_grant_until_forgotten() {
    let Some(db) = db!() else { return };
    let store = db.stores.codes();
    let key = AccessToken::generate().key();
    let issued = code("app", "alice");
    store.insert(&key, issued.clone()).await.unwrap();
    let Redemption::Redeemed(record) = store.redeem(&key, "app", 50, 500).await.unwrap() else {
        panic!("the first redemption redeems");
    };
    assert_eq!(record.grant_id, issued.grant_id);
    assert_eq!(
        (record.redirect_uri.as_str(), record.redirect_uri_explicit),
        ("http://localhost/cb", true)
    );
    assert_eq!(record.code_challenge, issued.code_challenge);
    assert_eq!(record.scopes.to_string(), "mcp:read mcp:write");
    assert_eq!((record.subject.as_str(), record.expires_at), ("alice", 100));
    assert_eq!(rows(&db.stores).await, (0, 1), "replaced by its marker");
    for client in ["app", "other"] {
        let again = store.redeem(&key, client, 60, 500).await.unwrap();
        assert!(
            matches!(again, Redemption::Replayed(g) if g == issued.grant_id),
            "{again:?}"
        );
    }
    assert!(matches!(
        store.redeem(&key, "app", 500, 900).await.unwrap(),
        Redemption::Invalid
    ));
    assert!(matches!(
        store
            .redeem(&AccessToken::generate().key(), "app", 50, 500)
            .await
            .unwrap(),
        Redemption::Invalid
    ));
}

#[tokio::test]
async fn an_expired_or_foreign_code_is_burnt() {
    let Some(db) = db!() else { return };
    let store = db.stores.codes();
    let (foreign, expired) = (AccessToken::generate().key(), AccessToken::generate().key());
    store.insert(&foreign, code("app", "alice")).await.unwrap();
    store.insert(&expired, code("app", "alice")).await.unwrap();
    assert!(matches!(
        store.redeem(&foreign, "other", 50, 500).await.unwrap(),
        Redemption::Invalid
    ));
    assert!(matches!(
        store.redeem(&expired, "app", 100, 500).await.unwrap(),
        Redemption::Invalid
    ));
    assert_eq!(rows(&db.stores).await, (0, 0), "burnt");
    assert!(matches!(
        store.redeem(&foreign, "app", 50, 500).await.unwrap(),
        Redemption::Invalid
    ));
}

#[tokio::test]
async fn removing_live_codes_leaves_others_and_redeemed_markers() {
    let Some(db) = db!() else { return };
    let store = db.stores.codes();
    let keys: Vec<_> = (0..3).map(|_| AccessToken::generate().key()).collect();
    store.insert(&keys[0], code("app", "alice")).await.unwrap();
    store.insert(&keys[1], code("app", "bob")).await.unwrap();
    store.insert(&keys[2], code("app", "alice")).await.unwrap();
    store.redeem(&keys[2], "app", 10, 100).await.unwrap();
    let alice = GrantHolder::Subject("alice".into());
    assert_eq!(store.remove_live_codes_of(&alice).await.unwrap(), 1);
    assert_eq!(rows(&db.stores).await, (1, 1));
    let app = GrantHolder::Client("app".into());
    assert_eq!(store.remove_live_codes_of(&app).await.unwrap(), 1);
    assert_eq!(rows(&db.stores).await, (0, 1), "markers stay");
}

#[tokio::test]
async fn the_code_sweep_removes_expired_codes_and_forgotten_markers_in_bounded_batches() {
    let Some(db) = db!() else { return };
    let store = db.stores.codes();
    for _ in 0..3 {
        store
            .insert(&AccessToken::generate().key(), code("app", "alice"))
            .await
            .unwrap();
    }
    let (used, kept) = (AccessToken::generate().key(), AccessToken::generate().key());
    for key in [&used, &kept] {
        store.insert(key, code("app", "alice")).await.unwrap();
    }
    store.redeem(&used, "app", 10, 150).await.unwrap();
    store.redeem(&kept, "app", 10, 1_000).await.unwrap();
    // Three expired live codes and one forgotten marker, two per slice.
    assert_eq!(store.sweep(200, 2).await.unwrap().removed, 2);
    assert_eq!(store.sweep(200, 2).await.unwrap().removed, 2);
    assert_eq!(store.sweep(200, 2).await.unwrap().removed, 0);
    assert_eq!(rows(&db.stores).await, (0, 1));
    assert!(matches!(
        store.redeem(&kept, "app", 200, 1_000).await.unwrap(),
        Redemption::Replayed(_)
    ));
}

/// The same code presented on several instances at once (or by a client and an attacker):
/// exactly one redemption wins, and every other reports the replay with its grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_of_one_code_redeem_once() {
    let Some(db) = db!() else { return };
    let store = db.stores.codes();
    const N: usize = 16;
    for round in 1..=10 {
        let key = AccessToken::generate().key();
        let issued = code("app", "alice");
        store.insert(&key, issued.clone()).await.unwrap();
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.redeem(&key, "app", 50, 500).await.unwrap() })
            })
            .collect();
        let (mut redeemed, mut replayed) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Redemption::Redeemed(r) => {
                    assert_eq!(r.grant_id, issued.grant_id);
                    redeemed += 1;
                }
                Redemption::Replayed(g) => {
                    assert_eq!(g, issued.grant_id);
                    replayed += 1;
                }
                Redemption::Invalid => panic!("round {round}: invalid"),
            }
        }
        assert_eq!((redeemed, replayed), (1, N - 1), "round {round}");
    }
}
