//! [`SharedState`] on PostgreSQL: the table `shared_state` (schema 3), shared by every
//! instance on the database, so a browser may sign in on one instance and consent on
//! another, and the login throttle and the registration limit count across all of them
//! (issue 14). Every method is one statement: a counting step is one
//! `INSERT .. ON CONFLICT DO UPDATE .. RETURNING`, so of concurrent attempts on several
//! instances exactly `limit` are admitted; a take is one `DELETE .. RETURNING`. The sweep
//! runs under a transaction-scoped advisory lock, so one instance at a time deletes, in
//! bounded batches.

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::{lock, to_i64};
use crate::{
    domain::secrets::Digest,
    storage::{
        shared_state::{Count, Entry, Namespace, SharedState},
        StorageError, StoreFuture,
    },
};

/// [`SharedState`] on PostgreSQL: a handle on the shared pool (cheap to clone).
#[derive(Clone, Debug)]
pub struct PgSharedState {
    pool: Pool,
}

impl PgSharedState {
    pub(super) fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn entry(row: &Row) -> Result<Entry, StorageError> {
    Ok(Entry {
        value: row.try_get(0)?,
        owner: row.try_get(1)?,
        expires_at: row.try_get(2)?,
    })
}

async fn put(pool: Pool, ns: Namespace, key: Digest, e: Entry) -> Result<(), StorageError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO shared_state (namespace, key, value, owner, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, \
               owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at, count = 0, \
               window_start = 0",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[&ns.name(), &&key.0[..], &e.value, &e.owner, &e.expires_at],
        )
        .await?;
    Ok(())
}

async fn get(
    pool: Pool,
    ns: Namespace,
    key: Digest,
    now: i64,
    take: bool,
) -> Result<Option<Entry>, StorageError> {
    let client = pool.get().await?;
    let sql = if take {
        // One statement: of concurrent takers on any instance, one deletes the row.
        "DELETE FROM shared_state WHERE namespace = $1 AND key = $2 \
         RETURNING value, owner, expires_at"
    } else {
        "SELECT value, owner, expires_at FROM shared_state WHERE namespace = $1 AND key = $2"
    };
    let stmt = client.prepare_cached(sql).await?;
    let row = client.query_opt(&stmt, &[&ns.name(), &&key.0[..]]).await?;
    // An expired row is not an answer (a taker removes it all the same).
    Ok(row
        .map(|r| entry(&r))
        .transpose()?
        .filter(|e| e.expires_at > now))
}

async fn remove(pool: Pool, ns: Namespace, key: Digest) -> Result<(), StorageError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("DELETE FROM shared_state WHERE namespace = $1 AND key = $2")
        .await?;
    client.execute(&stmt, &[&ns.name(), &&key.0[..]]).await?;
    Ok(())
}

async fn remove_owned_by(pool: Pool, ns: Namespace, owner: String) -> Result<usize, StorageError> {
    let client = pool.get().await?;
    let removed = client
        .execute(
            "DELETE FROM shared_state WHERE namespace = $1 AND owner = $2",
            &[&ns.name(), &owner],
        )
        .await?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

/// One upsert: a first attempt opens a window at `now`; one after the window has ended
/// opens a new one; otherwise the count grows, capped at `limit + 1`. The `CASE`s all read
/// the row as it was before the update, and the row is locked by the upsert, so concurrent
/// counts on several instances are serialised by the database.
async fn count(
    pool: Pool,
    ns: Namespace,
    key: Digest,
    len: i64,
    limit: u32,
    now: i64,
) -> Result<Count, StorageError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO shared_state AS s (namespace, key, count, window_start, expires_at) \
             VALUES ($1, $2, 1, $3::bigint, $3::bigint + $4::bigint) \
             ON CONFLICT (namespace, key) DO UPDATE SET \
               count = CASE WHEN s.expires_at <= $3 THEN 1 ELSE LEAST(s.count + 1, $5::integer) END, \
               window_start = CASE WHEN s.expires_at <= $3 THEN $3 ELSE s.window_start END, \
               expires_at = CASE WHEN s.expires_at <= $3 THEN $3 + $4 ELSE s.expires_at END \
             RETURNING count, window_start",
        )
        .await?;
    let cap = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
    let row = client
        .query_one(&stmt, &[&ns.name(), &&key.0[..], &now, &len, &cap])
        .await?;
    let n: i32 = row.try_get(0)?;
    Ok(Count {
        count: u32::try_from(n).unwrap_or(0),
        started: row.try_get(1)?,
    })
}

