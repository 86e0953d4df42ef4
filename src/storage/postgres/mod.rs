//! PostgreSQL implementations of the store traits (issue 14, first step), beside
//! [`sled`](super::sled) and with the same shape: one file per owning actor (`tokens.rs`
//! [`PgTokenStore`], `codes.rs` [`PgCodeStore`], `clients.rs` [`PgClientStore`]), and this
//! file for what they share: connecting ([`PgStores::connect`]), the versioned migrations
//! applied at connect (`migrations.rs`), and turning driver errors into [`StorageError`].
//!
//! Several server processes may share one database: every intent is one statement or one
//! transaction, as the trait docs say, and the database arbitrates (docs/storage.md,
//! "PostgreSQL"). Not wired into the server yet (no `--database-url`), and the connection is
//! plain TCP (`NoTls`): TLS comes with the wiring.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{Persist, StorageError};

mod clients;
mod codes;
pub mod migrations;
mod tokens;

pub use clients::PgClientStore;
pub use codes::PgCodeStore;
pub use tokens::PgTokenStore;

/// How long a request waits for a pooled connection, or for a new one to be made, before
/// the intent fails with [`StorageError::Database`] (fail fast, never hang).
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The three stores on one connection pool, after the schema was migrated and checked.
#[derive(Clone, Debug)]
pub struct PgStores {
    pool: Pool,
}

impl PgStores {
    /// Connects to `url` (`postgres://user@host:port/db`) with a pool of at most
    /// `pool_size` connections, applies the pending migrations under the migration lock and
    /// checks that the schema is within this build's range ([`migrations::SUPPORTED`]).
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StorageError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StorageError::Database(e.to_string()))?;
        Self::connect_with(config, pool_size).await
    }

    /// [`connect`](Self::connect) with a parsed configuration.
    pub async fn connect_with(
        mut config: tokio_postgres::Config,
        pool_size: usize,
    ) -> Result<Self, StorageError> {
        // "Committed" must mean "on disk" (a credential is handed out only after COMMIT
        // returned): refuse a server default of `synchronous_commit = off` for our sessions.
        // Appended, so options given in the URL are kept (a later `-c` wins).
        let options = match config.get_options() {
            Some(given) => format!("{given} -c synchronous_commit=on"),
            None => "-c synchronous_commit=on".to_owned(),
        };
        config.options(&options);
        // Fail fast when the database is unreachable, unless the URL says otherwise.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StorageError::Database(e.to_string()))?;
        let mut client = pool.get().await?;
        migrations::migrate(&mut client).await?;
        drop(client);
        Ok(Self { pool })
    }

    /// The token ledger's store.
    pub fn tokens(&self) -> PgTokenStore {
        PgTokenStore::new(self.pool.clone())
    }

    /// The code issuer's store.
    pub fn codes(&self) -> PgCodeStore {
        PgCodeStore::new(self.pool.clone())
    }

    /// The client registry's store.
    pub fn clients(&self) -> PgClientStore {
        PgClientStore::new(self.pool.clone())
    }

    /// Closes the pool: intents still running finish, new ones fail.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// Every intent answers only after its COMMIT returned, with `synchronous_commit` on: there
/// is nothing left to wait for.
fn persisted() -> Persist {
    Box::pin(std::future::ready(Ok(())))
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The driver's Display of a server error is only "db error"; the SQLSTATE and the
        // server's message say what happened (no values of ours are in them: keys are
        // digests, and statements carry parameters, not literals).
        match e.as_db_error() {
            Some(db) => Self::Database(format!("{}: {}", db.code().code(), db.message())),
            None => Self::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Closed => Self::Closed,
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Self::Database(other.to_string()),
        }
    }
}

/// A stored value that does not fit its type (a scope, an enum name, a grant id of the
/// wrong length): the schema's CHECKs make it unlikely, this makes it an error, not a panic.
fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        tree: table,
        reason: reason.to_string(),
    }
}

/// A grant id read from a `bytea` column.
fn grant_id(table: &'static str, bytes: &[u8]) -> Result<super::GrantId, StorageError> {
    <[u8; 16]>::try_from(bytes)
        .map(super::GrantId)
        .map_err(|_| corrupt(table, format!("grant id of {} bytes", bytes.len())))
}

/// A count or limit as PostgreSQL's `bigint`.
fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A non-negative `bigint` as a count.
fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// Namespaces of the transaction-scoped advisory locks (the two-key form
/// `pg_advisory_xact_lock(int, int)`, whose key space is apart from the one-key form the
/// migration lock uses).
mod lock {
    /// One grant: issuing into it (shared) against revoking it or rotating in it
    /// (exclusive), so that a revocation either precedes an issue (which then sees it) or
    /// follows it (and covers the tokens).
    pub(super) const GRANT: i32 = 0x6f61_0001;

    /// The second key for a grant: its first four bytes (grant ids are random; a collision
    /// only serialises two unrelated grants for a moment).
    pub(super) fn grant_key(grant: &crate::storage::GrantId) -> i32 {
        let [a, b, c, d, ..] = grant.0;
        i32::from_be_bytes([a, b, c, d])
    }

    /// Dynamic client registration under the bound: counting and inserting.
    pub(super) const REGISTRATION: i32 = 0x6f61_0002;
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod connect_tests {
    use super::*;

    /// Needs no PostgreSQL: nothing listens on the port.
    #[tokio::test]
    async fn an_unreachable_database_is_a_storage_error_not_a_hang() {
        let started = std::time::Instant::now();
        let err = PgStores::connect("postgres://postgres@127.0.0.1:1/postgres", 2)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Database(_)), "{err}");
        assert!(started.elapsed() < POOL_TIMEOUT * 2);
        assert!(matches!(
            PgStores::connect("not a url", 2).await,
            Err(StorageError::Database(_))
        ));
    }
}
