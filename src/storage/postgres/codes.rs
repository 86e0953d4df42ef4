//! [`CodeStore`] on PostgreSQL: the table `codes`, live codes and their redeemed markers in
//! one row each (`used_at` and `forget_at` set once redeemed). A code is redeemed once
//! across every process by one conditional `UPDATE .. WHERE used_at IS NULL .. RETURNING`
//! (OAuth 2.1 §4.1.3: single use, and a replay reports the grant to revoke).

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Row;

use super::{batch::Batcher, corrupt, grant_id, lock, persisted, to_i64};
use crate::{
    domain::{scope::Scopes, secrets::TokenKey},
    storage::{
        CodeRecord, CodeStore, GrantHolder, Persist, Redemption, StorageError, StoreFuture, Swept,
    },
};

const CODES: &str = "codes";

/// The columns of a [`CodeRecord`], in the order [`code_record`] reads them.
const COLUMNS: &str = "grant_id, client_id, redirect_uri, redirect_uri_explicit, \
                       code_challenge, scopes, resource, subject, expires_at";

/// [`CodeStore`] on PostgreSQL: a handle on the shared pool (cheap to clone).
#[derive(Clone, Debug)]
pub struct PgCodeStore {
    pool: Pool,
    /// Runs the hot intents (insert, redeem), batched with concurrent ones (`batch.rs`).
    batch: Batcher,
}

impl PgCodeStore {
    pub(super) fn new(pool: Pool, batch: Batcher) -> Self {
        Self { pool, batch }
    }
}

fn code_record(row: &Row) -> Result<CodeRecord, StorageError> {
    let scopes: &str = row.try_get(5)?;
    Ok(CodeRecord {
        grant_id: grant_id(CODES, row.try_get(0)?)?,
        client_id: row.try_get(1)?,
        redirect_uri: row.try_get(2)?,
        redirect_uri_explicit: row.try_get(3)?,
        code_challenge: row.try_get(4)?,
        scopes: Scopes::parse(scopes).map_err(|e| corrupt(CODES, e))?,
        resource: row.try_get(6)?,
        subject: row.try_get(7)?,
        expires_at: row.try_get(8)?,
    })
}

/// Stores a new code, inside the caller's transaction (its own, or one savepoint of a batch:
/// `batch.rs`).
pub(super) async fn insert_in(
    client: &impl GenericClient,
    key: &TokenKey,
    c: &CodeRecord,
) -> Result<(), StorageError> {
    static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO codes (key, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
    });
    let stmt = client.prepare_cached(&INSERT).await?;
    client
        .execute(
            &stmt,
            &[
                &&key.0[..],
                &&c.grant_id.0[..],
                &c.client_id,
                &c.redirect_uri,
                &c.redirect_uri_explicit,
                &c.code_challenge,
                &c.scopes.to_string(),
                &c.resource,
                &c.subject,
                &c.expires_at,
            ],
        )
        .await?;
    Ok(())
}

/// Redeems a code once (the trait's `redeem`), inside the caller's transaction (its own,
/// or one savepoint of a batch: `batch.rs`). Whatever it answers, its writes are to be
/// committed: the burning of an expired or foreign code as much as a redemption.
pub(super) async fn redeem_in(
    tx: &impl GenericClient,
    key: &TokenKey,
    client_id: &str,
    now: i64,
    forget_at: i64,
) -> Result<Redemption, StorageError> {
    let key = &key.0[..];
    // The winner: of concurrent redemptions, the others wait for this row's lock and then
    // find `used_at IS NULL` false (READ COMMITTED re-checks the updated row).
    static REDEEM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE codes SET used_at = $2, forget_at = $3 \
             WHERE key = $1 AND used_at IS NULL AND expires_at > $2 AND client_id = $4 \
             RETURNING {COLUMNS}"
        )
    });
    let stmt = tx.prepare_cached(&REDEEM).await?;
    if let Some(row) = tx
        .query_opt(&stmt, &[&key, &now, &forget_at, &client_id])
        .await?
    {
        return Ok(Redemption::Redeemed(code_record(&row)?));
    }
    // Still live, so expired or another client's: burnt (a stolen code is gone).
    let stmt = tx
        .prepare_cached("DELETE FROM codes WHERE key = $1 AND used_at IS NULL")
        .await?;
    if tx.execute(&stmt, &[&key]).await? > 0 {
        return Ok(Redemption::Invalid);
    }
    let stmt = tx
        .prepare_cached(
            "SELECT grant_id, forget_at FROM codes WHERE key = $1 AND used_at IS NOT NULL",
        )
        .await?;
    match tx.query_opt(&stmt, &[&key]).await? {
        Some(row) if row.try_get::<_, i64>(1)? > now => {
            Ok(Redemption::Replayed(grant_id(CODES, row.try_get(0)?)?))
        }
        _ => Ok(Redemption::Invalid),
    }
}

