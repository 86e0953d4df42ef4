//! The PostgreSQL token store: each intent's outcomes (as the sled store's tests), and
//! concurrent rotations of one refresh token.

use super::db;
use crate::storage::fixtures::{refresh_token, rotation, token};
use crate::{
    domain::secrets::{AccessToken, RefreshToken},
    storage::{
        postgres::PgTokenStore, GrantHolder, GrantId, GrantRevocation, IssueOutcome, NewToken,
        RotateOutcome, TokenRecord, TokenRevocation, TokenStore,
    },
};

async fn put(store: &PgTokenStore, record: TokenRecord) -> crate::domain::secrets::TokenKey {
    let key = AccessToken::generate().key();
    let outcome = store.issue(NewToken { key, record }, None).await.unwrap();
    assert_eq!(outcome, IssueOutcome::Issued);
    key
}

async fn stored(store: &PgTokenStore, grant: GrantId, expires_at: i64) -> RefreshToken {
    let token = RefreshToken::generate();
    store
        .issue(
            NewToken {
                key: token.key(),
                record: refresh_token(grant, expires_at),
            },
            None,
        )
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn issue_stores_the_tokens_unless_the_grant_is_revoked() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grant = GrantId::generate();
    let new = |record: TokenRecord| NewToken {
        key: AccessToken::generate().key(),
        record,
    };
    let (access, refresh) = (
        new(token(grant, "app", None, 50)),
        new(refresh_token(grant, 90)),
    );
    let (access_key, refresh_key) = (access.key, refresh.key);
    assert_eq!(
        store.issue(access, Some(refresh)).await.unwrap(),
        IssueOutcome::Issued
    );
    let read = store.get(&access_key).await.unwrap().unwrap();
    assert_eq!((read.expires_at, read.subject), (50, None));
    let read = store.get(&refresh_key).await.unwrap().unwrap();
    assert_eq!(read.scopes.to_string(), "mcp:read mcp:write");
    assert_eq!(read.subject.as_deref(), Some("alice"));
    assert_eq!(store.count().await.unwrap(), 2);

    store.revoke_grant(grant, 100).await.unwrap();
    let late = new(token(grant, "app", None, 50));
    let late_key = late.key;
    assert_eq!(
        store.issue(late, None).await.unwrap(),
        IssueOutcome::GrantRevoked
    );
    assert!(
        store.get(&late_key).await.unwrap().is_none(),
        "nothing stored"
    );
    assert_eq!(store.count().await.unwrap(), 2);
    // Stored as digests: the key column holds the 40-byte key, never a token value.
    let client = db.stores.pool.get().await.unwrap();
    let row = client
        .query_one("SELECT octet_length(key) FROM tokens LIMIT 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 40);
}

#[tokio::test]
async fn rotate_rotates_once_repeats_within_the_window_and_revokes_on_reuse_after_it() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grant = GrantId::generate();
    let presented = stored(&store, grant, 10_000).await;

    let RotateOutcome::Rotated(first) = store
        .rotate(rotation(&presented, 100, Some("mcp:read")))
        .await
        .unwrap()
    else {
        panic!("first presentation rotates");
    };
    assert_eq!(first.access_record.scopes.to_string(), "mcp:read");
    assert_eq!(first.access_record.expires_at, 200);
    let successor = store.get(&first.refresh.key()).await.unwrap().unwrap();
    assert_eq!(successor.scopes.to_string(), "mcp:read mcp:write");
    assert_eq!((successor.grant_id, successor.expires_at), (grant, 1_100));
    let old = store.get(&presented.key()).await.unwrap().unwrap();
    assert_eq!(old.rotated_at_us, Some(100_000_000));
    assert_eq!(store.count().await.unwrap(), 3);

    let RotateOutcome::Repeated(again) =
        store.rotate(rotation(&presented, 110, None)).await.unwrap()
    else {
        panic!("a replay within the window repeats");
    };
    assert_eq!(again.access.secret(), first.access.secret());
    assert_eq!(again.refresh.secret(), first.refresh.secret());
    assert_eq!(again.access_record.scopes.to_string(), "mcp:read");
    assert_eq!(store.count().await.unwrap(), 3);

    assert!(matches!(
        store
            .rotate(rotation(&presented, 110, Some("mcp:admin")))
            .await
            .unwrap(),
        RotateOutcome::InvalidScope
    ));

    let RotateOutcome::Reused {
        grant_id,
        forget_at,
        ..
    } = store.rotate(rotation(&presented, 111, None)).await.unwrap()
    else {
        panic!("a replay after the window is reuse");
    };
    assert_eq!((grant_id, forget_at), (grant, 111 + 5_000));
    assert_eq!(
        store.revoked_grants().await.unwrap().grants,
        [(grant, 5_111)]
    );
    assert!(matches!(
        store
            .rotate(rotation(&first.refresh, 112, None))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    ));
}

