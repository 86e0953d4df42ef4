//! The change feed (issue 14): every intent that can deactivate a credential or change a
//! principal records one change in its own transaction, and none of the hot path does;
//! numbers are consecutive in commit order, so a reader polling "after the last one I saw"
//! never skips one that commits late; a notification wakes a listener; old changes are
//! trimmed by the token sweep.

use std::time::{Duration, Instant};

use super::db;
use crate::{
    domain::{
        client::{ClientOrigin, User},
        secrets::{AccessToken, RefreshToken},
    },
    storage::{
        fixtures::{client, refresh_token, rotation, token},
        postgres::{changes, ChangeKind, PgStores, Wake},
        ClientStore, GrantId, NewToken, RotateOutcome, TokenStore,
    },
};

/// Every change recorded so far: (seq, kind, subject), in order.
async fn recorded(stores: &PgStores) -> Vec<(i64, Option<ChangeKind>, String)> {
    let listener = stores.listen().await.unwrap();
    listener
        .read_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c.kind, c.subject))
        .collect()
}

fn hex(grant: &GrantId) -> String {
    grant.0.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn every_revocation_and_principal_change_is_recorded_and_the_hot_path_is_not() {
    let Some(db) = db!() else { return };
    let tokens = db.stores.tokens();
    let clients = db.stores.clients();
    let listener = db.stores.listen().await.unwrap();
    assert_eq!(listener.head().await.unwrap(), 0);

    // The hot path writes no change: issue, rotate, register.
    let grant = GrantId::generate();
    let access = AccessToken::generate();
    let refresh = RefreshToken::generate();
    tokens
        .issue(
            NewToken {
                key: access.key(),
                record: token(grant, "app", Some("alice"), 10_000),
            },
            Some(NewToken {
                key: refresh.key(),
                record: refresh_token(grant, 10_000),
            }),
        )
        .await
        .unwrap();
    let rotated = tokens.rotate(rotation(&refresh, 100, None)).await.unwrap();
    assert!(matches!(rotated, RotateOutcome::Rotated(_)));
    clients
        .register_client(client("app", ClientOrigin::Dynamic), None)
        .await
        .unwrap();
    assert_eq!(
        listener.head().await.unwrap(),
        0,
        "{:?}",
        recorded(&db.stores).await
    );

    // Each of these records one change, in order.
    let expected_grant = hex(&grant);
    // 1: reuse detected in a rotation revokes the grant.
    let reused = tokens.rotate(rotation(&refresh, 200, None)).await.unwrap();
    assert!(matches!(reused, RotateOutcome::Reused { .. }));
    // 2: a grant revoked directly (a replayed code, administration).
    let other = GrantId::generate();
    tokens.revoke_grant(other, 5_000).await.unwrap();
    // 3: an access token revoked.
    let (g3, a3) = (GrantId::generate(), AccessToken::generate());
    tokens
        .issue(
            NewToken {
                key: a3.key(),
                record: token(g3, "app", None, 10_000),
            },
            None,
        )
        .await
        .unwrap();
    tokens.revoke_token(&a3.key(), "app", 5_000).await.unwrap();
    // 4: a refresh token revoked takes its grant (one change: the grant).
    let (g4, r4) = (GrantId::generate(), RefreshToken::generate());
    tokens
        .issue(
            NewToken {
                key: r4.key(),
                record: refresh_token(g4, 10_000),
            },
            None,
        )
        .await
        .unwrap();
    tokens.revoke_token(&r4.key(), "app", 5_000).await.unwrap();
    // Nothing for a token of another client or an unknown one.
    tokens.revoke_token(&a3.key(), "app", 5_000).await.unwrap();
    // 5..8: a client written and removed, a user written and removed.
    let mut used = client("app", ClientOrigin::Dynamic);
    used.used = true;
    clients.put_client(used).await.unwrap();
    clients.remove_client("app").await.unwrap();
    let user = User {
        username: "alice".into(),
        password_hash: "$argon2id$x".into(),
    };
    assert!(clients.insert_user(user).await.unwrap());
    clients.remove_user("alice").await.unwrap();
    // Nothing when nothing changed: an unknown client or user.
    clients.remove_client("app").await.unwrap();
    clients.remove_user("nobody").await.unwrap();

    let expected = vec![
        (1, Some(ChangeKind::Grant), expected_grant),
        (2, Some(ChangeKind::Grant), hex(&other)),
        (3, Some(ChangeKind::Token), String::new()),
        (4, Some(ChangeKind::Grant), hex(&g4)),
        (5, Some(ChangeKind::Client), "app".into()),
        (6, Some(ChangeKind::Client), "app".into()),
        (7, Some(ChangeKind::User), "alice".into()),
        (8, Some(ChangeKind::User), "alice".into()),
    ];
    assert_eq!(recorded(&db.stores).await, expected);
    assert_eq!(listener.head().await.unwrap(), 8);
    assert_eq!(listener.read_after(6, 100).await.unwrap().len(), 2);
}

/// Numbers commit in order: revocations from many connections at once, and a reader
/// polling "after the last number I saw" meanwhile always finds the next number first (a
/// later one never becomes visible before an earlier one), and sees every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_polling_after_its_last_number_never_skips_one() {
    let Some(db) = db!() else { return };
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let tokens = db.stores.tokens();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    tokens
                        .revoke_grant(GrantId::generate(), 5_000)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let listener = db.stores.listen().await.unwrap();
    let total = i64::try_from(WRITERS * EACH).unwrap();
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while last < total {
        assert!(Instant::now() < deadline, "stuck at {last}");
        for change in listener.read_after(last, 7).await.unwrap() {
            assert_eq!(change.seq, last + 1, "a number was skipped");
            last = change.seq;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(listener.head().await.unwrap(), total);
}

/// A committed change wakes a listener at once (NOTIFY), well before its poll interval;
/// a rolled-back intent (a revocation that fails) neither records nor notifies.
#[tokio::test]
async fn a_change_notifies_a_listener() {
    let Some(db) = db!() else { return };
    let mut listener = db.stores.listen().await.unwrap();
    assert_eq!(listener.wait(Duration::from_millis(10)).await, Wake::Timer);
    let tokens = db.stores.tokens();
    let started = Instant::now();
    tokens
        .revoke_grant(GrantId::generate(), 5_000)
        .await
        .unwrap();
    assert_eq!(listener.wait(Duration::from_secs(10)).await, Wake::Notified);
    assert!(started.elapsed() < Duration::from_secs(5));
    let changes = listener.read_after(0, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].delay_ms >= 0.0);
    assert!(!listener.is_closed());
}

/// The listener's connection carries its application name, and ends visibly when its
/// backend is terminated (the feed then reconnects).
#[tokio::test]
async fn a_terminated_listener_says_so() {
    let Some(db) = db!() else { return };
    let mut listener = db.stores.listen().await.unwrap();
    let admin = db.stores.pool.get().await.unwrap();
    let killed = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
            &[&changes::APPLICATION_NAME],
        )
        .await
        .unwrap();
    assert_eq!(killed.get::<_, i64>(0), 1);
    assert_eq!(listener.wait(Duration::from_secs(10)).await, Wake::Closed);
    assert!(listener.is_closed());
    assert!(listener.head().await.is_err());
}

