//! [`TokenStore`] on PostgreSQL: the tables `tokens`, `revoked_grants` and
//! `token_lifetimes`. Each intent is one statement or one transaction, as the trait says
//! (the SQL of each is in docs/storage.md, "PostgreSQL"): a refresh token is rotated once
//! across every process (`SELECT .. FOR UPDATE` of the presented token, then the outcome
//! decided in the same transaction), and no token is issued into or rotated in a grant once
//! its revocation has committed (a transaction-scoped advisory lock per grant orders issue,
//! rotation and revocation of one grant).

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::{types::ToSql, Row};

use super::{
    batch::Batcher,
    changes::{self, ChangeKind},
    corrupt, grant_id, lock, persisted, to_usize,
};
use crate::{
    domain::{
        scope::Scopes,
        secrets::{AccessToken, RefreshToken, TokenKey},
    },
    storage::{
        GrantHolder, GrantId, GrantRevocation, IssueOutcome, NewToken, Persist, RevokedGrants,
        RotateOutcome, Rotation, RotationStep, StorageError, StoreFuture, Successors, Swept,
        TokenKind, TokenRecord, TokenRevocation, TokenStore,
    },
};

const TOKENS: &str = "tokens";

/// The columns of a [`TokenRecord`], in the order [`token_record`] reads them.
pub(super) const COLUMNS: &str =
    "kind, grant_id, client_id, subject, scopes, resource, issued_at, expires_at, rotated_at_us";

/// [`TokenStore`] on PostgreSQL: a handle on the shared pool (cheap to clone).
#[derive(Clone, Debug)]
pub struct PgTokenStore {
    pool: Pool,
    /// Runs the hot intents (issue, rotate), batched with concurrent ones (`batch.rs`).
    batch: Batcher,
}

impl PgTokenStore {
    pub(super) fn new(pool: Pool, batch: Batcher) -> Self {
        Self { pool, batch }
    }
}

pub(super) fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Access => "access",
        TokenKind::Refresh => "refresh",
    }
}

pub(super) fn token_record(row: &Row) -> Result<TokenRecord, StorageError> {
    let kind = match row.try_get::<_, &str>(0)? {
        "access" => TokenKind::Access,
        "refresh" => TokenKind::Refresh,
        other => return Err(corrupt(TOKENS, format!("token kind {other:?}"))),
    };
    let scopes: &str = row.try_get(4)?;
    Ok(TokenRecord {
        kind,
        grant_id: grant_id(TOKENS, row.try_get(1)?)?,
        client_id: row.try_get(2)?,
        subject: row.try_get(3)?,
        scopes: Scopes::parse(scopes).map_err(|e| corrupt(TOKENS, e))?,
        resource: row.try_get(5)?,
        issued_at: row.try_get(6)?,
        expires_at: row.try_get(7)?,
        rotated_at_us: row.try_get(8)?,
    })
}

/// The one statement that writes issued and rotated tokens: inserts tokens and sets
/// rotated marks, each only if its grant is not revoked, and answers the grants that were
/// live (everything of theirs was written; nothing of the others). Arrays, one element per
/// row: $1 the grants to check; $2 to $11 the tokens' ten columns ([`TokenColumns::NAMES`]);
/// $12 to $14 the marks (presented key, time, grant).
///
/// One statement for any number of tokens, not a check followed by one write per token:
/// every statement costs a round of the protocol (a `Sync`, so a `send` by PostgreSQL and a
/// wake-up of ours) and PostgreSQL's per-statement work (executor start, the table's
/// constraints compiled), which were most of a rotation's cost (BENCHMARKS.md,
/// "PostgreSQL"). The revocations are read in this statement's snapshot, which is taken
/// after the caller holds the grants' locks (taken by an earlier statement): no revocation
/// of those grants can commit between that read and the commit of these rows.
///
/// Marks are set only inside the transaction that read and locked their tokens: that
/// transaction has an id (locking a row assigns one), a fresh one does not yet. So if the
/// statement ever ran outside it (after a `BEGIN` that failed, or behind a `COMMIT` sent
/// too early), it writes nothing and the rotations answer invalid, rather than rotate a
/// token no longer locked.
pub(super) static WRITE_LIVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let arrays: Vec<String> = TokenColumns::TYPES
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", i + 2))
        .collect();
    format!(
        "WITH live AS MATERIALIZED (SELECT DISTINCT u.g FROM unnest($1::bytea[]) AS u(g) \
         WHERE NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = u.g) \
         AND (cardinality($12::bytea[]) = 0 OR txid_current_if_assigned() IS NOT NULL)), \
         ins AS (INSERT INTO tokens ({names}) SELECT * FROM unnest({arrays}) AS v({names}) \
         WHERE v.grant_id IN (SELECT g FROM live)), \
         mark AS (UPDATE tokens t SET rotated_at_us = m.at \
         FROM unnest($12::bytea[], $13::bigint[], $14::bytea[]) AS m(key, at, grant_id) \
         WHERE t.key = m.key AND m.grant_id IN (SELECT g FROM live)) \
         SELECT g FROM live",
        names = TokenColumns::NAMES,
        arrays = arrays.join(", ")
    )
});

/// What [`WRITE_LIVE`] writes: tokens, and rotated marks (presented key, time), each with
/// its grant.
#[derive(Default)]
pub(super) struct LiveWrites<'a> {
    pub(super) tokens: Vec<(&'a TokenKey, &'a TokenRecord)>,
    pub(super) marks: Vec<(&'a TokenKey, i64, &'a GrantId)>,
}