#[tokio::test]
async fn rotate_refuses_unknown_expired_foreign_and_access_tokens_without_writing() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grant = GrantId::generate();
    let invalid = |outcome| assert!(matches!(outcome, RotateOutcome::Invalid), "{outcome:?}");
    invalid(
        store
            .rotate(rotation(&RefreshToken::generate(), 100, None))
            .await
            .unwrap(),
    );
    let expired = stored(&store, grant, 100).await;
    invalid(store.rotate(rotation(&expired, 100, None)).await.unwrap());
    let live = stored(&store, grant, 1_000).await;
    let mut foreign = rotation(&live, 100, None);
    foreign.client_id = "other".into();
    invalid(store.rotate(foreign).await.unwrap());
    let access = RefreshToken::generate();
    store
        .issue(
            NewToken {
                key: access.key(),
                record: token(grant, "app", Some("alice"), 1_000),
            },
            None,
        )
        .await
        .unwrap();
    invalid(store.rotate(rotation(&access, 100, None)).await.unwrap());
    assert_eq!(store.count().await.unwrap(), 3, "nothing written");
    assert!(store
        .get(&live.key())
        .await
        .unwrap()
        .unwrap()
        .rotated_at_us
        .is_none());
    let RotateOutcome::Rotated(first) = store.rotate(rotation(&live, 100, None)).await.unwrap()
    else {
        panic!("rotates");
    };
    assert_eq!(
        store
            .revoke_token(&first.access.key(), "app", 0)
            .await
            .unwrap(),
        TokenRevocation::AccessRemoved
    );
    invalid(store.rotate(rotation(&live, 105, None)).await.unwrap());
}

#[tokio::test]
async fn revoking_a_token_is_per_client_and_a_refresh_token_takes_its_grant() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grant = GrantId::generate();
    let refresh = stored(&store, grant, 1_000).await;
    assert_eq!(
        store
            .revoke_token(&refresh.key(), "other", 50)
            .await
            .unwrap(),
        TokenRevocation::Ignored
    );
    assert_eq!(
        store
            .revoke_token(&RefreshToken::generate().key(), "app", 50)
            .await
            .unwrap(),
        TokenRevocation::Ignored
    );
    assert_eq!(
        store.revoke_token(&refresh.key(), "app", 50).await.unwrap(),
        TokenRevocation::GrantRevoked(GrantRevocation {
            grant_id: grant,
            newly: true,
            forget_at: 50
        })
    );
    assert!(store.get(&refresh.key()).await.unwrap().is_none());
    let again = store.revoke_grant(grant, 40).await.unwrap();
    assert_eq!((again.newly, again.forget_at), (false, 50));
    let later = store.revoke_grant(grant, 70).await.unwrap();
    assert_eq!((later.newly, later.forget_at), (false, 70));
}