/// Records `revocations` changes, makes those numbered `aged` look an hour old, runs the
/// token sweep, and answers the numbers left.
async fn left_after_sweep(stores: &PgStores, revocations: usize, aged: &str) -> Vec<i64> {
    let tokens = stores.tokens();
    for _ in 0..revocations {
        tokens
            .revoke_grant(GrantId::generate(), 5_000)
            .await
            .unwrap();
    }
    let admin = stores.pool.get().await.unwrap();
    admin
        .execute(
            &format!("UPDATE changes SET at = now() - interval '1 hour' WHERE seq {aged}"),
            &[],
        )
        .await
        .unwrap();
    tokens.sweep(0, 100).await.unwrap();
    recorded(stores).await.iter().map(|c| c.0).collect()
}

/// The token sweep trims changes older than `changes::KEEP`, and keeps the rest.
#[tokio::test]
async fn the_token_sweep_trims_old_changes() {
    let Some(db) = db!() else { return };
    assert_eq!(left_after_sweep(&db.stores, 3, "<= 2").await, [3]);
}

/// A change whose transaction started long ago but committed after a younger one (its
/// `at` older, its number larger) is not trimmed ahead of the younger one: the trim
/// removes a prefix of the numbers only, so a reader never meets an unnoticed hole.
#[tokio::test]
async fn the_trim_never_leaves_a_hole_in_the_numbers() {
    let Some(db) = db!() else { return };
    // 1 and 3 look old; 2 (between them) does not.
    assert_eq!(
        left_after_sweep(&db.stores, 4, "IN (1, 3)").await,
        [2, 3, 4],
        "only the prefix before the first young change"
    );
}
