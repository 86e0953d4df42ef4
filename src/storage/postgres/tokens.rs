//! [`TokenStore`] on PostgreSQL: the tables `tokens`, `revoked_grants` and
//! `token_lifetimes`. Each intent is one statement or one transaction, as the trait says
//! (the SQL of each is in docs/storage.md, "PostgreSQL"): a refresh token is rotated once
//! across every process (`SELECT .. FOR UPDATE` of the presented token, then the outcome
//! decided in the same transaction), and no token is issued into or rotated in a grant once
//! its revocation has committed (a transaction-scoped advisory lock per grant orders issue,
//! rotation and revocation of one grant).

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Row;

use super::{
    batch::Batcher,
    changes::{self, ChangeKind},
    corrupt, grant_id, lock, persisted, to_usize,
};
use crate::{
    domain::{scope::Scopes, secrets::TokenKey},
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

async fn insert(
    c: &impl GenericClient,
    key: &TokenKey,
    t: &TokenRecord,
) -> Result<(), StorageError> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO tokens (key, kind, grant_id, client_id, subject, scopes, resource, \
             issued_at, expires_at, rotated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    insert_with(c, &stmt, key, t).await?;
    Ok(())
}

/// Runs `stmt`, an `INSERT INTO tokens` of the ten columns in [`insert`]'s order ($1 to
/// $10), for one token: answers the rows inserted (0 for `ON CONFLICT DO NOTHING`).
pub(super) async fn insert_with(
    c: &impl GenericClient,
    stmt: &tokio_postgres::Statement,
    key: &TokenKey,
    t: &TokenRecord,
) -> Result<u64, StorageError> {
    Ok(c.execute(
        stmt,
        &[
            &&key.0[..],
            &kind_name(t.kind),
            &&t.grant_id.0[..],
            &t.client_id,
            &t.subject,
            &t.scopes.to_string(),
            &t.resource,
            &t.issued_at,
            &t.expires_at,
            &t.rotated_at_us,
        ],
    )
    .await?)
}

/// The trait's `get`: the token unless its grant is revoked, in one statement (the primary
/// key and the revocation's primary key), so validation on this instance is right at once
/// about revocations committed by any instance, whatever the ledger's in-memory set holds.
async fn get_live(
    c: &impl GenericClient,
    key: &TokenKey,
) -> Result<Option<TokenRecord>, StorageError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tokens t WHERE key = $1 AND NOT EXISTS \
             (SELECT 1 FROM revoked_grants r WHERE r.grant_id = t.grant_id)"
        ))
        .await?;
    c.query_opt(&stmt, &[&&key.0[..]])
        .await?
        .as_ref()
        .map(token_record)
        .transpose()
}

/// A token as stored, revoked grant or not (inside a rotation, which has checked the grant
/// under its lock already).
async fn get(c: &impl GenericClient, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError> {
    let stmt = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE key = $1"))
        .await?;
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

/// Marks the presented refresh token rotated at `at` (Unix µs).
async fn mark_rotated(c: &impl GenericClient, key: &TokenKey, at: i64) -> Result<(), StorageError> {
    let stmt = c
        .prepare_cached("UPDATE tokens SET rotated_at_us = $2 WHERE key = $1")
        .await?;
    c.execute(&stmt, &[&&key.0[..], &at]).await?;
    Ok(())
}

/// Issues `access` (and `refresh`) into their grant unless it is revoked, inside the
/// caller's transaction (its own, or one savepoint of a batch: `batch.rs`). Whatever it
/// answers, its writes are to be committed: the outcome holds only once they are.
pub(super) async fn issue_in(
    c: &impl GenericClient,
    access: &NewToken,
    refresh: Option<&NewToken>,
) -> Result<IssueOutcome, StorageError> {
    // Shared: issues into one grant run side by side; a revocation waits for them (and
    // covers their tokens), or they wait for it (and see it). Lock and check are sent
    // together (pipelined, see `pipelined`), as are the inserts.
    let grant = &access.record.grant_id;
    let (_, revoked) = pipelined(lock_grant(c, grant, true), is_revoked(c, grant)).await?;
    if revoked {
        return Ok(IssueOutcome::GrantRevoked);
    }
    match refresh {
        Some(refresh) => {
            pipelined(
                insert(c, &access.key, &access.record),
                insert(c, &refresh.key, &refresh.record),
            )
            .await?;
        }
        None => insert(c, &access.key, &access.record).await?,
    }
    Ok(IssueOutcome::Issued)
}

/// Rotates the presented refresh token (the trait's `rotate`), inside the caller's
/// transaction (its own, or one savepoint of a batch: `batch.rs`). Whatever it answers, its
/// writes are to be committed: a reuse's revocation as much as a rotation's successors.
/// Outcomes that wrote nothing (invalid, repeated) commit nothing but the row lock.
pub(super) async fn rotate_in(
    tx: &impl GenericClient,
    r: &Rotation,
) -> Result<RotateOutcome, StorageError> {
    // The row lock makes concurrent rotations of one token take turns: the second reads
    // the token as the first left it (rotated) and answers within the grace rule.
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE key = $1 FOR UPDATE"
        ))
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&&r.presented.0[..]]).await? else {
        return Ok(RotateOutcome::Invalid);
    };
    let old = token_record(&row)?;
    if !r.accepts(&old) {
        return Ok(RotateOutcome::Invalid);
    }
    let grant = &old.grant_id;
    let (_, revoked) = pipelined(lock_grant(tx, grant, false), is_revoked(tx, grant)).await?;
    if revoked {
        return Ok(RotateOutcome::Invalid);
    }
    match r.step(&old) {
        RotationStep::Reuse => {
            let revoked = revoke_grant_in(tx, old.grant_id, r.forget_at).await?;
            Ok(RotateOutcome::Reused {
                grant_id: old.grant_id,
                forget_at: revoked.forget_at,
                client_id: old.client_id,
            })
        }
        RotationStep::InvalidScope => Ok(RotateOutcome::InvalidScope),
        RotationStep::Repeat { access, refresh } => {
            let (access_record, refresh_record) =
                pipelined(get(tx, &access.key()), get(tx, &refresh.key())).await?;
            Ok(r.repeated(
                &old.grant_id,
                access,
                refresh,
                access_record,
                refresh_record,
            ))
        }
        RotationStep::Rotate {
            access,
            refresh,
            access_record,
            refresh_record,
        } => {
            let (access_key, refresh_key) = (access.key(), refresh.key());
            futures_util::future::try_join3(
                insert(tx, &access_key, &access_record),
                insert(tx, &refresh_key, &refresh_record),
                mark_rotated(tx, &r.presented, r.rotated_at_us),
            )
            .await?;
            Ok(RotateOutcome::Rotated(Successors {
                access,
                refresh,
                access_record,
            }))
        }
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