/// Issue 14: validation on any instance is right about a revocation committed by another
/// at once, without its in-memory set: `get` answers nothing for a token of a revoked grant
/// (revoked directly, by reuse in a rotation, or by revoking its refresh token), and still
/// answers the tokens of other grants.
#[tokio::test]
async fn get_answers_nothing_for_a_token_of_a_revoked_grant() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    // Revoked directly (a replayed code, administration).
    let (grant, other) = (GrantId::generate(), GrantId::generate());
    let access = put(&store, token(grant, "app", None, 1_000)).await;
    let kept = put(&store, token(other, "app", None, 1_000)).await;
    assert!(store.get(&access).await.unwrap().is_some());
    store.revoke_grant(grant, 2_000).await.unwrap();
    assert!(store.get(&access).await.unwrap().is_none(), "revoked grant");
    assert!(store.get(&kept).await.unwrap().is_some(), "another grant");

    // Revoked by reuse detected in a rotation: the successors go with it.
    let grant = GrantId::generate();
    let presented = stored(&store, grant, 10_000).await;
    let RotateOutcome::Rotated(first) =
        store.rotate(rotation(&presented, 100, None)).await.unwrap()
    else {
        panic!("first presentation rotates");
    };
    assert!(store.get(&first.access.key()).await.unwrap().is_some());
    let reused = store.rotate(rotation(&presented, 200, None)).await.unwrap();
    assert!(matches!(reused, RotateOutcome::Reused { .. }), "{reused:?}");
    assert!(store.get(&first.access.key()).await.unwrap().is_none());
    assert!(store.get(&first.refresh.key()).await.unwrap().is_none());

    // Revoked by revoking its refresh token (RFC 7009 §2.1): its access tokens go too.
    let grant = GrantId::generate();
    let access = put(&store, token(grant, "app", None, 1_000)).await;
    let refresh = stored(&store, grant, 1_000).await;
    store
        .revoke_token(&refresh.key(), "app", 2_000)
        .await
        .unwrap();
    assert!(store.get(&access).await.unwrap().is_none());
}

#[tokio::test]
async fn grants_of_a_subject_or_client_with_their_latest_expiry() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let (a, b, c) = (
        GrantId::generate(),
        GrantId::generate(),
        GrantId::generate(),
    );
    for record in [
        token(a, "app", Some("alice"), 10),
        token(a, "app", Some("alice"), 30),
        token(b, "app", Some("bob"), 20),
        token(c, "machine", None, 40),
    ] {
        put(&store, record).await;
    }
    let of = |holder| {
        let store = store.clone();
        async move {
            let mut grants = store.grants_of(&holder).await.unwrap();
            grants.sort_by_key(|(_, exp)| *exp);
            grants
        }
    };
    assert_eq!(
        of(GrantHolder::Subject("alice".into())).await,
        vec![(a, 30)]
    );
    assert_eq!(
        of(GrantHolder::Client("app".into())).await,
        vec![(b, 20), (a, 30)]
    );
    assert_eq!(
        of(GrantHolder::Client("machine".into())).await,
        vec![(c, 40)]
    );
    assert!(of(GrantHolder::Subject("nobody".into())).await.is_empty());
}

#[tokio::test]
async fn sweeps_remove_expired_tokens_and_forgotten_grants_a_bounded_batch_at_a_time() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grants: Vec<GrantId> = (0..5u8).map(|i| GrantId([i; 16])).collect();
    for g in &grants {
        store.revoke_grant(*g, 10).await.unwrap();
    }
    store.revoke_grant(GrantId([9; 16]), 1_000).await.unwrap();
    for expires in [5, 6, 7, 500] {
        put(&store, token(GrantId::generate(), "app", None, expires)).await;
    }
    let mut forgotten = Vec::new();
    let mut removed = 0;
    for _ in 0..3 {
        let swept = store.sweep(100, 2).await.unwrap();
        assert!(swept.forgotten_grants.len() <= 2 && swept.removed <= 2);
        forgotten.extend(swept.forgotten_grants);
        removed += swept.removed;
    }
    forgotten.sort_by_key(|g| g.0);
    assert_eq!(forgotten, grants);
    assert_eq!(removed, 3);
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(
        store.revoked_grants().await.unwrap().grants,
        [(GrantId([9; 16]), 1_000)]
    );
}

