//! Tests of the sled token store: its walks and sweeps, and each intent's outcomes run
//! through the trait, as the ledger runs them.

use super::*;
use crate::{
    domain::secrets::{AccessToken, RefreshToken},
    storage::fixtures::{refresh_token, rotation, run, token},
};

#[test]
fn grants_of_a_subject_or_client_with_their_latest_expiry() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
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
        store
            .put_now(&AccessToken::generate().key(), &record)
            .unwrap();
    }
    store
        .tokens
        .insert(&[0u8; 40][..], &b"not a record"[..])
        .unwrap();
    let of = |holder| {
        let mut grants = store.grants_of_now(&holder).unwrap();
        grants.sort_by_key(|(_, exp)| *exp);
        grants
    };
    assert_eq!(of(GrantHolder::Subject("alice".into())), vec![(a, 30)]);
    assert_eq!(
        of(GrantHolder::Client("app".into())),
        vec![(b, 20), (a, 30)]
    );
    assert_eq!(of(GrantHolder::Client("machine".into())), vec![(c, 40)]);
    assert!(of(GrantHolder::Subject("nobody".into())).is_empty());
}

#[test]
fn revoked_grants_are_swept_a_bounded_slice_at_a_time_and_undecodable_ones_kept() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    let grants: Vec<GrantId> = (0..5u8).map(|i| GrantId([i; 16])).collect();
    for g in &grants {
        store.revoke_grant_now(*g, 10).unwrap();
    }
    let garbled = GrantId([9; 16]);
    store.revoked.insert(garbled.0, &b"bad"[..]).unwrap();
    store.revoked.insert(&b"short key"[..], &b"x"[..]).unwrap();

    let loaded = store.revoked_grants_now().unwrap();
    assert_eq!(loaded.undecodable, 2);
    assert!(loaded.grants.contains(&(garbled, i64::MAX)), "fail closed");

    // Seven records, three per slice: the sweep takes three ticks to go round.
    let mut forgotten = Vec::new();
    let mut undecodable = 0;
    for _ in 0..3 {
        let swept = store.sweep_now(100, 3).unwrap();
        assert!(swept.forgotten_grants.len() <= 3);
        forgotten.extend(swept.forgotten_grants);
        undecodable += swept.undecodable_revocations;
        if let Some(g) = swept.undecodable_grants.first() {
            assert_eq!(*g, garbled);
        }
    }
    forgotten.sort_by_key(|g| g.0);
    assert_eq!(forgotten, grants);
    assert_eq!(undecodable, 2);
    assert_eq!(
        store.revoked.len(),
        2,
        "undecodable records are never dropped"
    );
}

#[test]
fn lifetime_records_only_grow_and_are_swept_once_no_token_can_outlive_them() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    assert!(store.lifetimes_now().unwrap().is_empty());
    store.record_lifetime_now(100, 50).unwrap();
    store.record_lifetime_now(100, 20).unwrap();
    store.record_lifetime_now(10, 60).unwrap();
    let mut seen = store.lifetimes_now().unwrap();
    seen.sort_unstable();
    assert_eq!(seen, [(10, 60), (100, 50)]);
    // (10, 60) can cover tokens until 70, (100, 50) until 150.
    store.sweep_now(70, 10).unwrap();
    assert_eq!(store.lifetimes_now().unwrap(), [(100, 50)]);
    store.sweep_now(149, 10).unwrap();
    assert_eq!(store.lifetimes_now().unwrap(), [(100, 50)]);
    store.sweep_now(150, 10).unwrap();
    assert!(store.lifetimes_now().unwrap().is_empty());
    // An unreadable record reads as a lifetime that never ends (fail closed).
    db.open_tree(LIFETIMES_TREE)
        .unwrap()
        .insert(7i64.to_be_bytes(), &b"x"[..])
        .unwrap();
    assert_eq!(store.lifetimes_now().unwrap(), [(i64::MAX, i64::MAX)]);
}

fn stored(store: &SledTokenStore, grant: GrantId, expires_at: i64) -> RefreshToken {
    let token = RefreshToken::generate();
    store
        .put_now(&token.key(), &refresh_token(grant, expires_at))
        .unwrap();
    token
}

#[test]
fn issue_stores_the_tokens_unless_the_grant_is_revoked() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
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
        run(store.issue(access, Some(refresh))),
        IssueOutcome::Issued
    );
    assert_eq!(run(store.get(&access_key)).unwrap().expires_at, 50);
    assert_eq!(
        run(store.get(&refresh_key)).unwrap().kind,
        TokenKind::Refresh
    );
    assert_eq!(run(store.count()), 2);

    run(store.revoke_grant(grant, 100));
    let late = new(token(grant, "app", None, 50));
    let late_key = late.key;
    assert_eq!(run(store.issue(late, None)), IssueOutcome::GrantRevoked);
    assert!(run(store.get(&late_key)).is_none(), "nothing stored");
    assert_eq!(run(store.count()), 2);
}