async fn uncount(
    pool: Pool,
    ns: Namespace,
    key: Digest,
    started: i64,
    now: i64,
) -> Result<(), StorageError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "UPDATE shared_state SET count = count - 1 WHERE namespace = $1 AND key = $2 \
             AND window_start = $3 AND expires_at > $4 AND count > 0",
        )
        .await?;
    client
        .execute(&stmt, &[&ns.name(), &&key.0[..], &started, &now])
        .await?;
    Ok(())
}

/// At most `limit` expired entries, oldest first, in batches of at most
/// [`lock::SWEEP_BATCH_ROWS`] rows, each a short transaction that first takes this table's
/// sweep lock without waiting: an instance that does not get it for its first batch skips
/// the tick (answers 0), and one that loses it between batches stops there. The outer
/// condition repeats the inner one: a row renewed meanwhile (a counter whose window
/// restarted) is re-checked, not deleted on the strength of the subquery.
async fn sweep(pool: Pool, now: i64, limit: usize) -> Result<usize, StorageError> {
    let mut client = pool.get().await?;
    let mut removed = 0usize;
    let mut left = limit;
    while left > 0 {
        let batch = left.min(lock::SWEEP_BATCH_ROWS);
        let tx = client.transaction().await?;
        if !lock::try_sweep(&tx, lock::SWEEP_SHARED_STATE).await? {
            break;
        }
        let n = tx
            .execute(
                "DELETE FROM shared_state WHERE expires_at <= $1 AND (namespace, key) IN \
                 (SELECT namespace, key FROM shared_state WHERE expires_at <= $1 \
                  ORDER BY expires_at LIMIT $2)",
                &[&now, &to_i64(batch)],
            )
            .await?;
        tx.commit().await?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        removed = removed.saturating_add(n);
        left -= batch;
        if n < batch {
            break;
        }
    }
    Ok(removed)
}

impl SharedState for PgSharedState {
    fn put(&self, ns: Namespace, key: &Digest, entry: Entry, _now: i64) -> StoreFuture<()> {
        Box::pin(put(self.pool.clone(), ns, Digest(key.0), entry))
    }

    fn get(&self, ns: Namespace, key: &Digest, now: i64) -> StoreFuture<Option<Entry>> {
        Box::pin(get(self.pool.clone(), ns, Digest(key.0), now, false))
    }

    fn take(&self, ns: Namespace, key: &Digest, now: i64) -> StoreFuture<Option<Entry>> {
        Box::pin(get(self.pool.clone(), ns, Digest(key.0), now, true))
    }

    fn remove(&self, ns: Namespace, key: &Digest) -> StoreFuture<()> {
        Box::pin(remove(self.pool.clone(), ns, Digest(key.0)))
    }

    fn remove_owned_by(&self, ns: Namespace, owner: &str) -> StoreFuture<usize> {
        Box::pin(remove_owned_by(self.pool.clone(), ns, owner.to_owned()))
    }

    /// `keep` is for a bounded memory: the table is not bounded by eviction (the sweep
    /// removes ended windows).
    fn count(
        &self,
        ns: Namespace,
        key: &Digest,
        len: i64,
        limit: u32,
        now: i64,
        _keep: bool,
    ) -> StoreFuture<Count> {
        Box::pin(count(self.pool.clone(), ns, Digest(key.0), len, limit, now))
    }

    fn uncount(&self, ns: Namespace, key: &Digest, started: i64, now: i64) -> StoreFuture<()> {
        Box::pin(uncount(self.pool.clone(), ns, Digest(key.0), started, now))
    }

    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<usize> {
        Box::pin(sweep(self.pool.clone(), now, limit))
    }
}
