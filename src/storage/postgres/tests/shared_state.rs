//! The PostgreSQL shared state (`shared_state`): entries, take-once, counters whose steps
//! are atomic across connections (as across instances), and the sweeps of every table
//! taking turns under their advisory lock, in bounded batches.

use futures_util::future::join_all;

use super::db;
use crate::{
    domain::{
        scope::Scopes,
        secrets::{AccessToken, Digest},
    },
    storage::{
        postgres::{lock, PgStores},
        shared_state::{Entry, Namespace, SharedState},
        CodeRecord, CodeStore, GrantId, TokenStore,
    },
};

fn key(n: u8) -> Digest {
    Digest([n; 32])
}

async fn rows(stores: &PgStores) -> i64 {
    let client = stores.pool.get().await.unwrap();
    client
        .query_one("SELECT count(*) FROM shared_state", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn entries_expire_are_taken_once_and_end_by_owner() {
    let Some(db) = db!() else { return };
    let s = db.stores.shared_state();
    let ns = Namespace::SignIn;
    let entry = |owner: &str, expires_at| Entry {
        value: owner.as_bytes().to_vec(),
        owner: Some(owner.into()),
        expires_at,
    };
    s.put(ns, &key(1), entry("alice", 200), 0).await.unwrap();
    s.put(ns, &key(2), entry("alice", 200), 0).await.unwrap();
    s.put(ns, &key(3), entry("bob", 200), 0).await.unwrap();
    assert_eq!(
        s.get(ns, &key(1), 199).await.unwrap(),
        Some(entry("alice", 200))
    );
    assert_eq!(s.get(ns, &key(1), 200).await.unwrap(), None, "expired");
    assert_eq!(s.get(Namespace::LoginName, &key(1), 0).await.unwrap(), None);
    // Of concurrent takers (each on a connection of its own), exactly one gets it.
    let takes = join_all((0..8).map(|_| s.take(ns, &key(3), 0))).await;
    let taken: Vec<_> = takes.into_iter().filter_map(|t| t.unwrap()).collect();
    assert_eq!(taken, [entry("bob", 200)]);
    assert_eq!(s.remove_owned_by(ns, "alice").await.unwrap(), 2);
    assert_eq!(rows(&db.stores).await, 0);
    s.put(ns, &key(4), entry("carol", 300), 0).await.unwrap();
    s.put(ns, &key(4), entry("dave", 400), 0).await.unwrap();
    assert_eq!(
        s.get(ns, &key(4), 0).await.unwrap(),
        Some(entry("dave", 400)),
        "replaced"
    );
    s.remove(ns, &key(4)).await.unwrap();
    assert_eq!(rows(&db.stores).await, 0);
}

#[tokio::test]
async fn concurrent_counts_admit_exactly_the_limit_in_fixed_windows() {
    let Some(db) = db!() else { return };
    let s = db.stores.shared_state();
    let ns = Namespace::LoginAddress;
    // 12 attempts at once on separate pooled connections: 5 admitted, whatever the order.
    let counts = join_all((0..12).map(|_| s.count(ns, &key(1), 60, 5, 100, false))).await;
    let mut counts: Vec<u32> = counts.into_iter().map(|c| c.unwrap().count).collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2, 3, 4, 5, 6, 6, 6, 6, 6, 6, 6]);
    let c = s.count(ns, &key(1), 60, 5, 159, false).await.unwrap();
    assert!(!c.admitted(5));
    assert_eq!(c.started, 100, "a refusal does not extend the window");
    assert_eq!(c.retry_after(60, 159), 1);
    s.uncount(ns, &key(1), 99, 159).await.unwrap();
    s.uncount(ns, &key(1), 100, 159).await.unwrap();
    assert_eq!(
        s.count(ns, &key(1), 60, 5, 159, false).await.unwrap().count,
        6
    );
    let c = s.count(ns, &key(1), 60, 5, 160, false).await.unwrap();
    assert_eq!(
        (c.count, c.started),
        (1, 160),
        "the window ended: a new one"
    );
    assert_eq!(
        s.count(Namespace::LoginName, &key(1), 60, 5, 160, false)
            .await
            .unwrap()
            .count,
        1,
        "namespaces apart"
    );
}