#[test]
fn rotate_rotates_once_repeats_within_the_window_and_revokes_on_reuse_after_it() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    let grant = GrantId::generate();
    let presented = stored(&store, grant, 10_000);

    // Rotated: successors stored with the presented token's claims, the access token
    // narrowed, the presented token marked.
    let RotateOutcome::Rotated(first) =
        run(store.rotate(rotation(&presented, 100, Some("mcp:read"))))
    else {
        panic!("first presentation rotates");
    };
    assert_eq!(first.access_record.scopes.to_string(), "mcp:read");
    assert_eq!(first.access_record.expires_at, 200);
    let successor = run(store.get(&first.refresh.key())).unwrap();
    assert_eq!(successor.scopes.to_string(), "mcp:read mcp:write");
    assert_eq!((successor.grant_id, successor.expires_at), (grant, 1_100));
    let old = run(store.get(&presented.key())).unwrap();
    assert_eq!(old.rotated_at_us, Some(100_000_000));
    assert_eq!(run(store.count()), 3);

    // Repeated within the window: the same pair (derived for the first rotation's
    // time), nothing written.
    let RotateOutcome::Repeated(again) = run(store.rotate(rotation(&presented, 110, None))) else {
        panic!("a replay within the window repeats");
    };
    assert_eq!(again.access.secret(), first.access.secret());
    assert_eq!(again.refresh.secret(), first.refresh.secret());
    assert_eq!(again.access_record.scopes.to_string(), "mcp:read");
    assert_eq!(run(store.count()), 3);

    // A wider scope is refused before anything else is decided.
    assert!(matches!(
        run(store.rotate(rotation(&presented, 110, Some("mcp:admin")))),
        RotateOutcome::InvalidScope
    ));

    // Reused after the window: the grant is revoked in the same intent.
    let RotateOutcome::Reused {
        grant_id,
        forget_at,
        ..
    } = run(store.rotate(rotation(&presented, 111, None)))
    else {
        panic!("a replay after the window is reuse");
    };
    assert_eq!((grant_id, forget_at), (grant, 111 + 5_000));
    let loaded = run(store.revoked_grants());
    assert_eq!(loaded.grants, [(grant, 5_111)]);
    // And then every token of the grant is refused, the successor included.
    assert!(matches!(
        run(store.rotate(rotation(&first.refresh, 112, None))),
        RotateOutcome::Invalid
    ));
}

#[test]
fn rotate_refuses_unknown_expired_foreign_and_access_tokens_without_writing() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    let grant = GrantId::generate();
    let invalid = |outcome| assert!(matches!(outcome, RotateOutcome::Invalid), "{outcome:?}");
    invalid(run(store.rotate(rotation(
        &RefreshToken::generate(),
        100,
        None,
    ))));
    let expired = stored(&store, grant, 100);
    invalid(run(store.rotate(rotation(&expired, 100, None))));
    let live = stored(&store, grant, 1_000);
    let mut foreign = rotation(&live, 100, None);
    foreign.client_id = "other".into();
    invalid(run(store.rotate(foreign)));
    let access = RefreshToken::generate();
    store
        .put_now(&access.key(), &token(grant, "app", Some("alice"), 1_000))
        .unwrap();
    invalid(run(store.rotate(rotation(&access, 100, None))));
    assert_eq!(run(store.count()), 3, "nothing written");
    assert!(run(store.get(&live.key())).unwrap().rotated_at_us.is_none());
    // Within the window, a successor gone since (revoked with its access token, or
    // swept) makes the repeat invalid rather than minting it again.
    let RotateOutcome::Rotated(first) = run(store.rotate(rotation(&live, 100, None))) else {
        panic!("rotates");
    };
    assert_eq!(
        run(store.revoke_token(&first.access.key(), "app", 0)),
        TokenRevocation::AccessRemoved
    );
    invalid(run(store.rotate(rotation(&live, 105, None))));
}

#[test]
fn revoking_a_token_is_per_client_and_a_refresh_token_takes_its_grant() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    let grant = GrantId::generate();
    let refresh = stored(&store, grant, 1_000);
    assert_eq!(
        run(store.revoke_token(&refresh.key(), "other", 50)),
        TokenRevocation::Ignored
    );
    assert_eq!(
        run(store.revoke_token(&RefreshToken::generate().key(), "app", 50)),
        TokenRevocation::Ignored
    );
    assert_eq!(
        run(store.revoke_token(&refresh.key(), "app", 50)),
        TokenRevocation::GrantRevoked(GrantRevocation {
            grant_id: grant,
            newly: true,
            forget_at: 50
        })
    );
    assert!(run(store.get(&refresh.key())).is_none());
    // A revocation only ever lasts longer.
    let again = run(store.revoke_grant(grant, 40));
    assert_eq!((again.newly, again.forget_at), (false, 50));
    let later = run(store.revoke_grant(grant, 70));
    assert_eq!((later.newly, later.forget_at), (false, 70));
    // An unreadable record is revoked for good.
    store.revoked.insert(grant.0, &b"bad"[..]).unwrap();
    assert_eq!(run(store.revoke_grant(grant, 80)).forget_at, i64::MAX);
}

#[tokio::test]
async fn export_pages_and_import_inserts_absent_tokens_only() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
    crate::storage::fixtures::export_and_import(&store).await;
}
