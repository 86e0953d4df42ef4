//! Group commit of the hot intents (`batch.rs`), against a real PostgreSQL: intents that
//! arrive while a batch is in flight share the next transaction and see each other's
//! writes; one intent's failure is its own; a failed COMMIT answers no credential; a batch
//! that would wait for a lock is rolled back and its intents run alone rather than stall.
//!
//! One lane each (`PgStores::with_lanes(1)`), on a current-thread runtime, so the order in
//! which the spawned requests reach the queue is the order they were spawned in. A batch is
//! held open by making it wait for a connection of a pool the test has emptied.

use std::time::Duration;

use deadpool_postgres::GenericClient as _;

use super::db;
use crate::{
    domain::{
        scope::Scopes,
        secrets::{AccessToken, RefreshToken, TokenKey},
    },
    storage::{
        fixtures::{refresh_token, rotation, token},
        postgres::PgTokenStore,
        CodeRecord, CodeStore, GrantId, IssueOutcome, NewToken, Redemption, RotateOutcome,
        StorageError, TokenStore,
    },
};

/// Long enough for spawned requests to reach the queue (they need one poll each).
const SETTLE: Duration = Duration::from_millis(200);

fn new_token(grant: GrantId, client: &str) -> NewToken {
    NewToken {
        key: AccessToken::generate().key(),
        record: token(grant, client, None, 1_000),
    }
}

fn code(grant: GrantId) -> CodeRecord {
    CodeRecord {
        grant_id: grant,
        client_id: "app".into(),
        redirect_uri: "http://localhost/cb".into(),
        redirect_uri_explicit: true,
        code_challenge: "x".repeat(43),
        scopes: Scopes::parse("mcp:read").unwrap(),
        resource: "http://localhost:8000/mcp".into(),
        subject: "alice".into(),
        expires_at: 100,
    }
}

async fn stored_refresh(store: &impl TokenStore, grant: GrantId) -> RefreshToken {
    let token = RefreshToken::generate();
    let new = NewToken {
        key: token.key(),
        record: refresh_token(grant, 10_000),
    };
    assert_eq!(store.issue(new, None).await.unwrap(), IssueOutcome::Issued);
    token
}

async fn exists(store: &impl TokenStore, key: &TokenKey) -> bool {
    store.get(key).await.unwrap().is_some()
}

/// Connections of the pool checked out by a test, until released.
struct Held(Vec<deadpool_postgres::Object>);

impl Held {
    /// Gives the connections back: the batch waiting for one goes.
    fn release(self) {
        drop(self.0);
    }
}

/// Holds a batch open: checks out every connection of `pool`, then sends an issue through
/// `tokens` (one lane on that pool), whose batch waits for a connection; intents spawned
/// meanwhile queue for the next batch. Releasing the connections lets it go (within the
/// pool's wait timeout); the handle answers the waiting issue. (Not a lock: a batch gives
/// up a lock wait after `LOCK_TIMEOUT`, and its intents run alone.)
async fn hold_a_batch(
    pool: &deadpool_postgres::Pool,
    tokens: &PgTokenStore,
) -> (
    Held,
    tokio::task::JoinHandle<Result<IssueOutcome, StorageError>>,
) {
    let mut held = Vec::new();
    for _ in 0..pool.status().max_size {
        held.push(pool.get().await.unwrap());
    }
    let first = tokio::spawn(tokens.issue(new_token(GrantId::generate(), "app"), None));
    tokio::time::sleep(SETTLE).await;
    (Held(held), first)
}

/// Locks the row of token `key` in a transaction of `blocker`, as another transaction
/// rotating or revoking it would, until the transaction ends.
async fn lock_row<'a>(
    blocker: &'a mut deadpool_postgres::Object,
    key: &TokenKey,
) -> deadpool_postgres::Transaction<'a> {
    let hold = blocker.transaction().await.unwrap();
    hold.query_one(
        "SELECT 1 FROM tokens WHERE key = $1 FOR UPDATE",
        &[&&key.0[..]],
    )
    .await
    .unwrap();
    hold
}