impl LiveWrites<'_> {
    /// Writes everything whose grant is live with `stmt` ([`WRITE_LIVE`], prepared);
    /// answers the live grants (as stored: comparing bytes cannot fail once the answer
    /// arrived, which `write_set` relies on when its `COMMIT` is pipelined).
    pub(super) async fn run(
        &self,
        c: &impl GenericClient,
        stmt: &tokio_postgres::Statement,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut grants: Vec<&[u8]> = self
            .tokens
            .iter()
            .map(|(_, t)| &t.grant_id.0[..])
            .chain(self.marks.iter().map(|(_, _, g)| &g.0[..]))
            .collect();
        grants.sort_unstable();
        grants.dedup();
        let t = &self.tokens;
        let column =
            |f: fn(&TokenRecord) -> i64| -> Vec<i64> { t.iter().map(|(_, r)| f(r)).collect() };
        let keys: Vec<&[u8]> = t.iter().map(|(k, _)| &k.0[..]).collect();
        let kinds: Vec<&str> = t.iter().map(|(_, r)| kind_name(r.kind)).collect();
        let token_grants: Vec<&[u8]> = t.iter().map(|(_, r)| &r.grant_id.0[..]).collect();
        let clients: Vec<&str> = t.iter().map(|(_, r)| r.client_id.as_str()).collect();
        let subjects: Vec<Option<&str>> = t.iter().map(|(_, r)| r.subject.as_deref()).collect();
        let scopes: Vec<String> = t.iter().map(|(_, r)| r.scopes.to_string()).collect();
        let resources: Vec<&str> = t.iter().map(|(_, r)| r.resource.as_str()).collect();
        let issued = column(|r| r.issued_at);
        let expires = column(|r| r.expires_at);
        let rotated: Vec<Option<i64>> = t.iter().map(|(_, r)| r.rotated_at_us).collect();
        let marked: Vec<&[u8]> = self.marks.iter().map(|(k, _, _)| &k.0[..]).collect();
        let at: Vec<i64> = self.marks.iter().map(|(_, at, _)| *at).collect();
        let mark_grants: Vec<&[u8]> = self.marks.iter().map(|(_, _, g)| &g.0[..]).collect();
        let rows = c
            .query(
                stmt,
                &[
                    &grants,
                    &keys,
                    &kinds,
                    &token_grants,
                    &clients,
                    &subjects,
                    &scopes,
                    &resources,
                    &issued,
                    &expires,
                    &rotated,
                    &marked,
                    &at,
                    &mark_grants,
                ],
            )
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }
}

/// A token row's ten column values, borrowed from its key and record (the scopes written
/// out), as the parameters of a one-row statement.
struct TokenColumns<'a> {
    key: &'a [u8],
    kind: &'static str,
    grant: &'a [u8],
    record: &'a TokenRecord,
    scopes: String,
}

impl<'a> TokenColumns<'a> {
    /// The columns, in the order of [`TokenColumns::params`].
    const NAMES: &'static str = "key, kind, grant_id, client_id, subject, scopes, resource, \
                                 issued_at, expires_at, rotated_at_us";
    /// Their types, in the same order (an `unnest` does not take them from the table).
    const TYPES: [&'static str; 10] = [
        "bytea", "text", "bytea", "text", "text", "text", "text", "bigint", "bigint", "bigint",
    ];

    fn of(key: &'a TokenKey, record: &'a TokenRecord) -> Self {
        Self {
            key: &key.0[..],
            kind: kind_name(record.kind),
            grant: &record.grant_id.0[..],
            record,
            scopes: record.scopes.to_string(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        let t = self.record;
        [
            &self.key,
            &self.kind,
            &self.grant,
            &t.client_id,
            &t.subject,
            &self.scopes,
            &t.resource,
            &t.issued_at,
            &t.expires_at,
            &t.rotated_at_us,
        ]
    }
}

/// Runs `stmt`, an `INSERT INTO tokens` of the ten columns in [`TokenColumns::NAMES`]'s
/// order ($1 to $10), for one token: answers the rows inserted (0 for `ON CONFLICT DO
/// NOTHING`).
pub(super) async fn insert_with(
    c: &impl GenericClient,
    stmt: &tokio_postgres::Statement,
    key: &TokenKey,
    t: &TokenRecord,
) -> Result<u64, StorageError> {
    Ok(c.execute(stmt, &TokenColumns::of(key, t).params()).await?)
}

/// The trait's `get`: the token unless its grant is revoked, in one statement (the primary
/// key and the revocation's primary key), so validation on this instance is right at once
/// about revocations committed by any instance, whatever the ledger's in-memory set holds.
async fn get_live(
    c: &impl GenericClient,
    key: &TokenKey,
) -> Result<Option<TokenRecord>, StorageError> {
    static GET_LIVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM tokens t WHERE key = $1 AND NOT EXISTS \
             (SELECT 1 FROM revoked_grants r WHERE r.grant_id = t.grant_id)"
        )
    });
    let stmt = c.prepare_cached(&GET_LIVE).await?;
    c.query_opt(&stmt, &[&&key.0[..]])
        .await?
        .as_ref()
        .map(token_record)
        .transpose()
}

