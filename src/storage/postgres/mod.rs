//! PostgreSQL implementations of the store traits (issue 14, first step), beside
//! [`sled`](super::sled) and with the same shape: one file per owning actor (`tokens.rs`
//! [`PgTokenStore`], `codes.rs` [`PgCodeStore`], `clients.rs` [`PgClientStore`]; `shared_state.rs` [`PgSharedState`], the short-lived
//! state of every instance), and this
//! file for what they share: connecting ([`PgStores::connect`]), the versioned migrations
//! applied at connect (`migrations.rs`), and turning driver errors into [`StorageError`].
//!
//! Several server processes may share one database: every intent is one statement or one
//! transaction, as the trait docs say, and the database arbitrates (docs/storage.md,
//! "PostgreSQL"). The hot intents (issue tokens, rotate, issue and redeem a code) of
//! concurrent requests share transactions and are answered after the shared `COMMIT`
//! (`batch.rs`, group commit over the network). The server uses them when given
//! `--database-url` (`crate::app::start`, [`crate::Services::start_postgres`]); TLS with
//! rustls as the URL's `sslmode` says (`tls.rs`: `require`, `verify-ca`, `verify-full`,
//! never a fallback to plain text when TLS is required).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::{Persist, StorageError};

mod batch;
pub mod changes;
mod clients;
mod codes;
pub mod migrations;
mod shared_state;
pub mod tls;
mod token_sweep;
mod tokens;
mod transfer;

pub use batch::{DEFAULT_LANES, LANES_ENV, MAX_BATCH};
pub use changes::{Change, ChangeKind, ChangeListener, Wake};
pub use clients::PgClientStore;
pub use codes::PgCodeStore;
pub use shared_state::PgSharedState;
pub use tls::{Mode as TlsMode, Target};
pub use tokens::PgTokenStore;

/// How long a request waits for a pooled connection, for a new one to be made (TCP connect
/// and start-up), or for a connection to be checked before reuse, before the intent fails
/// with [`StorageError::Unavailable`]: fail fast, never hang (issue 14, "Loss of the
/// database"). Two seconds is far above a healthy round trip (well under a millisecond on a
/// LAN) and well under the actors' answer timeout (`actor_timeout`, 5 s), so a request
/// during an outage gets a 503 from the storage, not a timeout of the actor it waited on.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// TCP keepalive on every connection: a peer that vanished without closing (a failed-over
/// primary, a dropped network path) is noticed within about `IDLE + INTERVAL * RETRIES`
/// (8 s) even while a statement waits for its reply, instead of the kernel's two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_RETRIES: u32 = 3;

/// Data sent but not acknowledged for this long ends the connection (Linux
/// `TCP_USER_TIMEOUT`): a COMMIT written into a dead path fails instead of retransmitting
/// for minutes. Its outcome is then unknown, and the intent answers
/// [`StorageError::Unavailable`]: the credential is not handed out.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(5);

/// The server cancels a statement that runs longer than this (`statement_timeout`): no
/// intent of ours comes close (they are single-row statements and short transactions), so
/// one that does is stuck behind a lock or an overloaded server and fails as
/// [`StorageError::Unavailable`] rather than holding a pooled connection and a request.
/// The migrations, which may wait for another instance's migration lock, lift it for their
/// own session (`migrations::migrate`).
const STATEMENT_TIMEOUT_MS: u64 = 5_000;

/// The three stores on one connection pool, after the schema was migrated and checked.
#[derive(Clone, Debug)]
pub struct PgStores {
    pool: Pool,
    version: i32,
    /// How to connect, for the change feed's own connection ([`PgStores::listen`]).
    config: ListenConfig,
    tls: Connector,
    /// The hot intents of the token and code stores, batched into shared transactions
    /// (`batch.rs`).
    batch: batch::Batcher,
}

/// The connection configuration kept for [`PgStores::listen`]; its `Debug` names hosts and
/// database only ([`describe`]), never the password.
#[derive(Clone)]
struct ListenConfig(tokio_postgres::Config);

impl std::fmt::Debug for ListenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

/// The pool's TLS connector, for connections of their own (the change feed's).
#[derive(Clone)]
struct Connector(tls::MakeTls);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rustls")
    }
}

