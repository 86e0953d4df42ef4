//! [`ClientStore`] on PostgreSQL: the tables `clients` and `users`.
//! Registration counts dynamically registered clients and inserts in one transaction under
//! a transaction advisory lock, so `--max-registered-clients` bounds every process sharing
//! the database together (RFC 7591 registration is open to anyone: the bound is what keeps
//! it from filling the database). The login throttle counts in `shared_state`
//! (`shared_state.rs`); schema 1's `sign_in_failures` table is unused.

use deadpool_postgres::{GenericClient, Pool};
use serde::{de::DeserializeOwned, Serialize};
use tokio_postgres::{types::ToSql, Row};

use super::{
    changes::{self, ChangeKind},
    corrupt, lock, persisted,
};
use crate::{
    domain::{
        client::{Client, ClientOrigin, User},
        scope::Scopes,
        secrets::Digest,
    },
    storage::{ClientStore, Persist, Registration, StorageError, StoreFuture},
};

const CLIENTS: &str = "clients";

/// The columns of a [`Client`], in the order [`client_record`] reads and
/// [`client_params`] writes them (`extra` as JSON text).
const COLUMNS: &str = "client_id, secret_digest, auth_method, client_name, redirect_uris, \
                       grant_types, scopes, issued_at, extra, origin, used";

/// [`ClientStore`] on PostgreSQL: a handle on the shared pool (cheap to clone).
#[derive(Clone, Debug)]
pub struct PgClientStore {
    pool: Pool,
}

impl PgClientStore {
    pub(super) fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// The serde name of a unit enum value (`client_secret_basic`, `dynamic`, ...): the same
/// names as the JSON of the sled records and of RFC 7591.
fn name<T: Serialize>(value: &T) -> Result<String, StorageError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(corrupt(CLIENTS, "a value without a name")),
    }
}

fn from_name<T: DeserializeOwned>(s: &str) -> Result<T, StorageError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|e| corrupt(CLIENTS, e))
}

/// A client's column values, owned, in [`COLUMNS`] order.
struct ClientRow {
    secret_digest: Option<Vec<u8>>,
    auth_method: String,
    grant_types: Vec<String>,
    scopes: String,
    extra: String,
    origin: String,
}

impl ClientRow {
    /// The statement parameters `$1`..`$11` of `c`, in [`COLUMNS`] order (its own fields
    /// with this row's converted ones).
    fn params<'a>(&'a self, c: &'a Client) -> [&'a (dyn ToSql + Sync); 11] {
        [
            &c.client_id,
            &self.secret_digest,
            &self.auth_method,
            &c.client_name,
            &c.redirect_uris,
            &self.grant_types,
            &self.scopes,
            &c.issued_at,
            &self.extra,
            &self.origin,
            &c.used,
        ]
    }
}

fn client_params(c: &Client) -> Result<ClientRow, StorageError> {
    Ok(ClientRow {
        secret_digest: c.secret_digest.as_ref().map(|d| d.0.to_vec()),
        auth_method: name(&c.auth_method)?,
        grant_types: c.grant_types.iter().map(name).collect::<Result<_, _>>()?,
        scopes: c.scopes.to_string(),
        extra: serde_json::to_string(&c.extra).map_err(|e| corrupt(CLIENTS, e))?,
        origin: name(&c.origin)?,
    })
}

fn client_record(row: &Row) -> Result<Client, StorageError> {
    let digest: Option<&[u8]> = row.try_get(1)?;
    let secret_digest = digest
        .map(|d| <[u8; 32]>::try_from(d).map(Digest))
        .transpose()
        .map_err(|_| corrupt(CLIENTS, "secret digest not 32 bytes"))?;
    let grant_types: Vec<&str> = row.try_get(5)?;
    let scopes: &str = row.try_get(6)?;
    let extra: &str = row.try_get(8)?;
    Ok(Client {
        client_id: row.try_get(0)?,
        secret_digest,
        auth_method: from_name(row.try_get(2)?)?,
        client_name: row.try_get(3)?,
        redirect_uris: row.try_get(4)?,
        grant_types: grant_types
            .into_iter()
            .map(from_name)
            .collect::<Result<_, _>>()?,
        scopes: Scopes::parse(scopes).map_err(|e| corrupt(CLIENTS, e))?,
        issued_at: row.try_get(7)?,
        extra: serde_json::from_str(extra).map_err(|e| corrupt(CLIENTS, e))?,
        origin: from_name(row.try_get(9)?)?,
        used: row.try_get(10)?,
    })
}

async fn load(pool: Pool) -> Result<(Vec<Client>, Vec<User>), StorageError> {
    let client = pool.get().await?;
    let select = COLUMNS.replace("extra", "extra::text");
    let clients = client
        .query(&format!("SELECT {select} FROM clients"), &[])
        .await?
        .iter()
        .map(client_record)
        .collect::<Result<_, _>>()?;
    let users = client
        .query("SELECT username, password_hash FROM users", &[])
        .await?
        .iter()
        .map(|row| {
            Ok(User {
                username: row.try_get(0)?,
                password_hash: row.try_get(1)?,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    Ok((clients, users))
}

async fn register(
    pool: Pool,
    c: Client,
    max_dynamic: Option<usize>,
) -> Result<Registration, StorageError> {
    let p = client_params(&c)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let bound = max_dynamic.filter(|_| c.origin == ClientOrigin::Dynamic);
    if let Some(max) = bound {
        // Registrations under the bound take turns: count-then-insert is then exact
        // across processes (READ COMMITTED alone would let two both see max - 1).
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, 0)",
            &[&lock::REGISTRATION],
        )
        .await?;
        let taken = tx
            .query_opt(
                "SELECT 1 FROM clients WHERE client_id = $1",
                &[&c.client_id],
            )
            .await?
            .is_some();
        if taken {
            tx.rollback().await?;
            return Ok(Registration::IdTaken);
        }
        let row = tx
            .query_one(
                "SELECT count(*) FROM clients WHERE origin = $1",
                &[&p.origin],
            )
            .await?;
        let count: i64 = row.try_get(0)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            tx.rollback().await?;
            return Ok(Registration::Full);
        }
    }
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO clients ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11) \
                 ON CONFLICT (client_id) DO NOTHING"
            ),
            &p.params(&c),
        )
        .await?;
    tx.commit().await?;
    Ok(if inserted == 1 {
        Registration::Registered
    } else {
        Registration::IdTaken
    })
}