/// A token as stored, revoked grant or not (inside a rotation, which has checked the grant
/// under its lock already).
async fn get(c: &impl GenericClient, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError> {
    static GET: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM tokens WHERE key = $1"));
    let stmt = c.prepare_cached(&GET).await?;
    c.query_opt(&stmt, &[&&key.0[..]])
        .await?
        .as_ref()
        .map(token_record)
        .transpose()
}

/// Takes the grant's transaction lock: `shared` to issue into it, exclusive to revoke it or
/// rotate in it (see [`lock::GRANT`]).
async fn lock_grant(
    c: &impl GenericClient,
    grant: &GrantId,
    shared: bool,
) -> Result<(), StorageError> {
    let sql = if shared {
        "SELECT pg_advisory_xact_lock_shared($1, $2)"
    } else {
        "SELECT pg_advisory_xact_lock($1, $2)"
    };
    let stmt = c.prepare_cached(sql).await?;
    c.execute(&stmt, &[&lock::GRANT, &lock::grant_key(grant)])
        .await?;
    Ok(())
}

async fn is_revoked(c: &impl GenericClient, grant: &GrantId) -> Result<bool, StorageError> {
    let stmt = c
        .prepare_cached("SELECT 1 FROM revoked_grants WHERE grant_id = $1")
        .await?;
    Ok(c.query_opt(&stmt, &[&&grant.0[..]]).await?.is_some())
}

/// Revokes `grant` until at least `forget_at`, inside the caller's transaction: the
/// grant's lock, then one upsert that only raises the time (`GREATEST`), then the change
/// published to the other instances (last: see [`changes::publish`]; the counter comes
/// after the token row and the grant lock in the one lock order).
async fn revoke_grant_in(
    c: &impl GenericClient,
    grant: GrantId,
    forget_at: i64,
) -> Result<GrantRevocation, StorageError> {
    lock_grant(c, &grant, false).await?;
    let stmt = c
        .prepare_cached(
            "WITH before AS (SELECT 1 FROM revoked_grants WHERE grant_id = $1) \
             INSERT INTO revoked_grants AS r (grant_id, forget_at) VALUES ($1, $2) \
             ON CONFLICT (grant_id) DO UPDATE SET forget_at = GREATEST(r.forget_at, EXCLUDED.forget_at) \
             RETURNING r.forget_at, NOT EXISTS (SELECT 1 FROM before)",
        )
        .await?;
    let row = c.query_one(&stmt, &[&&grant.0[..], &forget_at]).await?;
    changes::publish(c, ChangeKind::Grant, &changes::grant_subject(&grant)).await?;
    Ok(GrantRevocation {
        grant_id: grant,
        forget_at: row.try_get(0)?,
        newly: row.try_get(1)?,
    })
}

/// Runs two statements of one intent *pipelined*: both are sent before either answer is
/// read (tokio-postgres sends what it is given concurrently on one connection), and the
/// server still runs them in the order given, so the outcome is that of running them one
/// after the other, with one round trip instead of two. For statements whose order
/// matters but whose sending does not depend on the earlier one's answer (a lock, then the
/// read it guards; inserts). `try_join` polls the first before the second every time, so
/// the first's statement is always sent first, also when a statement is still being
/// prepared on a new connection. If the first fails, the second fails too (the
/// transaction is aborted), and the intent fails as it would have.
async fn pipelined<A, B>(
    first: impl std::future::Future<Output = Result<A, StorageError>>,
    second: impl std::future::Future<Output = Result<B, StorageError>>,
) -> Result<(A, B), StorageError> {
    futures_util::future::try_join(first, second).await
}

/// Issues `access` (and `refresh`) into their grant unless it is revoked, inside the
/// caller's transaction (its own, or a batch's: `batch.rs`). Whatever it answers, its
/// writes are to be committed: the outcome holds only once they are. See [`write_set`].
pub(super) async fn issue_in(
    c: &impl GenericClient,
    access: &NewToken,
    refresh: Option<&NewToken>,
) -> Result<IssueOutcome, StorageError> {
    let (issued, _) = write_set(c, &[], &[(access, refresh)], std::future::ready(())).await;
    issued?
        .issued
        .pop()
        .ok_or_else(|| StorageError::Database("an issue without an outcome".into()))
}

/// Takes the grant locks of issues, shared ($2: the lock keys, sorted): issues into one
/// grant run side by side; a revocation (or rotation) waits for them and covers their
/// tokens, or they wait for it and see it.
const LOCK_SHARED: &str =
    "SELECT pg_advisory_xact_lock_shared($1, k) FROM unnest($2::int4[]) AS u(k)";

/// Reads the presented tokens of rotations for update and takes their grants' exclusive
/// locks, in one statement: the rows first, in key order (the `MATERIALIZED` query locks
/// them before the outer one calls the lock function on them), then the grants', in grant
/// order: per intent, the one lock order of every intent (module doc). The revocations are
/// not read here: this statement's snapshot may predate a revocation that commits while it
/// waits for a grant's lock. The key is the last column (`token_record` reads the first).
pub(super) static READ_FOR_ROTATION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH t AS MATERIALIZED (SELECT l.* FROM \
         (SELECT u.key FROM unnest($1::bytea[]) AS u(key) ORDER BY u.key) AS k, \
         LATERAL (SELECT {COLUMNS}, key FROM tokens WHERE tokens.key = k.key FOR UPDATE) AS l) \
         SELECT t.*, pg_advisory_xact_lock($2, {}) FROM t ORDER BY t.grant_id",
        lock::grant_key_sql("t.grant_id")
    )
});

/// The key in column `i` of `row`.
pub(super) fn key_at(row: &Row, i: usize) -> Result<TokenKey, StorageError> {
    let key: &[u8] = row.try_get(i)?;
    <[u8; 40]>::try_from(key)
        .map(TokenKey)
        .map_err(|_| corrupt(TOKENS, "a key of the wrong length"))
}

/// Rotates the presented refresh token (the trait's `rotate`), inside the caller's
/// transaction (its own, or a batch's: `batch.rs`). See [`write_set`].
pub(super) async fn rotate_in(
    tx: &impl GenericClient,
    r: &Rotation,
) -> Result<RotateOutcome, StorageError> {
    let (rotated, _) = write_set(tx, &[r], &[], std::future::ready(())).await;
    rotated?
        .rotated
        .pop()
        .ok_or_else(|| StorageError::Database("a rotation without an outcome".into()))
}