/// Parses a `postgres://` URL (or `key=value` string): the driver's configuration and the
/// TLS mode of its `sslmode` ([`tls`] has the modes; `verify-ca` and `verify-full` too).
/// The error never repeats the URL (it may hold a password).
pub fn parse_url(url: &str) -> Result<Target, StorageError> {
    Target::parse(url)
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
    /// TLS as the URL's `sslmode` says ([`tls`]), with the bundled roots only.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StorageError> {
        Self::connect_with(parse_url(url)?, pool_size).await
    }

    /// [`connect`](Self::connect) with a parsed configuration ([`parse_url`], perhaps with
    /// a private CA: [`Target::with_ca_pem`]), or a driver configuration as it is (its
    /// `sslmode=require` is then TLS without a certificate check, as libpq's).
    pub async fn connect_with(
        config: impl Into<Target>,
        pool_size: usize,
    ) -> Result<Self, StorageError> {
        let mut config: Target = config.into();
        let tls = config.connector()?;
        // "Committed" must mean "on disk" (a credential is handed out only after COMMIT
        // returned): refuse a server default of `synchronous_commit = off` for our sessions.
        // Appended, so options given in the URL are kept (a later `-c` wins). The
        // statement timeout goes first, so a URL's own `-c statement_timeout=` wins over it.
        let timeout = format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}");
        let options = match config.get_options() {
            Some(given) => format!("{timeout} {given} -c synchronous_commit=on"),
            None => format!("{timeout} -c synchronous_commit=on"),
        };
        config.options(&options);
        // Fail fast when the database is unreachable, and notice a vanished peer, unless
        // the URL says otherwise.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let listen = ListenConfig(config.driver().clone());
        let manager = Manager::from_config(
            config.driver().clone(),
            tls.clone(),
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
        // Waiting for another instance's migration lock, or a long migration, is not a
        // stuck intent: no statement timeout for them, restored for the pooled connection
        // afterwards whatever happened.
        client.batch_execute("SET statement_timeout = 0").await?;
        let migrated = migrations::migrate(&mut client).await;
        let restored = client.batch_execute("RESET statement_timeout").await;
        let version = migrated?;
        restored?;
        drop(client);
        let batch = batch::Batcher::start(pool.clone(), lanes);
        Ok(Self {
            pool,
            version,
            config: listen,
            tls: Connector(tls),
            batch,
        })
    }

    /// A new connection of its own listening to the change feed (see [`changes`]), with
    /// the pool's settings and TLS.
    pub async fn listen(&self) -> Result<ChangeListener, StorageError> {
        ChangeListener::connect(self.config.0.clone(), self.connector()).await
    }

    /// The TLS connector the pool uses (the URL's `sslmode`, the same roots), for a
    /// connection of one's own to the same database.
    pub fn connector(&self) -> tls::MakeTls {
        self.tls.0.clone()
    }

    /// These stores with a batcher of `lanes` lanes of their own (tests of the batching).
    #[cfg(test)]
    pub(crate) fn with_lanes(&self, lanes: usize) -> Self {
        Self {
            batch: batch::Batcher::start(self.pool.clone(), lanes),
            ..self.clone()
        }
    }

    /// Committed batches of the hot intents, the intents in them, the intents run alone
    /// after their batch was rolled back, and the rotations run alone after their batch
    /// committed without them (a rare step), so far.
    #[cfg(test)]
    pub(crate) fn batch_counts(&self) -> (u64, u64, u64, u64) {
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

    /// The short-lived state every instance shares (sign-in sessions, throttles, limits).
    pub fn shared_state(&self) -> PgSharedState {
        PgSharedState::new(self.pool.clone())
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
        let (batches, intents, alone, again) = self.batch.counts();
        tracing::info!(
            batches,
            intents,
            alone,
            again,
            "PostgreSQL group commit: batches committed, the intents in them, intents run \
             alone after a rolled-back batch, rotations run alone after their batch (a rare \
             step)"
        );
        self.pool.close();
    }
}

/// Every intent answers only after its COMMIT returned, with `synchronous_commit` on: there
/// is nothing left to wait for.
fn persisted() -> Persist {
    Box::pin(std::future::ready(Ok(())))
}

/// Driver errors become [`StorageError::Unavailable`] when the database could not be
/// reached or the connection was lost (including a COMMIT whose outcome is therefore
/// unknown: the intent failed as far as the caller knows, and nothing it would have handed
/// out is), and [`StorageError::Database`] when the database answered with an error.
impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The driver's Display of a server error is only "db error"; the SQLSTATE and the
        // server's message say what happened (no values of ours are in them: keys are
        // digests, and statements carry parameters, not literals).
        match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let message = format!("{code}: {}", db.message());
                if unavailable_sqlstate(code) {
                    Self::Unavailable(message)
                } else {
                    Self::Database(message)
                }
            }
            // A refused certificate is a configuration error, not an outage: say why.
            None if is_tls_failure(&e) => Self::Database(with_cause(&e)),
            None if lost_connection(&e) => Self::Unavailable(e.to_string()),
            None => Self::Database(e.to_string()),
        }
    }
}

