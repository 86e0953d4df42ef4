//! The export and import reads and writes of [`PgTokenStore`](super::PgTokenStore)
//! (`oauth-mcp admin export` / `import`, moving a deployment between backends): a page of
//! tokens in key order, the lifetime records, and an insert-if-absent of a chunk of tokens
//! in one transaction. Administration only, never on a request path.

use deadpool_postgres::Pool;

use super::{
    to_i64,
    tokens::{insert_with, token_record, COLUMNS},
};
use crate::{
    domain::secrets::TokenKey,
    storage::{NewToken, StorageError},
};

/// Up to `limit` tokens with keys after `after`, in key order (the primary key's index).
pub(super) async fn tokens_after(
    pool: Pool,
    after: Option<TokenKey>,
    limit: usize,
) -> Result<Vec<NewToken>, StorageError> {
    let client = pool.get().await?;
    // The empty bytea sorts before every 40-byte key.
    let after: Vec<u8> = after.map(|k| k.0.to_vec()).unwrap_or_default();
    let rows = client
        .query(
            &format!("SELECT {COLUMNS}, key FROM tokens WHERE key > $1 ORDER BY key LIMIT $2"),
            &[&after, &to_i64(limit)],
        )
        .await?;
    let mut page = Vec::with_capacity(rows.len());
    for row in &rows {
        // The key last: `token_record` reads the record's columns from the first.
        let key: &[u8] = row.try_get(9)?;
        let key = <[u8; 40]>::try_from(key)
            .map_err(|_| super::corrupt("tokens", "a key of the wrong length"))?;
        let record = token_record(row)?;
        page.push(NewToken {
            key: TokenKey(key),
            record,
        });
    }
    Ok(page)
}

/// Every `(lifetime, in_force_until)`.
pub(super) async fn lifetimes(pool: Pool) -> Result<Vec<(i64, i64)>, StorageError> {
    let rows = pool
        .get()
        .await?
        .query("SELECT lifetime, in_force_until FROM token_lifetimes", &[])
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Inserts the tokens whose key is absent, in one transaction; answers how many.
pub(super) async fn import_tokens(
    pool: Pool,
    tokens: Vec<NewToken>,
) -> Result<usize, StorageError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO tokens (key, kind, grant_id, client_id, subject, scopes, resource, \
             issued_at, expires_at, rotated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (key) DO NOTHING",
        )
        .await?;
    let mut inserted = 0;
    for NewToken { key, record } in &tokens {
        inserted += insert_with(&tx, &stmt, key, record).await?;
    }
    tx.commit().await?;
    Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
}