#[tokio::test]
async fn lifetime_records_only_grow_and_are_swept_once_no_token_can_outlive_them() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let sorted = |mut v: Vec<(i64, i64)>| {
        v.sort_unstable();
        v
    };
    assert_eq!(store.record_lifetime(100, 50).await.unwrap(), [(100, 50)]);
    store.record_lifetime(100, 20).await.unwrap();
    let seen = sorted(store.record_lifetime(10, 60).await.unwrap());
    assert_eq!(seen, [(10, 60), (100, 50)]);
    store.sweep(70, 10).await.unwrap();
    assert_eq!(store.record_lifetime(100, 0).await.unwrap(), [(100, 50)]);
    store.sweep(149, 10).await.unwrap();
    assert_eq!(store.record_lifetime(100, 0).await.unwrap(), [(100, 50)]);
    store.sweep(150, 10).await.unwrap();
    // Recorded anew by the read-back, at the time given.
    assert_eq!(store.record_lifetime(100, 0).await.unwrap(), [(100, 0)]);
    // A record that never ends does not overflow the sweep.
    store.record_lifetime(7, i64::MAX).await.unwrap();
    store.sweep(i64::MAX, 10).await.unwrap();
}

/// Several instances rotating one refresh token at once (a client retrying through a
/// load balancer): exactly one rotates, every other answers the same successors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_of_one_token_rotate_once_and_repeat_the_rest() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    const N: usize = 16;
    // Several rounds: one round's interleaving is up to the scheduler.
    for round in 1..=10 {
        let grant = GrantId::generate();
        let presented = stored(&store, grant, 10_000).await;
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let (store, presented) = (store.clone(), presented.clone());
                // Different stamps, as different instances would take: only the winner's
                // counts.
                tokio::spawn(async move {
                    let mut r = rotation(&presented, 100, None);
                    r.rotated_at_us += i64::try_from(i).unwrap();
                    store.rotate(r).await.unwrap()
                })
            })
            .collect();
        let (mut rotated, mut repeated) = (Vec::new(), Vec::new());
        for task in tasks {
            match task.await.unwrap() {
                RotateOutcome::Rotated(s) => rotated.push(s),
                RotateOutcome::Repeated(s) => repeated.push(s),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((rotated.len(), repeated.len()), (1, N - 1), "round {round}");
        for s in &repeated {
            assert_eq!(s.refresh.secret(), rotated[0].refresh.secret());
        }
        assert_eq!(
            store.count().await.unwrap(),
            round * 3,
            "one successor pair"
        );
    }
}

/// A revocation racing issues into its grant: afterwards no issue is refused that
/// committed after the revocation, and every stored token predates it (none slipped in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_racing_a_revocation_either_precede_it_or_are_refused() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grant = GrantId::generate();
    let issues: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = AccessToken::generate().key();
                let record = token(grant, "app", None, 1_000);
                (
                    key,
                    store.issue(NewToken { key, record }, None).await.unwrap(),
                )
            })
        })
        .collect();
    store.revoke_grant(grant, 2_000).await.unwrap();
    let mut issued = 0;
    let client = db.stores.pool.get().await.unwrap();
    for task in issues {
        let (key, outcome) = task.await.unwrap();
        // The row itself: `get` answers nothing for a revoked grant's tokens.
        let present = client
            .query_opt("SELECT 1 FROM tokens WHERE key = $1", &[&&key.0[..]])
            .await
            .unwrap()
            .is_some();
        assert_eq!(present, outcome == IssueOutcome::Issued);
        issued += usize::from(present);
    }
    assert_eq!(store.count().await.unwrap(), issued);
    let late = AccessToken::generate().key();
    let outcome = store
        .issue(
            NewToken {
                key: late,
                record: token(grant, "app", None, 1_000),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, IssueOutcome::GrantRevoked);
}

/// Rotations, token revocations, grant revocations and issues of one grant all at once (the
/// lock order is: token row, then grant lock): every intent answers, none fails with a
/// deadlock or serialization error, and afterwards nothing of the grant can be rotated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_intents_on_one_grant_never_deadlock() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    for _ in 0..5 {
        let grant = GrantId::generate();
        let (a, b) = (
            stored(&store, grant, 10_000).await,
            stored(&store, grant, 10_000).await,
        );
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (task_store, a, b) = (store.clone(), a.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                let store = task_store;
                match i % 4 {
                    0 => store.rotate(rotation(&a, 100, None)).await.map(drop)?,
                    1 => store.rotate(rotation(&b, 100, None)).await.map(drop)?,
                    2 => store.revoke_token(&b.key(), "app", 5_000).await.map(drop)?,
                    _ => {
                        let record = token(grant, "app", None, 1_000);
                        let key = AccessToken::generate().key();
                        store
                            .issue(NewToken { key, record }, None)
                            .await
                            .map(drop)?;
                    }
                }
                Ok::<_, crate::storage::StorageError>(())
            }));
            if i == 9 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    store.revoke_grant(grant, 5_000).await.map(drop)
                }));
            }
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert!(matches!(
            store.rotate(rotation(&a, 101, None)).await.unwrap(),
            RotateOutcome::Invalid
        ));
    }
}