/// An issue of [`write_set`]: an access token, perhaps a refresh token, of one grant.
pub(super) type Issue<'a> = (&'a NewToken, Option<&'a NewToken>);

/// The grant lock keys of `issues`, sorted and each once ([`LOCK_SHARED`]'s `$2`).
fn issue_lock_keys(issues: &[Issue<'_>]) -> Vec<i32> {
    let mut keys: Vec<i32> = issues
        .iter()
        .map(|(access, _)| lock::grant_key(&access.record.grant_id))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The tokens of `issues`, for [`WRITE_LIVE`].
fn issue_writes<'a>(issues: &[Issue<'a>]) -> LiveWrites<'a> {
    let mut writes = LiveWrites::default();
    for (access, refresh) in issues {
        for t in std::iter::once(*access).chain(*refresh) {
            writes.tokens.push((&t.key, &t.record));
        }
    }
    writes
}

/// Each issue's outcome, given the grants [`WRITE_LIVE`] found live (and wrote).
fn issue_outcomes(issues: &[Issue<'_>], live: &[Vec<u8>]) -> Vec<IssueOutcome> {
    issues
        .iter()
        .map(
            |(access, _)| match live.iter().any(|g| g[..] == access.record.grant_id.0[..]) {
                true => IssueOutcome::Issued,
                false => IssueOutcome::GrantRevoked,
            },
        )
        .collect()
}

/// What [`write_set`] answers: the outcomes of its rotations and of its issues, each in
/// the order given.
#[derive(Debug, Default)]
pub(super) struct SetOutcomes {
    pub(super) rotated: Vec<RotateOutcome>,
    pub(super) issued: Vec<IssueOutcome>,
}

/// Rotates the presented refresh tokens of `rotations` (each its own token: the caller
/// never passes one token twice) and issues `issues`, inside the caller's transaction, and
/// answers their outcomes in the order given. Whatever it answers, its writes are to be
/// committed: a reuse's revocation as much as a rotation's successors. Outcomes that wrote
/// nothing (invalid, repeated, grant revoked) commit nothing but the locks.
///
/// At most three statements for any number of intents: the read of the presented tokens,
/// locking them and their grants ([`READ_FOR_ROTATION`]), with the issues' grant locks
/// ([`LOCK_SHARED`]) pipelined beside it; then, once the domain decided each rotation's
/// step, one write of every issued token, every first rotation's successors and the
/// presented tokens' marks, for the grants not revoked ([`WRITE_LIVE`]). Without rotations
/// there is nothing to decide: the lock and the write go out together. The rare steps of a
/// rotation (a reuse, a repeat within the grace window, a narrower scope than allowed) read
/// and write per rotation, side by side with the write.
///
/// `then` (a batch's `COMMIT`) is pipelined right behind the write when that is the last
/// statement (no rare step): a round trip fewer. Its result is then answered beside the
/// outcomes; otherwise it is not run (`None`), and the caller ends the transaction itself.
/// Once the write was sent, a failure can only be PostgreSQL's (which aborts the
/// transaction: the `COMMIT` behind it rolls back) or the connection's (the `COMMIT` fails
/// too): nothing is decoded from its answer that could fail on our side. Every statement
/// is prepared before any is sent, so the order they are polled in is the order they run.
pub(super) async fn write_set<T>(
    tx: &impl GenericClient,
    rotations: &[&Rotation],
    issues: &[Issue<'_>],
    then: impl std::future::Future<Output = T>,
) -> (Result<SetOutcomes, StorageError>, Option<T>) {
    let prepared = async {
        let read = match rotations.is_empty() {
            true => None,
            false => Some(tx.prepare_cached(&READ_FOR_ROTATION).await?),
        };
        let lock = match issues.is_empty() {
            true => None,
            false => Some(tx.prepare_cached(LOCK_SHARED).await?),
        };
        Ok::<_, StorageError>((read, lock, tx.prepare_cached(&WRITE_LIVE).await?))
    };
    let (read, lock, write) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => return (Err(e), None),
    };
    let keys = issue_lock_keys(issues);
    let locked = async {
        if let Some(stmt) = &lock {
            tx.execute(stmt, &[&lock::GRANT, &keys]).await?;
        }
        Ok::<_, StorageError>(())
    };
    let read = async {
        match &read {
            Some(stmt) => read_steps(tx, stmt, rotations).await,
            None => Ok((Vec::new(), Vec::new())),
        }
    };
    // Without rotations nothing is decided between the lock and the write: both are sent
    // at once below, the lock first. With them, the lock goes out beside the read.
    let (steps, rare, locked) = if rotations.is_empty() {
        (Vec::new(), Vec::new(), Some(locked))
    } else {
        match futures_util::future::try_join(read, locked).await {
            Ok(((steps, rare), ())) => (steps, rare, None),
            Err(e) => return (Err(e), None),
        }
    };
    let mut writes = issue_writes(issues);
    for (r, step) in rotations.iter().zip(&steps) {
        if let Step::First(first) = step {
            writes
                .tokens
                .push((&first.access.key, &first.access.record));
            writes
                .tokens
                .push((&first.refresh.key, &first.refresh.record));
            writes
                .marks
                .push((&r.presented, r.rotated_at_us, &first.grant));
        }
    }
    let has_write = !writes.tokens.is_empty();
    // The lock (if still to send) and the write, in that order (each polled once sends it).
    let written = async {
        let lock = async {
            match locked {
                Some(locked) => locked.await,
                None => Ok(()),
            }
        };
        let write = async {
            match has_write {
                true => writes.run(tx, &write).await,
                false => Ok(Vec::new()),
            }
        };
        let (locked, live) = futures_util::future::join(lock, write).await;
        locked.and(live)
    };
    let rare: Vec<_> = rare
        .into_iter()
        .map(|(r, old, step)| rare_step(tx, r, old, step))
        .collect();
    let (written, rare, then) = if rare.is_empty() && has_write {
        let (written, then) = futures_util::future::join(written, then).await;
        (written, Ok(Vec::new()), Some(then))
    } else {
        let (written, rare) =
            futures_util::future::join(written, futures_util::future::try_join_all(rare)).await;
        (written, rare, None)
    };
    let outcomes = written.and_then(|live| {
        let is_live = |grant: &GrantId| live.iter().any(|g| g[..] == grant.0[..]);
        let mut rare = rare?.into_iter();
        let rotated = steps
            .into_iter()
            .map(|step| match step {
                Step::Decided(outcome) => Ok(outcome),
                Step::First(first) if is_live(&first.grant) => {
                    let (access, refresh) = first.tokens;
                    Ok(RotateOutcome::Rotated(Successors {
                        access,
                        refresh,
                        access_record: first.access.record,
                    }))
                }
                Step::First(_) => Ok(RotateOutcome::Invalid),
                Step::Rare => rare
                    .next()
                    .ok_or_else(|| StorageError::Database("a rotation lost its outcome".into())),
            })
            .collect::<Result<_, _>>()?;
        let issued = issue_outcomes(issues, &live);
        Ok(SetOutcomes { rotated, issued })
    });
    (outcomes, then)
}

/// Writes the first rotations of presented tokens without waiting for their read: for each
/// element of the arrays (one per rotation, none asking for a narrower scope), the
/// successors and the presented token's mark, if the presented token is, as this
/// statement reads it, a refresh token of that client, unexpired, never rotated, of a
/// grant not revoked. Those are exactly the tokens whose step is
/// [`RotationStep::Rotate`] ([`Rotation::accepts`], then [`Rotation::step`] without a
/// scope, then the grant live): what the domain would decide from the read, decided here
/// by the same rules, so that the write goes out with the read and the `COMMIT` behind
/// both, one round trip for the batch instead of two. The successors' records are those
/// of [`Rotation::step`]: the presented token's grant, client, subject and resource; the
/// access token without `offline_access` (`Scopes::parse` of what is stored drops empty
/// and repeated names, so the two spell the same set), the refresh token with the
/// presented token's scope; issued now, with the rotation's expiries. Answers the
/// presented keys it rotated.
///
/// Arrays: $1 presented keys, $2 clients, $3 now, $4 the rotation times (µs), $5 and $6
/// the successors' keys (access, refresh), $7 and $8 their expiries. Runs after
/// [`READ_FOR_ROTATION`] in the same transaction, which holds the presented tokens' rows
/// and their grants' locks: this statement's snapshot, taken after, sees every revocation
/// that committed before the locks were taken, and none can commit until this
/// transaction has. The same guard as [`WRITE_LIVE`]'s: outside the transaction that
/// locked the tokens, it writes nothing.
///
/// Each presented token is found by its key in a `LATERAL` subquery that is not flattened
/// (`OFFSET 0`), so always by the primary key: as a plain join, the generic plan made
/// while the table was small scanned the whole table for every batch (a fresh database
/// rotated at a third of the rate after a few seconds).
pub(super) static FAST_ROTATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH m AS MATERIALIZED (SELECT t.key, t.grant_id, t.client_id, t.subject, \
         t.scopes, t.resource, u.now, u.at, u.akey, u.rkey, u.aexp, u.rexp \
         FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[], \
         $6::bytea[], $7::bigint[], $8::bigint[]) AS u(key, client_id, now, at, akey, rkey, \
         aexp, rexp), \
         LATERAL (SELECT * FROM tokens WHERE tokens.key = u.key OFFSET 0) AS t \
         WHERE t.kind = '{refresh}' AND t.client_id = u.client_id AND t.expires_at > u.now \
         AND t.rotated_at_us IS NULL \
         AND NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = t.grant_id) \
         AND txid_current_if_assigned() IS NOT NULL), \
         ins AS (INSERT INTO tokens ({names}) \
         SELECT akey, '{access}', grant_id, client_id, subject, \
         array_to_string(array_remove(string_to_array(scopes, ' '), '{offline}'), ' '), \
         resource, now, aexp, NULL::bigint FROM m \
         UNION ALL \
         SELECT rkey, '{refresh}', grant_id, client_id, subject, scopes, resource, now, rexp, \
         NULL::bigint FROM m), \
         mark AS (UPDATE tokens t SET rotated_at_us = m.at FROM m WHERE t.key = m.key) \
         SELECT key FROM m",
        names = TokenColumns::NAMES,
        refresh = kind_name(TokenKind::Refresh),
        access = kind_name(TokenKind::Access),
        offline = crate::domain::scope::OFFLINE_ACCESS,
    )
});

