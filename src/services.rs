//! The services: [`Services::start`] starts the actors (once per process, outside
//! `HttpServer::new`) and the group commit, [`Services::ask`] sends them a message with the
//! configured timeout and records the wait, [`Services::shutdown`] stops them. Nothing here
//! knows about HTTP: `crate::app` serves HTTP over these services.
//!
//! The demo client and user have a published secret and password, so they exist only on a
//! server reachable on loopback alone (a loopback public URL and a loopback bind address):
//! they are seeded only there, and a server reachable beyond loopback refuses to start
//! while they are in its data, unless `keep_demo` ([`Services::start`]).

use std::{
    any::Any,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actix::{Actor, Addr};

use crate::{
    actors::change_feed::{ChangeFeed, Freshness},
    actors::mcp_sessions::{McpSessions, SessionDirectory, SessionLimits},
    actors::token_cache::{Revocations, TokenCache},
    actors::{
        client_registry::{
            hash_password, GetClient, InsertClientIfAbsent, InsertUserIfAbsent, ListUsers,
            RegistryError,
        },
        ClientDocuments, ClientRegistry, CodeIssuer, Stop, TokenLedger,
    },
    config::{ConfigError, Settings},
    domain::{
        client::{AuthMethod, Client, ClientOrigin, GrantType, User},
        clock::Clock,
        secrets::ClientSecret,
        server_key::{KeyError, ServerKey},
    },
    error::Error,
    metrics::{Metered, Metrics},
    storage::{
        postgres::PgStores,
        sled::{Durability, SledClientStore, SledCodeStore, SledTokenStore},
        ClientStore, CodeStore, GroupCommit, StorageError, TokenStore,
    },
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be opened or read.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Seeding or hashing failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The server key could not be read or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The server is reachable beyond loopback and its data holds the demo client or user,
    /// whose secret and password are public.
    #[error(
        "the data directory holds the demo client or user ({DEMO_CLIENT_ID} / {DEMO_USERNAME}, whose \
         secret and password are public), and this server is reachable beyond loopback ({0}). \
         Stop it and remove them with `oauth-mcp admin --data-dir <dir> client remove {DEMO_CLIENT_ID}` \
         and `oauth-mcp admin --data-dir <dir> user remove {DEMO_USERNAME}`, or start with \
         --keep-demo (OAUTH_MCP_KEEP_DEMO=true) to keep them knowingly"
    )]
    DemoReachable(String),
    /// A socket or thread could not be set up.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The PostgreSQL database (`--database-url`) could not be reached, migrated, or its
    /// schema is outside this build's range. `target` names hosts and database only, never
    /// the URL's password.
    #[error("PostgreSQL database {target}: {reason}")]
    Database {
        /// Hosts, ports and database name.
        target: String,
        /// What went wrong.
        reason: StorageError,
    },
}

/// How long start-up waits for the registry while checking and seeding the demo records.
const SEEDING_TIMEOUT: Duration = Duration::from_secs(30);

/// The demo client id seeded unless `--no-demo` (on a loopback-only server).
pub const DEMO_CLIENT_ID: &str = "demo_client";
/// The demo client secret.
pub const DEMO_CLIENT_SECRET: &str = "demo_secret";
/// The demo user.
pub const DEMO_USERNAME: &str = "demo_user";
/// The demo user's password.
pub const DEMO_PASSWORD: &str = "demo_password";