/// The TLS handshake failed (the driver's Display is fixed text; rustls says why in the
/// cause: an unknown issuer, a name the certificate does not have, a server without TLS).
fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    e.to_string() == "error performing TLS handshake"
}

/// The error and its causes, `: `-separated (the driver's own Display omits them).
fn with_cause(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Server errors that say "not now" rather than "wrong": class 08 (connection exception),
/// 53 (insufficient resources: too many connections, out of memory or disk), 57P01..57P03
/// (the server is shutting down, crashed, or is starting), 57014 (our statement timeout),
/// and 25006 (a read-only transaction: the server we reached is a standby, as during a
/// failover before the address moves to the new primary).
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "57014" | "25006")
}

/// A driver error without a server error that is about the connection itself: closed, an
/// I/O failure (refused, reset, keepalive or user timeout), or the connect timeout. Other
/// kinds (a column of the wrong type, a parameter that does not encode) are our mistakes
/// and stay [`StorageError::Database`].
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    if e.is_closed() {
        return true;
    }
    if e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    // The driver exposes no kind for these two; its Display is fixed text.
    matches!(
        e.to_string().as_str(),
        "timeout waiting for server" | "error connecting to server"
    )
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Closed => Self::Closed,
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            // No connection within POOL_TIMEOUT: all busy and none freed, or none could
            // be made (or checked) in time.
            deadpool_postgres::PoolError::Timeout(kind) => {
                Self::Unavailable(format!("no database connection in time ({kind:?})"))
            }
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

    /// [`grant_key`] computed by PostgreSQL from the grant id in `column`, for statements
    /// that lock a grant they read (the same number: its first four bytes, big-endian, as a
    /// signed 32-bit integer).
    pub(super) fn grant_key_sql(column: &str) -> String {
        format!("('x' || encode(substring({column} FROM 1 FOR 4), 'hex'))::bit(32)::int")
    }

    /// Dynamic client registration under the bound: counting and inserting.
    pub(super) const REGISTRATION: i32 = 0x6f61_0002;

    /// The sweeps (issue 14: one instance at a time, in bounded batches). The second key
    /// names the table, so different tables are swept at once, each by one instance.
    pub(super) const SWEEP: i32 = 0x6f61_0003;
    /// Most rows one sweep statement deletes: a batch is one short transaction (a few
    /// milliseconds of row locks and WAL), so a tick's `limit` (the actors pass 100,000, a
    /// bound made for sled's scans) becomes a series of small transactions.
    pub(super) const SWEEP_BATCH_ROWS: usize = 5_000;

    /// Second key of [`SWEEP`]: expired tokens, forgotten revocations and lifetimes.
    pub(super) const SWEEP_TOKENS: i32 = 1;
    /// Second key of [`SWEEP`]: expired codes and forgotten redemption markers.
    pub(super) const SWEEP_CODES: i32 = 2;
    /// Second key of [`SWEEP`]: expired shared state (`shared_state.rs`).
    pub(super) const SWEEP_SHARED_STATE: i32 = 3;

    /// Takes the sweep lock of `table` for the transaction `tx`, without waiting: `false`
    /// when another instance holds it (it is sweeping that table now), and this instance
    /// skips its tick rather than delete the same rows in turn. Released at COMMIT or
    /// ROLLBACK, so a crashed sweeper never holds it.
    pub(super) async fn try_sweep(
        tx: &deadpool_postgres::Transaction<'_>,
        table: i32,
    ) -> Result<bool, crate::storage::StorageError> {
        let row = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, $2)",
                &[&SWEEP, &table],
            )
            .await?;
        Ok(row.try_get(0)?)
    }
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
        assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
        assert!(started.elapsed() < POOL_TIMEOUT * 2);
        assert!(matches!(
            PgStores::connect("not a url", 2).await,
            Err(StorageError::Database(_))
        ));
    }

    /// TLS asked for is never downgraded to plain TCP: nothing listens here, and the
    /// error names neither the password nor a fallback.
    #[tokio::test]
    async fn a_url_requiring_tls_is_accepted_and_its_password_never_shown() {
        let err = PgStores::connect(
            "postgres://app:s3cret@127.0.0.1:1/auth?sslmode=verify-full",
            2,
        )
        .await
        .unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let target = parse_url("postgres://app:s3cret@db.internal/auth?sslmode=require").unwrap();
        assert_eq!(target.mode(), TlsMode::Require);
        assert!(!format!("{target:?}").contains("s3cret"));
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