/// The statement that locks the grants of rotations computes the grant's lock key in SQL;
/// issues and revocations compute it here. The same number, or rotation and revocation of
/// one grant would not take turns.
#[tokio::test]
async fn the_grant_lock_key_computed_by_postgresql_is_ours() {
    let Some(db) = db!() else { return };
    let client = db.stores.pool.get().await.unwrap();
    let sql = format!(
        "SELECT {}",
        crate::storage::postgres::lock::grant_key_sql("$1::bytea")
    );
    let mut grants = vec![
        GrantId([0; 16]),
        GrantId([0xff; 16]),
        GrantId([0x80, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]),
        GrantId([0x7f, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ];
    grants.extend((0..50).map(|_| GrantId::generate()));
    for grant in grants {
        let row = client.query_one(&sql, &[&&grant.0[..]]).await.unwrap();
        assert_eq!(
            row.get::<_, i32>(0),
            crate::storage::postgres::lock::grant_key(&grant),
            "{grant:?}"
        );
    }
}

/// The write of rotations marks presented tokens only inside the transaction that locked
/// them: run by itself (as after a failed `BEGIN`, or behind an early `COMMIT`), it writes
/// nothing and answers no live grant; inside a transaction that locked the token, it
/// writes.
#[tokio::test]
async fn the_rotation_write_marks_nothing_outside_the_locking_transaction() {
    use crate::storage::postgres::tokens::{LiveWrites, WRITE_LIVE};
    use deadpool_postgres::GenericClient as _;
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grant = GrantId::generate();
    let presented = stored(&store, grant, 10_000).await;
    let successor = AccessToken::generate().key();
    let record = token(grant, "app", None, 1_000);
    let key = presented.key();
    let writes = LiveWrites {
        tokens: vec![(&successor, &record)],
        marks: vec![(&key, 100, &grant)],
    };
    let mut client = db.stores.pool.get().await.unwrap();
    let stmt = client.prepare_cached(&WRITE_LIVE).await.unwrap();
    assert!(writes.run(&client, &stmt).await.unwrap().is_empty());
    assert!(store.get(&successor).await.unwrap().is_none());
    assert_eq!(store.get(&key).await.unwrap().unwrap().rotated_at_us, None);

    let tx = client.transaction().await.unwrap();
    tx.query_one(
        "SELECT 1 FROM tokens WHERE key = $1 FOR UPDATE",
        &[&&key.0[..]],
    )
    .await
    .unwrap();
    let stmt = tx.prepare_cached(&WRITE_LIVE).await.unwrap();
    assert_eq!(writes.run(&tx, &stmt).await.unwrap(), [grant.0.to_vec()]);
    tx.commit().await.unwrap();
    assert!(store.get(&successor).await.unwrap().is_some());
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().rotated_at_us,
        Some(100)
    );
}

/// The same for the rotation written with its read (`write_set_fast`): outside a
/// transaction (each statement its own, as after a failed `BEGIN`) the read's locks are
/// gone before the write, which then writes nothing, and the rotation is left to run
/// again; inside one, it rotates.
#[tokio::test]
async fn the_fast_rotation_writes_nothing_outside_the_locking_transaction() {
    use crate::storage::postgres::tokens::{write_set_fast, Fast};
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let presented = stored(&store, GrantId::generate(), 10_000).await;
    let r = rotation(&presented, 100, None);
    let (successor, _) = (r.successors)(r.rotated_at_us);
    let mut client = db.stores.pool.get().await.unwrap();
    let (outcomes, _) = write_set_fast(&client, &[&r], &[], std::future::ready(())).await;
    let outcomes = outcomes.unwrap();
    assert!(
        matches!(outcomes.rotated[..], [Fast::Again]),
        "{outcomes:?}"
    );
    assert!(store.get(&successor.key()).await.unwrap().is_none());
    assert_eq!(
        store
            .get(&presented.key())
            .await
            .unwrap()
            .unwrap()
            .rotated_at_us,
        None
    );

    let tx = client.transaction().await.unwrap();
    let (outcomes, _) = write_set_fast(&tx, &[&r], &[], std::future::ready(())).await;
    let outcomes = outcomes.unwrap();
    assert!(
        matches!(
            outcomes.rotated[..],
            [Fast::Done(RotateOutcome::Rotated(_))]
        ),
        "{outcomes:?}"
    );
    tx.commit().await.unwrap();
    assert!(store.get(&successor.key()).await.unwrap().is_some());
    assert_eq!(
        store
            .get(&presented.key())
            .await
            .unwrap()
            .unwrap()
            .rotated_at_us,
        Some(100_000_000)
    );
}

/// The set statements find tokens by their primary key in their generic plans (the plans
/// a batch runs: `batch.rs`, `GENERIC_PLANS`), also when planned on an empty table, as on
/// a fresh database: a plan made then is kept for the connection's life, and a scan of the
/// whole table in it costs more with every token issued (`FAST_ROTATE` as a plain join did
/// that, a third of the rotation rate after a few seconds).
#[tokio::test]
async fn the_set_statements_plans_never_scan_the_tokens_table() {
    use crate::storage::postgres::tokens::{FAST_ROTATE, READ_FOR_ROTATION, WRITE_LIVE};
    use deadpool_postgres::GenericClient as _;
    let Some(db) = db!() else { return };
    let mut client = db.stores.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    for (name, sql, params) in [
        ("read", &*READ_FOR_ROTATION, 2),
        ("fast", &*FAST_ROTATE, 8),
        ("live", &*WRITE_LIVE, 14),
    ] {
        tx.batch_execute(&format!("PREPARE {name} AS {sql}"))
            .await
            .unwrap();
        let nulls = vec!["NULL"; params].join(", ");
        let plan: Vec<String> = tx
            .query(&format!("EXPLAIN EXECUTE {name}({nulls})"), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("tokens_pkey"), "{name}:\n{plan}");
        assert!(!plan.contains("Seq Scan on tokens"), "{name}:\n{plan}");
    }
}

/// Rotations of many tokens of one grant, batched, racing the grant's revocation: each
/// either rotated (its successors stored, its token marked) or was refused having written
/// nothing; afterwards nothing of the grant rotates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_racing_a_revocation_rotate_wholly_or_not_at_all() {
    let Some(db) = db!() else { return };
    let store = db.stores.tokens();
    let grant = GrantId::generate();
    let mut presented = Vec::new();
    for _ in 0..16 {
        presented.push(stored(&store, grant, 10_000).await);
    }
    let tasks: Vec<_> = presented
        .iter()
        .map(|p| tokio::spawn(store.rotate(rotation(p, 100, None))))
        .collect();
    store.revoke_grant(grant, 20_000).await.unwrap();
    let client = db.stores.pool.get().await.unwrap();
    let present = |key: crate::domain::secrets::TokenKey| {
        let client = &client;
        async move {
            client
                .query_opt(
                    "SELECT rotated_at_us FROM tokens WHERE key = $1",
                    &[&&key.0[..]],
                )
                .await
                .unwrap()
                .map(|row| row.get::<_, Option<i64>>(0))
        }
    };
    for (task, p) in tasks.into_iter().zip(&presented) {
        match task.await.unwrap().unwrap() {
            RotateOutcome::Rotated(s) => {
                assert!(present(s.access.key()).await.is_some());
                assert!(present(s.refresh.key()).await.is_some());
                assert_eq!(present(p.key()).await, Some(Some(100_000_000)));
            }
            RotateOutcome::Invalid => {
                assert_eq!(present(p.key()).await, Some(None), "nothing written");
            }
            other => panic!("{other:?}"),
        }
    }
    for p in &presented {
        assert!(matches!(
            store.rotate(rotation(p, 101, None)).await.unwrap(),
            RotateOutcome::Invalid
        ));
    }
}