/// Addresses of the actors plus the shared settings: what handlers need. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The client registry (clients, users, login throttle).
    pub registry: Addr<ClientRegistry>,
    /// The clients named by client ID metadata documents (cache and fetching).
    pub documents: Addr<ClientDocuments>,
    /// The authorization-code issuer.
    pub codes: Addr<CodeIssuer>,
    /// The token ledger.
    pub ledger: Addr<TokenLedger>,
    /// The MCP session manager.
    pub sessions: Addr<McpSessions>,
    /// The session table as the `/mcp` guard reads it without a message (written by
    /// `sessions` only).
    pub session_directory: SessionDirectory,
    /// Access tokens the ledger validated, forgotten at any revocation (the `/mcp` guard's
    /// token check).
    pub token_cache: Arc<TokenCache>,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Values the layers above attach to this server, shared by every clone and worker
    /// (the demo MCP server's guestbook).
    pub attachments: Arc<Attachments>,
    /// Operational counters ([`crate::metrics`]).
    pub metrics: Arc<Metrics>,
    /// The server key ([`ServerKey`]): CSRF values and grace-window derivations.
    pub key: Arc<ServerKey>,
    /// The server-wide bound on concurrent password checks
    /// ([`crate::config::Settings::password_hash_concurrency`] slots; the registry takes
    /// one per check and refuses a sign-in when none is free). Shared here so a host or a
    /// test can see how many are free.
    pub password_checks: Arc<tokio::sync::Semaphore>,
    commit: Option<GroupCommit>,
    postgres: Option<PgStores>,
    /// The change feed's task on a shared database (aborted at shutdown).
    feed: Option<tokio::task::AbortHandle>,
}

/// The three stores the actors are given, from one backend.
struct Stores {
    clients: Box<dyn ClientStore>,
    codes: Box<dyn CodeStore>,
    tokens: Box<dyn TokenStore>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("issuer", &self.settings.issuer)
            .finish()
    }
}

async fn blocking_hash(password: &'static str) -> Result<String, StartError> {
    tokio::task::spawn_blocking(move || hash_password(password))
        .await
        .map_err(|e| StartError::Registry(RegistryError::Internal(e.to_string())))?
        .map_err(StartError::from)
}

