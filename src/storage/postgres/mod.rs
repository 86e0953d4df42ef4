//! PostgreSQL implementations of the store traits (issue 14, first step), beside
//! [`sled`](super::sled) and with the same shape: one file per owning actor (`tokens.rs`
//! [`PgTokenStore`], `codes.rs` [`PgCodeStore`], `clients.rs` [`PgClientStore`]), and this
//! file for what they share: connecting ([`PgStores::connect`]), the versioned migrations
//! applied at connect (`migrations.rs`), and turning driver errors into [`StorageError`].
//!
//! Several server processes may share one database: every intent is one statement or one
//! transaction, as the trait docs say, and the database arbitrates (docs/storage.md,
//! "PostgreSQL"). The hot intents (issue tokens, rotate, issue and redeem a code) of
//! concurrent requests share transactions, each under its own savepoint, and are answered
//! after the shared `COMMIT` (`batch.rs`, group commit over the network). The server uses them when given `--database-url` (`crate::app::start`,
//! [`crate::Services::start_postgres`]); the connection is plain TCP (`NoTls`), so a URL
//! that asks for TLS (`sslmode=require`) is refused ([`parse_url`]) rather than connected
//! to in plain text.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{Persist, StorageError};

mod batch;
mod clients;
mod codes;
pub mod migrations;
mod tokens;

pub use batch::{DEFAULT_LANES, LANES_ENV, MAX_BATCH};
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
    version: i32,
    /// The hot intents of the token and code stores, batched into shared transactions
    /// (`batch.rs`).
    batch: batch::Batcher,
}

/// Parses a `postgres://` URL (or `key=value` string) into a driver configuration. Refuses
/// a URL that requires TLS (`sslmode=require`): this build connects in plain TCP only, and
/// must not silently downgrade. The error never repeats the URL (it may hold a password).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, StorageError> {
    let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        StorageError::Database(format!("the database URL is not valid: {e}"))
    })?;
    match config.get_ssl_mode() {
        tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer => {
            Ok(config)
        }
        _ => Err(StorageError::Database(
            "the database URL requires TLS (sslmode), which this build does not support yet: \
             connect over a local socket or a trusted network with sslmode=disable or prefer"
                .into(),
        )),
    }
}

/// Where `config` connects, for logs and error messages: hosts, ports and database name,
/// never the user's password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    let db = config
        .get_dbname()
        .or_else(|| config.get_user())
        .unwrap_or("postgres");
    format!("{hosts}/{db}")
}

impl PgStores {
    /// Connects to `url` (`postgres://user@host:port/db`) with a pool of at most
    /// `pool_size` connections, applies the pending migrations under the migration lock and
    /// checks that the schema is within this build's range ([`migrations::SUPPORTED`]),
    /// and starts the batching of the hot intents on the current tokio runtime
    /// ([`DEFAULT_LANES`] lanes, or as many as [`LANES_ENV`] says; `0`: none).
    /// A URL requiring TLS is refused ([`parse_url`]).
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StorageError> {
        Self::connect_with(parse_url(url)?, pool_size).await
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
        let lanes = batch::lanes_from_env()?;
        let mut client = pool.get().await?;
        let version = migrations::migrate(&mut client).await?;
        drop(client);
        let batch = batch::Batcher::start(pool.clone(), lanes);
        Ok(Self {
            pool,
            version,
            batch,
        })
    }

    /// These stores with a batcher of `lanes` lanes of their own (tests of the batching).
    #[cfg(test)]
    pub(crate) fn with_lanes(&self, lanes: usize) -> Self {
        Self {
            batch: batch::Batcher::start(self.pool.clone(), lanes),
            ..self.clone()
        }
    }

    /// Committed batches of the hot intents, the intents in them, and the intents run
    /// alone after their batch was rolled back, so far.
    #[cfg(test)]
    pub(crate) fn batch_counts(&self) -> (u64, u64, u64) {
        self.batch.counts()
    }

    /// The schema version in force when these stores connected (after migrating).
    pub fn schema_version(&self) -> i32 {
        self.version
    }

    /// The token ledger's store.
    pub fn tokens(&self) -> PgTokenStore {
        PgTokenStore::new(self.pool.clone(), self.batch.clone())
    }

    /// The code issuer's store.
    pub fn codes(&self) -> PgCodeStore {
        PgCodeStore::new(self.pool.clone(), self.batch.clone())
    }

    /// The client registry's store.
    pub fn clients(&self) -> PgClientStore {
        PgClientStore::new(self.pool.clone())
    }

    /// Whether the database answers and its schema is still one this build runs on (the
    /// readiness probe, `GET /readyz`): a pooled connection (bounded wait) and one read.
    pub async fn ready(&self) -> Result<i32, StorageError> {
        let client = self.pool.get().await?;
        migrations::check_current(&client).await
    }

    /// Closes the pool: intents still running finish, new ones fail. Logs how much the
    /// hot intents were batched (committed batches, the intents in them).
    pub fn close(&self) {
        let (batches, intents, alone) = self.batch.counts();
        tracing::info!(
            batches,
            intents,
            alone,
            "PostgreSQL group commit: batches committed, the intents in them, intents run \
             alone after a rolled-back batch"
        );
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

    /// Fail closed: TLS asked for is never downgraded to plain TCP (no connection is tried).
    #[tokio::test]
    async fn a_url_requiring_tls_is_refused_without_its_password() {
        let err = PgStores::connect("postgres://app:s3cret@127.0.0.1:1/auth?sslmode=require", 2)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("TLS"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(parse_url("postgres://app@db.internal/auth?sslmode=disable").is_ok());
        assert!(parse_url("postgres://app@db.internal/auth").is_ok());
    }

    #[test]
    fn describe_names_hosts_and_database_but_not_the_password() {
        let config = parse_url("postgres://app:s3cret@db.internal:6543/auth").unwrap();
        assert_eq!(describe(&config), "db.internal:6543/auth");
        let config = parse_url("postgres://app:s3cret@a,b:7/auth").unwrap();
        assert_eq!(describe(&config), "a:5432,b:7/auth");
        let config = parse_url("host=/run/postgresql user=app password=s3cret").unwrap();
        assert_eq!(describe(&config), "/run/postgresql:5432/app");
    }
}