/// What [`write_set_fast`] answers for a rotation.
#[derive(Debug)]
pub(super) enum Fast {
    /// Its outcome, to hold until the commit.
    Done(RotateOutcome),
    /// Nothing was written for it (a rare step, a revoked grant, a row that could not be
    /// read): run it again, alone, after the commit, as if it had come a moment later.
    Again,
    /// Written, yet the rules say otherwise: cannot happen (the statement's conditions are
    /// the rules'); answered as an error, never as a credential.
    Failed(StorageError),
}

/// What [`write_set_fast`] answers: per rotation and per issue, in the order given.
#[derive(Debug, Default)]
pub(super) struct FastOutcomes {
    pub(super) rotated: Vec<Fast>,
    pub(super) issued: Vec<IssueOutcome>,
}

/// [`write_set`] in one round trip, for a batch whose `commit` goes right behind: the read
/// of the presented tokens (locking them and their grants), the issues' grant locks, the
/// first rotations ([`FAST_ROTATE`]), the issues' write ([`WRITE_LIVE`]) and `commit` all
/// go out at once. The successors of a first rotation are known before its token is read
/// (they are derived from the presented token and the rotation's time), and whether it is
/// a first rotation is decided by the statement itself; the read's answer then says what
/// to answer. A rotation the statement did not write is answered from the read when
/// nothing was to be written (unknown, another client's, expired: invalid), else run
/// again alone after the commit ([`Fast::Again`]): the rare steps (repeat, reuse) and a
/// revoked grant, which the next transaction decides as the slower path would have.
/// Every rotation here is without a requested scope (the caller's to check).
///
/// As with [`write_set`], a failure of any statement is PostgreSQL's (it aborts the
/// transaction, and `commit` then rolls back) or the connection's: then the whole is an
/// error and nothing was committed. What is decoded from the answers on our side fails
/// only the rotation it belongs to, since by then the writes may have committed; the
/// columns read for the whole batch (the keys written, the live grants: bytes) cannot fail
/// to decode once the answer arrived.
pub(super) async fn write_set_fast<T>(
    tx: &impl GenericClient,
    rotations: &[&Rotation],
    issues: &[Issue<'_>],
    commit: impl std::future::Future<Output = T>,
) -> (Result<FastOutcomes, StorageError>, Option<T>) {
    let prepared = async {
        let (lock, write) = match issues.is_empty() {
            true => (None, None),
            false => (
                Some(tx.prepare_cached(LOCK_SHARED).await?),
                Some(tx.prepare_cached(&WRITE_LIVE).await?),
            ),
        };
        let read = tx.prepare_cached(&READ_FOR_ROTATION).await?;
        Ok::<_, StorageError>((read, lock, tx.prepare_cached(&FAST_ROTATE).await?, write))
    };
    let (read, lock, fast, write) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => return (Err(e), None),
    };
    let keys = issue_lock_keys(issues);
    let writes = issue_writes(issues);
    // Each first rotation's pair, derived once: its keys go into the write, and the pair
    // itself into the answer (`fast_outcome`).
    let pairs: Vec<(AccessToken, RefreshToken)> = rotations
        .iter()
        .map(|r| (r.successors)(r.rotated_at_us))
        .collect();
    let successors: Vec<(TokenKey, TokenKey)> =
        pairs.iter().map(|(a, f)| (a.key(), f.key())).collect();
    let presented: Vec<&[u8]> = rotations.iter().map(|r| &r.presented.0[..]).collect();
    let clients: Vec<&str> = rotations.iter().map(|r| r.client_id.as_str()).collect();
    let column = |f: fn(&Rotation) -> i64| -> Vec<i64> { rotations.iter().map(|r| f(r)).collect() };
    let (now, at) = (column(|r| r.now), column(|r| r.rotated_at_us));
    let (access_expiry, refresh_expiry) = (
        column(|r| r.access_expires_at),
        column(|r| r.refresh_expires_at),
    );
    let access_keys: Vec<&[u8]> = successors.iter().map(|(a, _)| &a.0[..]).collect();
    let refresh_keys: Vec<&[u8]> = successors.iter().map(|(_, f)| &f.0[..]).collect();
    // Each future sends its statement when first polled, and `join5` polls them in this
    // order: the server runs them so.
    let read = async { tx.query(&read, &[&presented, &lock::GRANT]).await };
    let locked = async {
        if let Some(stmt) = &lock {
            tx.execute(stmt, &[&lock::GRANT, &keys]).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    let rotated = async {
        let params: [&(dyn ToSql + Sync); 8] = [
            &presented,
            &clients,
            &now,
            &at,
            &access_keys,
            &refresh_keys,
            &access_expiry,
            &refresh_expiry,
        ];
        tx.query(&fast, &params).await
    };
    let issued = async {
        match &write {
            Some(stmt) => writes.run(tx, stmt).await,
            None => Ok(Vec::new()),
        }
    };
    let (read, locked, rotated, issued, committed) =
        futures_util::future::join5(read, locked, rotated, issued, commit).await;
    let outcomes = (|| {
        let (rows, (), rotated, live) = (read?, locked?, rotated?, issued?);
        let written: Vec<&[u8]> = rotated
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let rotated = rotations
            .iter()
            .zip(pairs)
            .map(|(r, pair)| fast_outcome(r, pair, &rows, written.contains(&&r.presented.0[..])))
            .collect();
        let issued = issue_outcomes(issues, &live);
        Ok(FastOutcomes { rotated, issued })
    })();
    (outcomes, Some(committed))
}

/// The answer to `r` from the read's `rows` and whether [`FAST_ROTATE`] rotated its token
/// (`pair`: its first rotation's successors, derived already).
fn fast_outcome(
    r: &Rotation,
    pair: (AccessToken, RefreshToken),
    rows: &[Row],
    written: bool,
) -> Fast {
    let old = rows
        .iter()
        .find(|row| key_at(row, 9).is_ok_and(|k| k == r.presented))
        .map(token_record)
        .transpose();
    let step = match old {
        Ok(Some(old)) if r.accepts(&old) => r.step_with(&old, |at| match at == r.rotated_at_us {
            true => pair,
            false => (r.successors)(at),
        }),
        // Unknown, not this client's refresh token, or expired: nothing to write.
        Ok(_) if !written => return Fast::Done(RotateOutcome::Invalid),
        // Unreadable: the slower path reads it again (and fails by itself).
        Err(_) if !written => return Fast::Again,
        Ok(_) | Err(_) => return Fast::Failed(diverged()),
    };
    match (step, written) {
        (
            RotationStep::Rotate {
                access,
                refresh,
                access_record,
                ..
            },
            true,
        ) => Fast::Done(RotateOutcome::Rotated(Successors {
            access,
            refresh,
            access_record,
        })),
        (_, false) => Fast::Again,
        (_, true) => Fast::Failed(diverged()),
    }
}

fn diverged() -> StorageError {
    StorageError::Database("a fast rotation wrote a token the rules would not rotate".into())
}

/// A rotation's step once its token was read.
enum Step {
    /// Answered already: the token is unknown, not this client's refresh token, or expired.
    Decided(RotateOutcome),
    /// A first rotation, written by the shared statement.
    First(Box<FirstRotation>),
    /// One of the rare steps, run by itself ([`rare_step`]).
    Rare,
}

/// A rare step to run: the rotation, its token as read, the step.
type RareStep<'a> = (&'a Rotation, TokenRecord, RotationStep);

/// Reads the presented tokens of `rotations` ([`READ_FOR_ROTATION`]) and decides each
/// one's step, in order; the rare steps to run beside.
async fn read_steps<'a>(
    tx: &impl GenericClient,
    stmt: &tokio_postgres::Statement,
    rotations: &[&'a Rotation],
) -> Result<(Vec<Step>, Vec<RareStep<'a>>), StorageError> {
    // The row locks make concurrent rotations of one token take turns: the second reads
    // the token as the first left it (rotated) and answers within the grace rule.
    let keys: Vec<&[u8]> = rotations.iter().map(|r| &r.presented.0[..]).collect();
    let rows = tx.query(stmt, &[&keys, &lock::GRANT]).await?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(key_at(row, 9)?, token_record(row)?);
    }
    let mut steps = Vec::with_capacity(rotations.len());
    let mut rare = Vec::new();
    for r in rotations {
        let Some(old) = found.remove(&r.presented).filter(|old| r.accepts(old)) else {
            steps.push(Step::Decided(RotateOutcome::Invalid));
            continue;
        };
        steps.push(match r.step(&old) {
            RotationStep::Rotate {
                access,
                refresh,
                access_record,
                refresh_record,
            } => Step::First(Box::new(FirstRotation {
                grant: old.grant_id,
                access: NewToken {
                    key: access.key(),
                    record: access_record,
                },
                refresh: NewToken {
                    key: refresh.key(),
                    record: refresh_record,
                },
                tokens: (access, refresh),
            })),
            step => {
                rare.push((*r, old, step));
                Step::Rare
            }
        });
    }
    Ok((steps, rare))
}