/// Rewrites an existing client only (the registry marks a client used): a removal that
/// overtook it, here or in another process, is not undone. Published to the other
/// instances when a row changed.
async fn put_client(pool: Pool, c: Client) -> Result<bool, StorageError> {
    let p = client_params(&c)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let updated = tx
        .execute(
            "UPDATE clients SET secret_digest = $2, auth_method = $3, client_name = $4, \
             redirect_uris = $5, grant_types = $6, scopes = $7, issued_at = $8, \
             extra = $9::text::jsonb, origin = $10, used = $11 WHERE client_id = $1",
            &p.params(&c),
        )
        .await?;
    if updated > 0 {
        changes::publish(&tx, ChangeKind::Client, &c.client_id).await?;
    }
    tx.commit().await?;
    Ok(updated > 0)
}

/// One write of a client or user and its change (published when a row changed), in one
/// transaction: every instance drops or re-reads `subject` within the feed's bound.
/// Answers whether a row changed.
async fn write_and_publish(
    pool: Pool,
    sql: &'static str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    kind: ChangeKind,
    subject: &str,
) -> Result<bool, StorageError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let changed = tx.execute(sql, params).await? > 0;
    if changed {
        changes::publish(&tx, kind, subject).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

impl ClientStore for PgClientStore {
    fn load(&self) -> StoreFuture<(Vec<Client>, Vec<User>)> {
        Box::pin(load(self.pool.clone()))
    }

    fn register_client(
        &self,
        client: Client,
        max_dynamic: Option<usize>,
    ) -> StoreFuture<Registration> {
        Box::pin(register(self.pool.clone(), client, max_dynamic))
    }

    fn put_client(&self, client: Client) -> StoreFuture<bool> {
        Box::pin(put_client(self.pool.clone(), client))
    }

    fn insert_user(&self, user: User) -> StoreFuture<bool> {
        let pool = self.pool.clone();
        Box::pin(async move {
            write_and_publish(
                pool,
                "INSERT INTO users (username, password_hash) VALUES ($1, $2) \
                 ON CONFLICT (username) DO NOTHING",
                &[&user.username, &user.password_hash],
                ChangeKind::User,
                &user.username,
            )
            .await
        })
    }

    fn update_user(&self, user: User) -> StoreFuture<bool> {
        let pool = self.pool.clone();
        Box::pin(async move {
            write_and_publish(
                pool,
                "UPDATE users SET password_hash = $2 WHERE username = $1",
                &[&user.username, &user.password_hash],
                ChangeKind::User,
                &user.username,
            )
            .await
        })
    }

    fn remove_client(&self, client_id: &str) -> StoreFuture<()> {
        let (pool, id) = (self.pool.clone(), client_id.to_owned());
        Box::pin(async move {
            let sql = "DELETE FROM clients WHERE client_id = $1";
            write_and_publish(pool, sql, &[&id], ChangeKind::Client, &id)
                .await
                .map(drop)
        })
    }

    fn remove_unused_client(&self, client_id: &str) -> StoreFuture<bool> {
        let (pool, id) = (self.pool.clone(), client_id.to_owned());
        Box::pin(async move {
            let sql =
                "DELETE FROM clients WHERE client_id = $1 AND origin = 'dynamic' AND NOT used";
            write_and_publish(pool, sql, &[&id], ChangeKind::Client, &id).await
        })
    }

    fn remove_user(&self, username: &str) -> StoreFuture<()> {
        let (pool, name) = (self.pool.clone(), username.to_owned());
        Box::pin(async move {
            let sql = "DELETE FROM users WHERE username = $1";
            write_and_publish(pool, sql, &[&name], ChangeKind::User, &name)
                .await
                .map(drop)
        })
    }

    fn get_client(&self, client_id: &str) -> StoreFuture<Option<Client>> {
        let (pool, id) = (self.pool.clone(), client_id.to_owned());
        Box::pin(async move {
            let client = pool.get().await?;
            static SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                let select = COLUMNS.replace("extra", "extra::text");
                format!("SELECT {select} FROM clients WHERE client_id = $1")
            });
            let stmt = client.prepare_cached(&SELECT).await?;
            client
                .query_opt(&stmt, &[&id])
                .await?
                .as_ref()
                .map(client_record)
                .transpose()
        })
    }

    fn get_user(&self, username: &str) -> StoreFuture<Option<User>> {
        let (pool, name) = (self.pool.clone(), username.to_owned());
        Box::pin(async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT username, password_hash FROM users WHERE username = $1")
                .await?;
            client
                .query_opt(&stmt, &[&name])
                .await?
                .map(|row| {
                    Ok(User {
                        username: row.try_get(0)?,
                        password_hash: row.try_get(1)?,
                    })
                })
                .transpose()
        })
    }

    /// Resolves at once: every intent answered after its COMMIT, with `synchronous_commit` on.
    fn persist(&self) -> Persist {
        persisted()
    }
}