/// Holds the sweep lock of `table` on a connection of its own, as another instance
/// sweeping it does, until the returned transaction ends.
async fn hold_sweep_lock(
    client: &mut deadpool_postgres::Object,
    table: i32,
) -> deadpool_postgres::Transaction<'_> {
    let tx = client.transaction().await.unwrap();
    assert!(lock::try_sweep(&tx, table).await.unwrap());
    tx
}

#[tokio::test]
async fn a_sweep_skips_while_another_instance_sweeps_and_deletes_bounded_batches() {
    let Some(db) = db!() else { return };
    let s = db.stores.shared_state();
    for n in 0..5 {
        s.count(Namespace::Registrations, &key(n), 10, 5, 0, false)
            .await
            .unwrap();
    }
    s.count(Namespace::Registrations, &key(9), 1_000, 5, 0, false)
        .await
        .unwrap();
    let mut other = db.stores.pool.get().await.unwrap();
    let held = hold_sweep_lock(&mut other, lock::SWEEP_SHARED_STATE).await;
    assert_eq!(
        s.sweep(100, 2).await.unwrap(),
        0,
        "skipped: another instance sweeps"
    );
    assert_eq!(rows(&db.stores).await, 6);
    held.rollback().await.unwrap();
    assert_eq!(s.sweep(100, 2).await.unwrap(), 2, "a bounded batch");
    assert_eq!(s.sweep(100, 2).await.unwrap(), 2);
    assert_eq!(s.sweep(100, 2).await.unwrap(), 1);
    assert_eq!(s.sweep(100, 2).await.unwrap(), 0);
    assert_eq!(rows(&db.stores).await, 1, "the live counter stays");
}

#[tokio::test]
async fn token_and_code_sweeps_skip_while_another_instance_holds_their_lock() {
    let Some(db) = db!() else { return };
    let (tokens, codes) = (db.stores.tokens(), db.stores.codes());
    tokens.revoke_grant(GrantId([1; 16]), 10).await.unwrap();
    tokens.revoke_grant(GrantId([2; 16]), 10).await.unwrap();
    for _ in 0..2 {
        let record = CodeRecord {
            grant_id: GrantId::generate(),
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            redirect_uri_explicit: true,
            code_challenge: "x".repeat(43),
            scopes: Scopes::parse("mcp:read").unwrap(),
            resource: "https://as.example/mcp".into(),
            subject: "alice".into(),
            expires_at: 10,
        };
        codes
            .insert(&AccessToken::generate().key(), record)
            .await
            .unwrap();
    }
    let mut other = db.stores.pool.get().await.unwrap();
    let held = hold_sweep_lock(&mut other, lock::SWEEP_TOKENS).await;
    let swept = tokens.sweep(100, 1).await.unwrap();
    assert!(swept.forgotten_grants.is_empty(), "skipped");
    // Each table has a lock of its own: the codes are swept meanwhile, one per batch.
    assert_eq!(codes.sweep(100, 1).await.unwrap().removed, 1);
    held.rollback().await.unwrap();
    assert_eq!(
        tokens.sweep(100, 1).await.unwrap().forgotten_grants.len(),
        1
    );
    let held = hold_sweep_lock(&mut other, lock::SWEEP_CODES).await;
    assert_eq!(codes.sweep(100, 1).await.unwrap().removed, 0, "skipped");
    assert_eq!(
        tokens.sweep(100, 1).await.unwrap().forgotten_grants.len(),
        1
    );
    held.rollback().await.unwrap();
    assert_eq!(codes.sweep(100, 1).await.unwrap().removed, 1);
}

#[tokio::test]
async fn a_large_sweep_is_cut_into_batches_of_bounded_rows_up_to_its_limit() {
    let Some(db) = db!() else { return };
    let s = db.stores.shared_state();
    let client = db.stores.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO shared_state (namespace, key, expires_at) \
             SELECT 'registrations', sha256(int4send(g)), 10 FROM generate_series(1, 12000) g",
            &[],
        )
        .await
        .unwrap();
    const { assert!(lock::SWEEP_BATCH_ROWS < 7_000) };
    // More than one batch, and never past the tick's limit.
    assert_eq!(s.sweep(100, 7_000).await.unwrap(), 7_000);
    assert_eq!(rows(&db.stores).await, 5_000);
    assert_eq!(s.sweep(100, 100_000).await.unwrap(), 5_000);
    assert_eq!(rows(&db.stores).await, 0);
}