async fn remove_live_codes_of(pool: Pool, holder: GrantHolder) -> Result<usize, StorageError> {
    let client = pool.get().await?;
    // Redeemed markers stay: their replay must still report the grant.
    let (sql, who) = match &holder {
        GrantHolder::Subject(s) => (
            "DELETE FROM codes WHERE used_at IS NULL AND subject = $1",
            s,
        ),
        GrantHolder::Client(c) => (
            "DELETE FROM codes WHERE used_at IS NULL AND client_id = $1",
            c,
        ),
    };
    let removed = client.execute(sql, &[who]).await?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

/// At most `limit` rows in all: live codes past their expiry first, then markers past
/// their `forget_at`, in batches of at most [`lock::SWEEP_BATCH_ROWS`] rows, each a short
/// transaction. Rows are typed columns, so nothing here can be undecodable.
///
/// One instance at a time: each batch first takes this table's sweep lock without waiting;
/// an instance that does not get it for its first batch skips the tick (answers nothing
/// swept), and one that loses it between batches stops there (another is sweeping).
async fn sweep(pool: Pool, now: i64, limit: usize) -> Result<Swept, StorageError> {
    let mut client = pool.get().await?;
    let mut removed = 0usize;
    let mut left = limit;
    while left > 0 {
        let batch = left.min(lock::SWEEP_BATCH_ROWS);
        let tx = client.transaction().await?;
        if !lock::try_sweep(&tx, lock::SWEEP_CODES).await? {
            break;
        }
        let n = sweep_batch(&tx, now, batch).await?;
        tx.commit().await?;
        removed = removed.saturating_add(n);
        left -= batch;
        if n < batch {
            break;
        }
    }
    Ok(Swept {
        removed,
        ..Swept::default()
    })
}

/// One batch of [`sweep`], in `tx` (which holds the sweep lock): at most `batch` rows,
/// expired live codes first, then forgotten markers.
async fn sweep_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    now: i64,
    batch: usize,
) -> Result<usize, StorageError> {
    let expired = tx
        .execute(
            "DELETE FROM codes WHERE used_at IS NULL AND expires_at <= $1 AND key IN \
             (SELECT key FROM codes WHERE used_at IS NULL AND expires_at <= $1 \
              ORDER BY expires_at LIMIT $2)",
            &[&now, &to_i64(batch)],
        )
        .await?;
    let left = to_i64(batch).saturating_sub(i64::try_from(expired).unwrap_or(i64::MAX));
    let forgotten = if left > 0 {
        tx.execute(
            "DELETE FROM codes WHERE used_at IS NOT NULL AND forget_at <= $1 AND key IN \
             (SELECT key FROM codes WHERE used_at IS NOT NULL AND forget_at <= $1 \
              ORDER BY forget_at LIMIT $2)",
            &[&now, &left],
        )
        .await?
    } else {
        0
    };
    Ok(usize::try_from(expired.saturating_add(forgotten)).unwrap_or(usize::MAX))
}

impl CodeStore for PgCodeStore {
    fn insert(&self, key: &TokenKey, record: CodeRecord) -> StoreFuture<()> {
        let (batch, key) = (self.batch.clone(), *key);
        Box::pin(async move { batch.insert_code(key, record).await })
    }

    fn redeem(
        &self,
        key: &TokenKey,
        client_id: &str,
        now: i64,
        forget_at: i64,
    ) -> StoreFuture<Redemption> {
        let (batch, key, client_id) = (self.batch.clone(), *key, client_id.to_owned());
        Box::pin(async move { batch.redeem(key, client_id, now, forget_at).await })
    }

    fn remove_live_codes_of(&self, holder: &GrantHolder) -> StoreFuture<usize> {
        Box::pin(remove_live_codes_of(self.pool.clone(), holder.clone()))
    }

    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept> {
        Box::pin(sweep(self.pool.clone(), now, limit))
    }

    /// Resolves at once: every intent answered after its COMMIT, with `synchronous_commit` on.
    fn persist(&self) -> Persist {
        persisted()
    }
}