/// Intents queued while a batch waits share the next transaction: a second rotation of one
/// refresh token in it repeats the first (within the window) or is reuse (past it), a
/// second redemption of one code is a replay, exactly as if they had come one after the
/// other.
#[tokio::test]
async fn intents_queued_during_a_batch_share_the_next_and_see_each_others_writes() {
    let Some(db) = db!() else { return };
    let setup = db.stores.tokens();
    let (g1, g2) = (GrantId::generate(), GrantId::generate());
    let x = stored_refresh(&setup, g1).await;
    let y = stored_refresh(&setup, g2).await;
    let code_key = AccessToken::generate().key();
    let code_grant = GrantId::generate();
    db.stores
        .codes()
        .insert(&code_key, code(code_grant))
        .await
        .unwrap();

    let stores = db.stores.with_lanes(1);
    let (tokens, codes) = (stores.tokens(), stores.codes());
    // The first batch: one issue, waiting for a grant lock held here.
    let (hold, first) = hold_a_batch(&db.stores.pool, &tokens).await;

    let mut again = rotation(&x, 101, None);
    again.rotated_at_us += 7;
    let queued = (
        tokio::spawn(tokens.rotate(rotation(&x, 100, None))),
        tokio::spawn(tokens.rotate(again)),
        tokio::spawn(tokens.rotate(rotation(&y, 100, None))),
        tokio::spawn(tokens.rotate(rotation(&y, 111, None))),
        tokio::spawn(codes.redeem(&code_key, "app", 50, 500)),
        tokio::spawn(codes.redeem(&code_key, "app", 51, 500)),
    );
    tokio::time::sleep(SETTLE).await;
    assert!(
        !first.is_finished(),
        "the first batch waits for a connection"
    );
    hold.release();
    assert_eq!(first.await.unwrap().unwrap(), IssueOutcome::Issued);

    let RotateOutcome::Rotated(rotated) = queued.0.await.unwrap().unwrap() else {
        panic!("the first rotation rotates");
    };
    let RotateOutcome::Repeated(repeated) = queued.1.await.unwrap().unwrap() else {
        panic!("the second, in the same transaction, repeats it");
    };
    assert_eq!(repeated.refresh.secret(), rotated.refresh.secret());
    assert_eq!(repeated.access.secret(), rotated.access.secret());
    let RotateOutcome::Rotated(_) = queued.2.await.unwrap().unwrap() else {
        panic!("y rotates");
    };
    let RotateOutcome::Reused { grant_id, .. } = queued.3.await.unwrap().unwrap() else {
        panic!("y again past the window, in the same transaction, is reuse");
    };
    assert_eq!(grant_id, g2);
    let Redemption::Redeemed(_) = queued.4.await.unwrap().unwrap() else {
        panic!("the first redemption redeems");
    };
    let replay = queued.5.await.unwrap().unwrap();
    assert!(
        matches!(replay, Redemption::Replayed(g) if g == code_grant),
        "{replay:?}"
    );
    // Two transactions: the waiting issue, then the six queued intents together.
    assert_eq!(stores.batch_counts(), (2, 7, 0, 0));
    // All of it committed: x's successors are there, y's grant is revoked.
    assert!(exists(&setup, &rotated.refresh.key()).await);
    assert!(setup
        .revoked_grants()
        .await
        .unwrap()
        .grants
        .iter()
        .any(|(g, _)| *g == g2));
}

/// A unique violation in one intent fails only that intent: the batch is rolled back and
/// its intents run alone, in arrival order, so the ones before and after it succeed.
#[tokio::test]
async fn one_intents_failure_rolls_back_only_itself() {
    let Some(db) = db!() else { return };
    let stores = db.stores.with_lanes(1);
    let tokens = stores.tokens();
    let (hold, first) = hold_a_batch(&db.stores.pool, &tokens).await;

    let grant = GrantId::generate();
    let (a, b) = (new_token(grant, "app"), new_token(grant, "app"));
    let mut duplicate = new_token(grant, "app");
    duplicate.key = a.key;
    let (ka, kb) = (a.key, b.key);
    let queued = (
        tokio::spawn(tokens.issue(a, None)),
        tokio::spawn(tokens.issue(duplicate, None)),
        tokio::spawn(tokens.issue(b, None)),
    );
    tokio::time::sleep(SETTLE).await;
    hold.release();
    first.await.unwrap().unwrap();
    assert_eq!(queued.0.await.unwrap().unwrap(), IssueOutcome::Issued);
    let err = queued.1.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, StorageError::Database(m) if m.starts_with("23505")),
        "{err}"
    );
    assert_eq!(queued.2.await.unwrap().unwrap(), IssueOutcome::Issued);
    assert!(exists(&tokens, &ka).await && exists(&tokens, &kb).await);
    assert_eq!(tokens.count().await.unwrap(), 3);
    assert_eq!(
        stores.batch_counts(),
        (1, 1, 3, 0),
        "the waiting issue's batch, then the three alone"
    );
}