/// A first rotation of a presented token, to be written by the shared statement.
struct FirstRotation {
    grant: GrantId,
    access: NewToken,
    refresh: NewToken,
    /// The successors' values, answered once written.
    tokens: (AccessToken, RefreshToken),
}

/// The rare steps of a rotation of `old` (read and locked with its grant by the caller):
/// each checks the grant's revocation first (revoked: invalid, whatever the step).
async fn rare_step(
    tx: &impl GenericClient,
    r: &Rotation,
    old: TokenRecord,
    step: RotationStep,
) -> Result<RotateOutcome, StorageError> {
    let grant = &old.grant_id;
    match step {
        RotationStep::Repeat { access, refresh } => {
            let (revoked, (access_record, refresh_record)) = pipelined(
                is_revoked(tx, grant),
                pipelined(get(tx, &access.key()), get(tx, &refresh.key())),
            )
            .await?;
            if revoked {
                return Ok(RotateOutcome::Invalid);
            }
            Ok(r.repeated(grant, access, refresh, access_record, refresh_record))
        }
        _ if is_revoked(tx, grant).await? => Ok(RotateOutcome::Invalid),
        RotationStep::Reuse => {
            let revoked = revoke_grant_in(tx, old.grant_id, r.forget_at).await?;
            Ok(RotateOutcome::Reused {
                grant_id: old.grant_id,
                forget_at: revoked.forget_at,
                client_id: old.client_id,
            })
        }
        RotationStep::InvalidScope => Ok(RotateOutcome::InvalidScope),
        RotationStep::Rotate { .. } => Err(StorageError::Database(
            "a first rotation is written by the shared statement".into(),
        )),
    }
}

