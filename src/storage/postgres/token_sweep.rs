//! The [`TokenStore`](crate::storage::TokenStore) sweep on PostgreSQL (beside `tokens.rs`,
//! which it would make too long): expired tokens, forgotten revocations, outlived lifetime
//! records and the change feed's old entries, by one instance at a time (the tables' sweep
//! lock) in bounded batches (issue 14).

use deadpool_postgres::Pool;

use super::{changes, grant_id, lock, to_i64};
use crate::storage::{GrantId, StorageError, Swept};

/// One bounded slice: expired tokens and forgotten revocations, oldest first by index, at
/// most `limit` of each (no cursor needed: the indexes find them), deleted in batches of at
/// most [`lock::SWEEP_BATCH_ROWS`] rows per statement, each batch a short transaction.
///
/// One instance at a time: each batch first takes this table's sweep lock without waiting;
/// an instance that does not get it for its first batch skips the tick (answers nothing
/// swept), and one that loses it between batches stops there (another is sweeping).
pub(super) async fn sweep(pool: Pool, now: i64, limit: usize) -> Result<Swept, StorageError> {
    let mut client = pool.get().await?;
    let mut swept = Swept::default();
    let mut left = limit;
    let mut first = true;
    while left > 0 {
        let batch = left.min(lock::SWEEP_BATCH_ROWS);
        let tx = client.transaction().await?;
        if !lock::try_sweep(&tx, lock::SWEEP_TOKENS).await? {
            break;
        }
        let done = sweep_batch(&tx, now, batch, first).await?;
        tx.commit().await?;
        swept.removed = swept.removed.saturating_add(done.removed);
        let full = done.removed == batch || done.forgotten.len() == batch || done.trimmed == batch;
        swept.forgotten_grants.extend(done.forgotten);
        left -= batch;
        first = false;
        if !full {
            break;
        }
    }
    Ok(swept)
}

/// One batch of [`sweep`], in `tx` (which holds the sweep lock): at most `batch` expired
/// tokens, `batch` forgotten revocations and `batch` changes older than [`changes::KEEP`]
/// (the change feed's log), and, on the first batch of a tick, the
/// outlived lifetime records (one row per lifetime ever configured). The outer conditions
/// repeat the inner ones so that a row changed meanwhile (a revocation raised by another
/// process) is re-checked, not deleted on the strength of the subquery.
async fn sweep_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    now: i64,
    batch: usize,
    lifetimes: bool,
) -> Result<Batch, StorageError> {
    let limit = to_i64(batch);
    let removed = tx
        .execute(
            "DELETE FROM tokens WHERE expires_at <= $1 AND key IN \
             (SELECT key FROM tokens WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
            &[&now, &limit],
        )
        .await?;
    let rows = tx
        .query(
            "DELETE FROM revoked_grants WHERE forget_at <= $1 AND grant_id IN \
             (SELECT grant_id FROM revoked_grants WHERE forget_at <= $1 ORDER BY forget_at LIMIT $2) \
             RETURNING grant_id",
            &[&now, &limit],
        )
        .await?;
    if lifetimes {
        // numeric: `in_force_until` may be i64::MAX (fail closed), and must not overflow.
        tx.execute(
            "DELETE FROM token_lifetimes WHERE in_force_until::numeric + lifetime <= $1::bigint",
            &[&now],
        )
        .await?;
    }
    // The change log's old entries go with the batch, bounded the same way.
    let trimmed = changes::trim(tx, changes::KEEP, limit).await?;
    let forgotten = rows
        .iter()
        .map(|row| grant_id("revoked_grants", row.try_get(0)?))
        .collect::<Result<_, _>>()?;
    Ok(Batch {
        removed: usize::try_from(removed).unwrap_or(usize::MAX),
        forgotten,
        trimmed: usize::try_from(trimmed).unwrap_or(usize::MAX),
    })
}

/// What one batch of [`sweep`] deleted.
struct Batch {
    removed: usize,
    forgotten: Vec<GrantId>,
    trimmed: usize,
}