/// A COMMIT that fails (here a deferred constraint trigger refuses one row at commit time)
/// answers an error to every intent of the batch, and none of their tokens exists: no
/// credential is handed out whose transaction did not commit. The lane goes on.
#[tokio::test]
async fn a_failed_commit_answers_no_credential() {
    let Some(db) = db!() else { return };
    {
        let admin = db.stores.pool.get().await.unwrap();
        admin
            .batch_execute(
                "CREATE FUNCTION doomed() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$; \
                 CREATE CONSTRAINT TRIGGER doomed AFTER INSERT ON tokens \
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW \
                 WHEN (NEW.client_id = 'doomed') EXECUTE FUNCTION doomed();",
            )
            .await
            .unwrap();
    }
    let stores = db.stores.with_lanes(1);
    let tokens = stores.tokens();
    let grant = GrantId::generate();
    let (fine, doomed) = (new_token(grant, "app"), new_token(grant, "doomed"));
    let (kf, kd) = (fine.key, doomed.key);
    // Spawned together: one batch (current-thread runtime, module doc).
    let (a, b) = (
        tokio::spawn(tokens.issue(fine, None)),
        tokio::spawn(tokens.issue(doomed, None)),
    );
    for answer in [a.await.unwrap(), b.await.unwrap()] {
        let err = answer.unwrap_err();
        assert!(err.to_string().contains("COMMIT failed"), "{err}");
    }
    assert!(!exists(&tokens, &kf).await && !exists(&tokens, &kd).await);
    assert_eq!(stores.batch_counts(), (0, 0, 0, 0), "nothing run again");
    let later = new_token(grant, "app");
    let kl = later.key;
    assert_eq!(
        tokens.issue(later, None).await.unwrap(),
        IssueOutcome::Issued
    );
    assert!(exists(&tokens, &kl).await);
}

/// A batch of several intents that would wait for a lock (here a refresh token row the
/// test holds, as another transaction would) does not wait while holding its other
/// intents' locks: it times out, is rolled back, and its intents run alone, so the quick
/// one is answered at once and the rotation waits for the row by itself. This is what
/// keeps batches from deadlocking with each other and with revocations.
#[tokio::test]
async fn an_intent_that_would_wait_inside_a_batch_runs_alone_after_it() {
    a_waiting_rotation_runs_alone(false).await;
}

/// A batch of one intent that would wait for a lock does not hold up its lane either: it
/// too gives up after `LOCK_TIMEOUT` and runs alone, and the intents after it are
/// answered meanwhile. (A lane that waited would stall every rotation and issue of the
/// instance behind one slow transaction elsewhere, for as long as it held its lock.)
#[tokio::test]
async fn a_lone_intent_waiting_for_a_lock_does_not_hold_up_its_lane() {
    a_waiting_rotation_runs_alone(true).await;
}

/// A rotation of a token whose row the test holds, with an issue in the same batch
/// (`lone` false) or in the next (`lone` true): the issue is answered while the rotation
/// waits, alone, for the row.
async fn a_waiting_rotation_runs_alone(lone: bool) {
    let Some(db) = db!() else { return };
    let setup = db.stores.tokens();
    let x = stored_refresh(&setup, GrantId::generate()).await;
    let mut blocker = db.stores.pool.get().await.unwrap();
    let hold = lock_row(&mut blocker, &x.key()).await;

    let stores = db.stores.with_lanes(1);
    let tokens = stores.tokens();
    let quick = new_token(GrantId::generate(), "app");
    let (rotate, issue) = if lone {
        let rotate = tokio::spawn(tokens.rotate(rotation(&x, 100, None)));
        tokio::time::sleep(SETTLE).await;
        (rotate, tokio::spawn(tokens.issue(quick, None)))
    } else {
        let issue = tokio::spawn(tokens.issue(quick, None));
        (tokio::spawn(tokens.rotate(rotation(&x, 100, None))), issue)
    };
    // Well within the statement timeout (5 s), which would end a lane's wait too.
    let issued = tokio::time::timeout(Duration::from_secs(2), issue)
        .await
        .expect("the issue is not held up by the waiting rotation");
    assert_eq!(issued.unwrap().unwrap(), IssueOutcome::Issued);
    tokio::time::sleep(SETTLE).await;
    assert!(
        !rotate.is_finished(),
        "the rotation waits for the row, alone"
    );
    hold.commit().await.unwrap();
    let RotateOutcome::Rotated(_) = rotate.await.unwrap().unwrap() else {
        panic!("the rotation rotates once the row is free");
    };
    let (counts, what) = match lone {
        true => ((1, 1, 1, 0), "the issue in a batch, the rotation alone"),
        false => ((0, 0, 2, 0), "both ran alone"),
    };
    assert_eq!(stores.batch_counts(), counts, "{what}");
}