async fn revoke_token(
    pool: Pool,
    key: TokenKey,
    client_id: String,
    forget_at: i64,
) -> Result<TokenRevocation, StorageError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached("SELECT kind, grant_id, client_id FROM tokens WHERE key = $1 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&&key.0[..]]).await? else {
        tx.rollback().await?;
        return Ok(TokenRevocation::Ignored);
    };
    if row.try_get::<_, &str>(2)? != client_id {
        tx.rollback().await?;
        return Ok(TokenRevocation::Ignored);
    }
    let refresh = row.try_get::<_, &str>(0)? == kind_name(TokenKind::Refresh);
    let revoked = if refresh {
        let grant = grant_id(TOKENS, row.try_get(1)?)?;
        Some(revoke_grant_in(&tx, grant, forget_at).await?)
    } else {
        None
    };
    let stmt = tx
        .prepare_cached("DELETE FROM tokens WHERE key = $1")
        .await?;
    tx.execute(&stmt, &[&&key.0[..]]).await?;
    if revoked.is_none() {
        // An access token removed: caches of validated tokens elsewhere must forget it
        // (a grant's revocation above published already).
        changes::publish(&tx, ChangeKind::Token, "").await?;
    }
    tx.commit().await?;
    Ok(match revoked {
        Some(revoked) => TokenRevocation::GrantRevoked(revoked),
        None => TokenRevocation::AccessRemoved,
    })
}