impl Services {
    /// Starts the actors on `db`, in the current actix System, and seeds the demo data
    /// when configured.
    pub async fn start(
        settings: Settings,
        db: &sled::Db,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::default());
        let commit = if settings.config.durable {
            Some(GroupCommit::start(
                db.clone(),
                Some(Arc::clone(&metrics) as _),
            )?)
        } else {
            None
        };
        let durability = match &commit {
            Some(c) => Durability::durable(c.clone()),
            None => Durability::relaxed(),
        };
        let stores = Stores {
            clients: Box::new(SledClientStore::open(db, durability.clone())?),
            codes: Box::new(SledCodeStore::open(db, durability.clone())?),
            tokens: Box::new(SledTokenStore::open(db, durability)?),
        };
        Self::start_on(settings, stores, commit, None, metrics, clock).await
    }

    /// [`start`](Self::start) on the PostgreSQL stores (`--database-url`), connected and
    /// migrated by [`PgStores::connect`]. Every intent answers after its COMMIT, so
    /// `durable` has nothing to change here. [`shutdown`](Self::shutdown) closes the pool.
    pub async fn start_postgres(
        settings: Settings,
        stores: &PgStores,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let backend = Stores {
            clients: Box::new(stores.clients()),
            codes: Box::new(stores.codes()),
            tokens: Box::new(stores.tokens()),
        };
        let metrics = Arc::new(Metrics::default());
        Self::start_on(
            settings,
            backend,
            None,
            Some(stores.clone()),
            metrics,
            clock,
        )
        .await
    }

    async fn start_on(
        settings: Settings,
        stores: Stores,
        commit: Option<GroupCommit>,
        postgres: Option<PgStores>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let settings = Arc::new(settings);
        let key = match ServerKey::load_or_create(
            settings.config.key_file.as_deref(),
            &settings.config.data_dir,
        ) {
            Ok(key) => Arc::new(key),
            Err(e) => {
                release(commit, postgres).await;
                return Err(e.into());
            }
        };
        let dummy_hash = blocking_hash("not-a-password").await?;
        let password_checks = Arc::new(tokio::sync::Semaphore::new(
            settings.password_hash_concurrency.max(1),
        ));
        // On a shared database the in-memory state is a cache kept by the change feed
        // (`actors::change_feed`), trusted only while it is fresh; sled: always.
        let freshness = match &postgres {
            Some(_) => Freshness::shared(),
            None => Freshness::local(),
        };
        let registry = ClientRegistry::new(
            stores.clients,
            Arc::clone(&settings),
            Arc::clone(&clock),
            dummy_hash,
        )
        .await?
        .with_password_checks(Arc::clone(&password_checks))
        .with_freshness(Arc::clone(&freshness));
        // On PostgreSQL the sign-in sessions, throttles and limits are shared by every
        // instance on the database; with sled they stay in this process's memory.
        let registry = match &postgres {
            Some(stores) => registry.with_shared_state(Arc::new(stores.shared_state())),
            None => registry,
        }
        .start();
        let documents = ClientDocuments::new(Arc::clone(&settings), Arc::clone(&clock))
            .with_metrics(Arc::clone(&metrics))
            .start();
        let codes = CodeIssuer::new(stores.codes, Arc::clone(&settings), Arc::clone(&clock))
            .with_metrics(Arc::clone(&metrics))
            .start();
        let revocations = Revocations::default();
        let ledger = TokenLedger::new(
            stores.tokens,
            Arc::clone(&settings),
            Arc::clone(&clock),
            Arc::clone(&key),
        )
        .await?
        .with_metrics(Arc::clone(&metrics))
        .with_revocations(revocations.clone())
        .start();
        let feed = postgres.as_ref().map(|stores| {
            ChangeFeed::new(
                stores.clone(),
                revocations.clone(),
                registry.clone(),
                Arc::clone(&freshness),
            )
            .spawn()
            .abort_handle()
        });
        let token_cache = Arc::new(
            TokenCache::new(
                revocations,
                Arc::clone(&clock),
                TokenCache::TTL,
                TokenCache::CAPACITY,
            )
            .with_freshness(freshness),
        );
        let sessions = McpSessions::new(SessionLimits::from_config(&settings.config));
        let session_directory = sessions.directory();
        let sessions = sessions.start();
        let services = Self {
            registry,
            documents,
            codes,
            ledger,
            sessions,
            session_directory,
            token_cache,
            settings,
            attachments: Arc::default(),
            metrics,
            key,
            password_checks,
            commit,
            postgres,
            feed,
        };
        if let Err(e) = services.demo_policy(clock.now()).await {
            // Release the database, so the operator (or a host retrying) can open it.
            services.shutdown().await;
            return Err(e);
        }
        Ok(services)
    }

    /// Seeds the demo records on a loopback-only server; beyond loopback, seeds them only
    /// with `keep_demo`, and without it refuses to start if they exist. "Loopback-only"
    /// means a loopback public URL (so the issuer and redirect targets are local) and a
    /// loopback `bind` address (so no other machine can connect), which `crate::start` sets to
    /// the address actually bound; an embedding host must set `bind` itself.
    async fn demo_policy(&self, now: i64) -> Result<(), StartError> {
        let config = &self.settings.config;
        let beyond_loopback = !self.settings.loopback || !config.bind.ip().is_loopback();
        if !beyond_loopback || config.keep_demo {
            if config.demo {
                self.seed_demo(now).await?;
            }
            return Ok(());
        }
        // Not `Services::ask`: start-up is not a request, and seeding waits for a flush on a
        // machine that may be busy starting; a generous bound, and nothing to record.
        let timeout = SEEDING_TIMEOUT;
        let internal = |e: actix::MailboxError| RegistryError::Internal(e.to_string());
        let get = GetClient {
            client_id: DEMO_CLIENT_ID.into(),
        };
        let client = self
            .registry
            .send(get)
            .timeout(timeout)
            .await
            .map_err(internal)?;
        let users = self
            .registry
            .send(ListUsers)
            .timeout(timeout)
            .await
            .map_err(internal)?;
        if client.is_some() || users.iter().any(|u| u == DEMO_USERNAME) {
            return Err(StartError::DemoReachable(format!(
                "public URL {}, bind address {}",
                self.settings.issuer, config.bind
            )));
        }
        if config.demo {
            tracing::info!(
                "demo client and user not seeded: this server is reachable beyond loopback \
                 (--keep-demo seeds them anyway)"
            );
        }
        Ok(())
    }

    /// Inserts the demo client and user if absent; never overwrites later changes.
    async fn seed_demo(&self, now: i64) -> Result<(), StartError> {
        let settings = &self.settings;
        let client = Client {
            client_id: DEMO_CLIENT_ID.into(),
            secret_digest: Some(ClientSecret::new(DEMO_CLIENT_SECRET.into()).digest()),
            auth_method: AuthMethod::ClientSecretBasic,
            client_name: Some("Demo Client".into()),
            redirect_uris: vec![
                "http://localhost:8765/callback".into(),
                "http://127.0.0.1:8765/callback".into(),
            ],
            grant_types: vec![
                GrantType::AuthorizationCode,
                GrantType::RefreshToken,
                GrantType::ClientCredentials,
            ],
            scopes: settings.scopes.clone(),
            issued_at: now,
            extra: Default::default(),
            origin: ClientOrigin::Operator,
            used: true,
        };
        let timeout = SEEDING_TIMEOUT;
        self.registry
            .send(InsertClientIfAbsent { client })
            .timeout(timeout)
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))??;
        let user = User {
            username: DEMO_USERNAME.into(),
            password_hash: blocking_hash(DEMO_PASSWORD).await?,
        };
        self.registry
            .send(InsertUserIfAbsent { user })
            .timeout(timeout)
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))??;
        Ok(())
    }

    /// Sends `msg` to `addr` and waits at most the configured actor timeout: a full mailbox
    /// or a slow actor becomes `temporarily_unavailable` (503), never a hang. The wait is
    /// recorded in [`Services::metrics`]. The one way requests ask an actor; the few places
    /// that need another bound (start-up seeding, a client metadata document fetch, the MCP
    /// session bridge inside rmcp, `oauth-mcp admin`) use actix's `send(..).timeout(..)`
    /// directly and say why.
    pub async fn ask<A, M>(&self, addr: &Addr<A>, msg: M) -> Result<M::Result, Error>
    where
        A: Actor + actix::Handler<M> + Metered,
        A::Context: actix::dev::ToEnvelope<A, M>,
        M: actix::Message + Send + 'static,
        M::Result: Send,
    {
        let started = std::time::Instant::now();
        let answer = addr
            .send(msg)
            .timeout(self.settings.config.actor_timeout)
            .await;
        self.metrics.actor_wait(A::KIND, started.elapsed());
        Ok(answer?)
    }

    /// Whether the storage can serve requests: on PostgreSQL the database answers and its
    /// schema is in this build's range; sled is in the process, so it is ready once the
    /// services started. The error says why, without secrets.
    pub async fn ready(&self) -> Result<(), StorageError> {
        match &self.postgres {
            Some(stores) => stores.ready().await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Stops the actors, waits until they have dropped their stores, then flushes and stops
    /// the group-commit thread.
    pub async fn shutdown(&self) {
        if let Some(feed) = &self.feed {
            feed.abort();
        }
        let _ = self.registry.send(Stop).await;
        let _ = self.documents.send(Stop).await;
        let _ = self.codes.send(Stop).await;
        let _ = self.ledger.send(Stop).await;
        let _ = self.sessions.send(Stop).await;
        for _ in 0..200 {
            if !self.registry.connected()
                && !self.documents.connected()
                && !self.codes.connected()
                && !self.ledger.connected()
                && !self.sessions.connected()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        release(self.commit.clone(), self.postgres.clone()).await;
    }
}

/// Flushes and stops the group commit, and closes the PostgreSQL pool (running intents
/// finish, new ones fail).
async fn release(commit: Option<GroupCommit>, postgres: Option<PgStores>) {
    if let Some(commit) = commit {
        let _ = tokio::task::spawn_blocking(move || commit.shutdown()).await;
    }
    if let Some(stores) = postgres {
        stores.close();
    }
}

/// Values that layers above the services attach to one server, at most one per type, shared
/// by every clone of [`Services`] and so by every HTTP worker. The services never look
/// inside. The demo MCP server keeps its guestbook here: `crate::configure` runs once per
/// worker, and every worker must serve the same guestbook.
#[derive(Default)]
pub struct Attachments(Mutex<Vec<Box<dyn Any + Send>>>);

impl Attachments {
    /// The attached value of type `T`; attached first, from `init`, if there is none.
    pub fn get_or_insert_with<T: Any + Send + Clone>(&self, init: impl FnOnce() -> T) -> T {
        let mut values = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = values.iter().find_map(|v| v.downcast_ref::<T>()) {
            return value.clone();
        }
        let value = init();
        values.push(Box::new(value.clone()));
        value
    }
}

impl std::fmt::Debug for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attachments")
    }
}