/// Rotations alone on their tokens run as one set (one read, one write for all of them):
/// a batch of first rotations only, whose `COMMIT` goes out behind the write, and a batch
/// mixing first rotations with every rare step (repeat, reuse, a revoked grant, an unknown
/// token, a foreign client) and an issue. Each answers as it would alone, and all of it
/// committed. With a rotation asking for a narrower scope in each batch, the set is read,
/// then written (`tokens::write_set`).
#[tokio::test]
async fn rotations_alone_on_their_tokens_run_as_one_set() {
    rotations_as_one_set(true).await;
}

/// The same without a requested scope: the first rotations are written with their read
/// (`tokens::write_set_fast`), and their successors' records are the rules' to the byte;
/// the rotations with a rare step (repeat, reuse, a revoked grant) run alone after the
/// batch committed, and answer as they would have in it.
#[tokio::test]
async fn first_rotations_are_written_with_their_read_and_rare_steps_run_after_the_batch() {
    rotations_as_one_set(false).await;
}

async fn rotations_as_one_set(scoped: bool) {
    let Some(db) = db!() else { return };
    let setup = db.stores.tokens();
    let stores = db.stores.with_lanes(1);
    let tokens = stores.tokens();
    // Queues the intents behind a batch held open ([`hold_a_batch`]), then lets it go:
    // they share the next batch.
    macro_rules! one_batch {
        ($($intent:expr),+ $(,)?) => {{
            let (hold, first) = hold_a_batch(&db.stores.pool, &tokens).await;
            let queued = ($(tokio::spawn($intent),)+);
            tokio::time::sleep(SETTLE).await;
            hold.release();
            assert_eq!(first.await.unwrap().unwrap(), IssueOutcome::Issued);
            queued
        }};
    }

    let fresh: Vec<RefreshToken> = {
        let mut fresh = Vec::new();
        for _ in 0..2 {
            fresh.push(stored_refresh(&setup, GrantId::generate()).await);
        }
        // One whose grant has `offline_access`, which its access token must not carry.
        let token = RefreshToken::generate();
        let mut record = refresh_token(GrantId::generate(), 10_000);
        record.scopes = Scopes::parse("offline_access mcp:read mcp:write").unwrap();
        let new = NewToken {
            key: token.key(),
            record,
        };
        assert_eq!(setup.issue(new, None).await.unwrap(), IssueOutcome::Issued);
        fresh.push(token);
        fresh
    };
    let narrower = scoped.then_some("mcp:read");
    let queued = one_batch!(
        tokens.rotate(rotation(&fresh[0], 100, None)),
        tokens.rotate(rotation(&fresh[1], 100, narrower)),
        tokens.rotate(rotation(&fresh[2], 100, None)),
    );
    let mut rotated = Vec::new();
    for outcome in [queued.0, queued.1, queued.2] {
        let RotateOutcome::Rotated(successors) = outcome.await.unwrap().unwrap() else {
            panic!("a first rotation rotates");
        };
        rotated.push(successors);
    }
    let scope = if scoped {
        "mcp:read"
    } else {
        "mcp:read mcp:write"
    };
    assert_eq!(rotated[1].access_record.scopes.to_string(), scope);
    assert_eq!(
        rotated[2].access_record.scopes.to_string(),
        "mcp:read mcp:write"
    );
    assert_eq!(stores.batch_counts(), (2, 4, 0, 0), "blocker, then the set");
    for (presented, successors) in fresh.iter().zip(&rotated) {
        let old = setup.get(&presented.key()).await.unwrap().unwrap();
        assert_eq!(old.rotated_at_us, Some(100_000_000), "marked");
        // Stored as the rules made them, whichever statement wrote them.
        let access = setup.get(&successors.access.key()).await.unwrap().unwrap();
        assert_eq!(
            format!("{access:?}"),
            format!("{:?}", successors.access_record)
        );
        let refresh = setup.get(&successors.refresh.key()).await.unwrap().unwrap();
        let expected = crate::storage::TokenRecord {
            kind: crate::storage::TokenKind::Refresh,
            scopes: old.scopes.clone(),
            expires_at: 1_100,
            ..successors.access_record.clone()
        };
        assert_eq!(format!("{refresh:?}"), format!("{expected:?}"));
        assert_eq!(
            (
                access.issued_at,
                access.expires_at,
                access.subject.as_deref()
            ),
            (100, 200, Some("alice"))
        );
    }

    // Rare steps beside first rotations and an issue.
    let revoked_grant = GrantId::generate();
    let revoked = stored_refresh(&setup, revoked_grant).await;
    setup.revoke_grant(revoked_grant, 10_000).await.unwrap();
    let reused_grant = GrantId::generate();
    let reused = stored_refresh(&setup, reused_grant).await;
    let RotateOutcome::Rotated(_) = setup.rotate(rotation(&reused, 100, None)).await.unwrap()
    else {
        panic!("rotates");
    };
    let another = stored_refresh(&setup, GrantId::generate()).await;
    let mut foreign = rotation(&another, 100, None);
    foreign.client_id = "other".into();
    // Asking for a scope wider than granted, or (without scopes) presenting a token
    // expired at 50.
    let expired = RefreshToken::generate();
    let new = NewToken {
        key: expired.key(),
        record: refresh_token(GrantId::generate(), 50),
    };
    assert_eq!(setup.issue(new, None).await.unwrap(), IssueOutcome::Issued);
    let sixth = match scoped {
        true => rotation(&another, 100, Some("mcp:admin")),
        false => rotation(&expired, 100, None),
    };
    let issued = new_token(GrantId::generate(), "app");
    let issued_key = issued.key;
    let queued = one_batch!(
        tokens.rotate(rotation(&fresh[0], 101, None)),
        tokens.rotate(rotation(&reused, 111, None)),
        tokens.rotate(rotation(&revoked, 100, None)),
        tokens.rotate(rotation(&RefreshToken::generate(), 100, None)),
        tokens.rotate(foreign),
        tokens.rotate(sixth),
        tokens.rotate(rotation(&rotated[2].refresh, 101, None)),
        tokens.issue(issued, None),
    );
    let RotateOutcome::Repeated(again) = queued.0.await.unwrap().unwrap() else {
        panic!("within the window: repeated");
    };
    assert_eq!(again.refresh.secret(), rotated[0].refresh.secret());
    let RotateOutcome::Reused { grant_id, .. } = queued.1.await.unwrap().unwrap() else {
        panic!("past the window: reuse");
    };
    assert_eq!(grant_id, reused_grant);
    for invalid in [queued.2, queued.3, queued.4] {
        assert!(matches!(
            invalid.await.unwrap().unwrap(),
            RotateOutcome::Invalid
        ));
    }
    let sixth = queued.5.await.unwrap().unwrap();
    match scoped {
        true => assert!(matches!(sixth, RotateOutcome::InvalidScope), "{sixth:?}"),
        false => assert!(matches!(sixth, RotateOutcome::Invalid), "{sixth:?}"),
    }
    let RotateOutcome::Rotated(next) = queued.6.await.unwrap().unwrap() else {
        panic!("a successor rotates");
    };
    assert_eq!(queued.7.await.unwrap().unwrap(), IssueOutcome::Issued);
    // Read, then written: all nine in the batch. Written with the read: six, and the
    // repeat, the reuse and the revoked grant's token alone after it.
    let counts = if scoped { (4, 13, 0, 0) } else { (4, 10, 0, 3) };
    assert_eq!(stores.batch_counts(), counts, "blocker, then the set");
    assert!(exists(&setup, &next.refresh.key()).await);
    assert!(exists(&setup, &issued_key).await);
    assert!(setup
        .revoked_grants()
        .await
        .unwrap()
        .grants
        .iter()
        .any(|(g, _)| *g == reused_grant));
    let untouched = setup.get(&another.key()).await.unwrap().unwrap();
    assert_eq!(
        untouched.rotated_at_us, None,
        "refused rotations mark nothing"
    );
}