async fn revoke_grant(
    pool: Pool,
    grant: GrantId,
    forget_at: i64,
) -> Result<GrantRevocation, StorageError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let revoked = revoke_grant_in(&tx, grant, forget_at).await?;
    tx.commit().await?;
    Ok(revoked)
}

async fn record_lifetime(
    pool: Pool,
    lifetime: i64,
    in_force_until: i64,
) -> Result<Vec<(i64, i64)>, StorageError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO token_lifetimes AS l (lifetime, in_force_until) VALUES ($1, $2) \
         ON CONFLICT (lifetime) DO UPDATE \
         SET in_force_until = GREATEST(l.in_force_until, EXCLUDED.in_force_until)",
        &[&lifetime, &in_force_until],
    )
    .await?;
    let rows = tx
        .query("SELECT lifetime, in_force_until FROM token_lifetimes", &[])
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

async fn revoked_grants(pool: Pool) -> Result<RevokedGrants, StorageError> {
    let client = pool.get().await?;
    let rows = client
        .query("SELECT grant_id, forget_at FROM revoked_grants", &[])
        .await?;
    let mut out = RevokedGrants::default();
    for row in &rows {
        // The schema's CHECK keeps grant ids 16 bytes long; one that is not names no grant.
        match grant_id("revoked_grants", row.try_get(0)?) {
            Ok(grant) => out.grants.push((grant, row.try_get(1)?)),
            Err(e) => {
                tracing::error!(table = "revoked_grants", error = %e, "undecodable revocation");
                out.undecodable += 1;
            }
        }
    }
    Ok(out)
}

async fn grants_of(pool: Pool, holder: GrantHolder) -> Result<Vec<(GrantId, i64)>, StorageError> {
    let client = pool.get().await?;
    let (sql, who) = match &holder {
        GrantHolder::Subject(s) => (
            "SELECT grant_id, max(expires_at) FROM tokens WHERE subject = $1 GROUP BY grant_id",
            s,
        ),
        GrantHolder::Client(c) => (
            "SELECT grant_id, max(expires_at) FROM tokens WHERE client_id = $1 GROUP BY grant_id",
            c,
        ),
    };
    let rows = client.query(sql, &[who]).await?;
    rows.iter()
        .map(|row| Ok((grant_id(TOKENS, row.try_get(0)?)?, row.try_get(1)?)))
        .collect()
}

impl TokenStore for PgTokenStore {
    fn issue(&self, access: NewToken, refresh: Option<NewToken>) -> StoreFuture<IssueOutcome> {
        let batch = self.batch.clone();
        Box::pin(async move { batch.issue(access, refresh).await })
    }

    fn rotate(&self, rotation: Rotation) -> StoreFuture<RotateOutcome> {
        let batch = self.batch.clone();
        Box::pin(async move { batch.rotate(rotation).await })
    }

    fn get(&self, key: &TokenKey) -> StoreFuture<Option<TokenRecord>> {
        let (pool, key) = (self.pool.clone(), *key);
        Box::pin(async move { get_live(&pool.get().await?, &key).await })
    }

    fn revoke_token(
        &self,
        key: &TokenKey,
        client_id: &str,
        forget_at: i64,
    ) -> StoreFuture<TokenRevocation> {
        Box::pin(revoke_token(
            self.pool.clone(),
            *key,
            client_id.to_owned(),
            forget_at,
        ))
    }

    fn revoke_grant(&self, grant: GrantId, forget_at: i64) -> StoreFuture<GrantRevocation> {
        Box::pin(revoke_grant(self.pool.clone(), grant, forget_at))
    }

    fn record_lifetime(&self, lifetime: i64, in_force_until: i64) -> StoreFuture<Vec<(i64, i64)>> {
        Box::pin(record_lifetime(self.pool.clone(), lifetime, in_force_until))
    }

    fn revoked_grants(&self) -> StoreFuture<RevokedGrants> {
        Box::pin(revoked_grants(self.pool.clone()))
    }

    fn grants_of(&self, holder: &GrantHolder) -> StoreFuture<Vec<(GrantId, i64)>> {
        Box::pin(grants_of(self.pool.clone(), holder.clone()))
    }

    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept> {
        Box::pin(super::token_sweep::sweep(self.pool.clone(), now, limit))
    }

    fn count(&self) -> StoreFuture<usize> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let row = pool
                .get()
                .await?
                .query_one("SELECT count(*) FROM tokens", &[])
                .await?;
            Ok(to_usize(row.try_get(0)?))
        })
    }

    fn tokens_after(&self, after: Option<TokenKey>, limit: usize) -> StoreFuture<Vec<NewToken>> {
        Box::pin(super::transfer::tokens_after(
            self.pool.clone(),
            after,
            limit,
        ))
    }

    fn lifetimes(&self) -> StoreFuture<Vec<(i64, i64)>> {
        Box::pin(super::transfer::lifetimes(self.pool.clone()))
    }

    fn import_tokens(&self, tokens: Vec<NewToken>) -> StoreFuture<usize> {
        Box::pin(super::transfer::import_tokens(self.pool.clone(), tokens))
    }

    /// Resolves at once: every intent answered after its COMMIT, with `synchronous_commit` on.
    fn persist(&self) -> Persist {
        persisted()
    }
}
