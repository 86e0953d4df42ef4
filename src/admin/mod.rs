//! Operator administration (`oauth-mcp admin`): add, list and remove clients; add users,
//! change their passwords, remove them; revoke every grant of a user or a client; export and
//! import a whole store (issue 14: live administration, moving from sled to PostgreSQL).
//!
//! Where it runs:
//! - **PostgreSQL** (`--database-url`): live, while any number of servers run on the
//!   database. [`Admin::open`] starts the same actors on the PostgreSQL stores
//!   ([`Services::start_postgres_with_key`]: no demo seeding, no sweep, a throw-away key, so
//!   no key file is needed or created). Every change goes through the store intents the
//!   servers use, which record it in the change feed; the running instances apply it within
//!   the feed's bound (and read a client or user they do not know through). Never raw SQL.
//! - **sled, no server running**: [`Admin::open`] opens the data directory (sled locks it, so
//!   it fails with [`AdminError::InUse`] while a server holds it) and starts the actors on it.
//! - **sled, server running**: the command goes to the server over its admin socket
//!   ([`socket`], Unix only, `<data-dir>/admin.sock`, mode 0600) and the server runs it on
//!   its own actors ([`Admin::attach`]).
//!
//! Policy stays in one place: every operation is a [`request::Request`] run by
//! [`request::apply`] on an [`Admin`], whichever way it came; client metadata goes through
//! the RFC 7591 registration rules ([`crate::oauth::registration::parse`]) and passwords
//! through the same Argon2id helper as the demo user ([`hash_password`]). Every change is
//! durable before the call returns; [`Admin::close`] stops the actors it started and
//! releases the storage. [`transfer`] copies a whole store (export / import), [`command`]
//! is the command-line front end.

pub mod command;
pub mod request;
#[cfg(unix)]
pub mod socket;
pub mod transfer;

use std::{path::PathBuf, sync::Arc, time::Duration};

use actix::{dev::ToEnvelope, Actor, Addr, Handler, Message};

use crate::{
    actors::{
        change_feed,
        client_registry::{
            hash_password, InsertUserIfAbsent, ListClients, ListUsers, RegisterClient,
            RegisteredClient, RegistryError, RemoveClient, RemoveUser, SetPassword,
        },
        code_issuer::{CodeError, DiscardCodesOf},
        token_ledger::{LedgerError, RevokeGrantsOf},
    },
    clock::Clock,
    config::{Config, Settings},
    domain::{
        client::{Client, ClientOrigin, User},
        grant::GrantHolder,
        secrets::Password,
        server_key::ServerKey,
    },
    oauth::registration,
    services::{Services, StartError},
    storage::{
        postgres::{self, PgStores},
        sled::open_db,
        StorageError,
    },
};

/// How long one administrative message may take. Generous: revoking walks the whole token
/// and code trees, and no request is waiting on the answer.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Longest accepted username and password, in bytes.
const MAX_NAME_BYTES: usize = 128;
const MAX_PASSWORD_BYTES: usize = 1024;

/// Why an administrative operation failed. The messages are written for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Another process (a running server, or another `admin` command) holds the database.
    #[error(
        "the data directory {0} is in use by a running oauth-mcp server (or another admin \
         command); stop it first"
    )]
    InUse(PathBuf),
    /// The data directory is in use by a running server, and its admin socket could not
    /// be used.
    #[error(
        "the data directory {} is in use by a running oauth-mcp server, and its admin socket \
         {} cannot be used ({reason}); stop the server first, or run admin as the user the \
         server runs as",
        dir.display(),
        socket.display()
    )]
    SocketUnavailable {
        /// The data directory.
        dir: PathBuf,
        /// The socket tried.
        socket: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// The running server refused or failed the request sent over its admin socket.
    #[error("{0}")]
    Remote(String),
    /// The data directory does not exist (it is not created, so a typo cannot start an
    /// empty database).
    #[error(
        "the data directory {0} does not exist (create it first to prepare a new installation)"
    )]
    NoDataDir(PathBuf),
    /// An argument is not acceptable (redirect URI, scope, grant type, name, password).
    #[error("{0}")]
    Invalid(String),
    /// No client has this id.
    #[error("no client with id {0}")]
    UnknownClient(String),
    /// No user has this name.
    #[error("no user named {0}")]
    UnknownUser(String),
    /// A user with this name exists already.
    #[error("a user named {0} exists already (change the password with `admin user passwd`)")]
    UserExists(String),
    /// The PostgreSQL database could not be reached or migrated, or its schema is outside
    /// this build's range. `target` names hosts and database only, never the password.
    #[error("PostgreSQL database {target}: {reason}")]
    Database {
        /// Hosts, ports and database name.
        target: String,
        /// What went wrong.
        reason: StorageError,
    },
    /// The actors could not be started (configuration, corrupt data).
    #[error(transparent)]
    Start(#[from] StartError),
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The client registry failed.
    #[error("client registry: {0}")]
    Registry(#[from] RegistryError),
    /// The token ledger failed.
    #[error("token ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The code issuer failed.
    #[error("code issuer: {0}")]
    Codes(#[from] CodeError),
    /// An actor did not answer.
    #[error("no answer from an actor: {0}")]
    Mailbox(#[from] actix::MailboxError),
    /// A blocking task (password hashing, the final flush) failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A client to create, as the operator describes it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSpec {
    /// Display name on the consent page.
    pub name: Option<String>,
    /// Redirect URIs (the RFC 7591 rules: https, or http on a loopback host).
    pub redirect_uris: Vec<String>,
    /// A public client (no secret, `token_endpoint_auth_method: none`).
    pub public: bool,
    /// `client_secret_post` instead of `client_secret_basic` (confidential clients only).
    pub secret_post: bool,
    /// Scopes; empty means the configured default scopes. Each entry may hold several,
    /// space-separated.
    pub scopes: Vec<String>,
    /// Grant type names; empty means `authorization_code` and `refresh_token`.
    pub grant_types: Vec<String>,
}

/// What a revocation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Grants revoked (each had at least one token that could still be used).
    pub grants: usize,
    /// Authorization codes issued but not yet redeemed, discarded.
    pub codes: usize,
}

/// The server's actors, on the storage `oauth-mcp admin` was pointed at: a sled data
/// directory no server holds ([`Admin::open`]), a PostgreSQL database that any number of
/// servers may be using ([`Admin::open`] with a database URL), or a running server's own
/// actors ([`Admin::attach`], for the admin socket).
pub struct Admin {
    services: Services,
    /// The server's settings with the operator's allowances (see [`Admin::open`]): what
    /// a new client's metadata is checked against.
    settings: Arc<Settings>,
    /// What [`Admin::close`] releases; `None` when attached to a running server's actors.
    owned: Option<Owned>,
}

/// The storage an [`Admin`] opened itself.
enum Owned {
    /// A sled directory, flushed and released at close.
    Sled(sled::Db),
    /// A PostgreSQL pool (closed by `Services::shutdown`).
    Postgres,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

/// Connections `admin` opens to PostgreSQL: one command at a time, and a revocation's
/// walk next to the registry's reads.
const POSTGRES_POOL_SIZE: usize = 2;

/// What the operator may do that dynamic registration may not: `config` as the server's,
/// with the allowances and start-up behaviour of administration.
fn operator_config(mut config: Config) -> Config {
    config.demo = false;
    // Removing the demo records is one of the things `admin` is for: never refuse.
    config.keep_demo = true;
    config.registered_client_credentials = true;
    config.durable = true;
    // No sweep from an administration process: the servers sweep (and an `admin` command
    // lives for seconds; the first tick of an interval comes only after it).
    config.sweep_interval = Duration::from_secs(24 * 3600);
    config
}

/// Connects to (and migrates, as a starting server would) the PostgreSQL database at `url`,
/// trusting the PEM `roots` (`--database-ca-file`) beside the bundled ones for its TLS.
/// Errors name the hosts and database, never the URL's password.
pub(crate) async fn connect_postgres(
    url: &str,
    roots: Option<Vec<u8>>,
) -> Result<PgStores, AdminError> {
    let parsed = postgres::parse_url(url)
        .map_err(|reason| AdminError::Database {
            target: "(--database-url)".into(),
            reason,
        })?
        .with_ca_pem(roots);
    let target = postgres::describe(&parsed);
    PgStores::connect_with(parsed, POSTGRES_POOL_SIZE)
        .await
        .map_err(|reason| AdminError::Database { target, reason })
}

impl Admin {
    /// Starts the actors, inside the current actix System, on the storage `config` names:
    /// the PostgreSQL database of `config.database_url` (live: servers may be running on
    /// it; every change goes through the same store intents as theirs, which let the
    /// running servers know), else the sled database in `config.data_dir`, which must
    /// exist and which no server may hold ([`AdminError::InUse`]; a running server is
    /// reached through its admin socket instead, see [`socket`]).
    ///
    /// `config` should carry the server's scopes and default scopes (they validate and fill
    /// in a new client's scopes). Demo seeding and sweeps are turned off, and clients
    /// created here may be given `client_credentials`: that restriction is for dynamic
    /// registration, and here the operator is the one registering.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Self, AdminError> {
        let config = operator_config(config);
        let settings = config
            .settings(config.bind.port())
            .map_err(StartError::from)?;
        if let Some(url) = &config.database_url {
            let stores = connect_postgres(url.as_str(), settings.database_roots.clone()).await?;
            // Administration issues no token and derives nothing: a key of its own, so no
            // key file is needed (or created).
            let Some(key) = ServerKey::generate() else {
                stores.close();
                return Err(AdminError::Internal("no randomness for a key".into()));
            };
            let services =
                Services::start_postgres_with_key(settings.clone(), &stores, clock, key).await;
            let services = match services {
                Ok(services) => services,
                Err(e) => {
                    stores.close();
                    return Err(e.into());
                }
            };
            return Ok(Self {
                services,
                settings: Arc::new(settings),
                owned: Some(Owned::Postgres),
            });
        }
        let dir = config.data_dir.clone();
        if !dir.is_dir() {
            return Err(AdminError::NoDataDir(dir));
        }
        let db = match open_db(&config) {
            Ok(db) => db,
            Err(StorageError::InUse(_)) => return Err(AdminError::InUse(dir)),
            Err(e) => return Err(e.into()),
        };
        let services = Services::start(settings.clone(), &db, clock).await?;
        Ok(Self {
            services,
            settings: Arc::new(settings),
            owned: Some(Owned::Sled(db)),
        })
    }

    /// Administration through a running server's own actors (its admin socket): the same
    /// operations, with the running server's scopes and the operator's allowances.
    /// [`close`](Self::close) then releases nothing.
    pub fn attach(services: &Services) -> Self {
        let mut settings = (*services.settings).clone();
        settings.config.registered_client_credentials = true;
        Self {
            services: services.clone(),
            settings: Arc::new(settings),
            owned: None,
        }
    }

    async fn ask<A, M>(&self, addr: &Addr<A>, msg: M) -> Result<M::Result, AdminError>
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        Ok(addr.send(msg).timeout(TIMEOUT).await?)
    }

    /// Registers a client; the answer holds the secret of a confidential client, which
    /// exists nowhere else (only its digest is stored).
    pub async fn add_client(&self, spec: &ClientSpec) -> Result<RegisteredClient, AdminError> {
        let client = registration::parse(&spec.to_metadata(), &self.settings)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        let msg = RegisterClient {
            client,
            address: None,
            origin: ClientOrigin::Operator,
        };
        Ok(self.ask(&self.services.registry, msg).await??)
    }

    /// Every registered client, oldest first.
    pub async fn clients(&self) -> Result<Vec<Client>, AdminError> {
        self.ask(&self.services.registry, ListClients).await
    }

    /// Removes a client, then revokes its grants and discards its unused codes.
    pub async fn remove_client(&self, client_id: &str) -> Result<Revoked, AdminError> {
        let msg = RemoveClient {
            client_id: client_id.to_owned(),
        };
        if !self.ask(&self.services.registry, msg).await?? {
            return Err(AdminError::UnknownClient(client_id.to_owned()));
        }
        self.revoke_after_removal(GrantHolder::Client(client_id.to_owned()))
            .await
    }

    /// Every username, in order.
    pub async fn users(&self) -> Result<Vec<String>, AdminError> {
        self.ask(&self.services.registry, ListUsers).await
    }

    /// Adds a user; fails if the name is taken.
    pub async fn add_user(&self, username: &str, password: &Password) -> Result<(), AdminError> {
        check_username(username)?;
        let user = User {
            username: username.to_owned(),
            password_hash: hash(password).await?,
        };
        if !self
            .ask(&self.services.registry, InsertUserIfAbsent { user })
            .await??
        {
            return Err(AdminError::UserExists(username.to_owned()));
        }
        Ok(())
    }

    /// Replaces a user's password. Existing grants stay valid (see [`Admin::revoke`]).
    pub async fn set_password(
        &self,
        username: &str,
        password: &Password,
    ) -> Result<(), AdminError> {
        let msg = SetPassword {
            username: username.to_owned(),
            password_hash: hash(password).await?,
        };
        if !self.ask(&self.services.registry, msg).await?? {
            return Err(AdminError::UnknownUser(username.to_owned()));
        }
        Ok(())
    }

    /// Removes a user, then revokes their grants and discards their unused codes, so a
    /// later user of the same name inherits nothing.
    pub async fn remove_user(&self, username: &str) -> Result<Revoked, AdminError> {
        let msg = RemoveUser {
            username: username.to_owned(),
        };
        if !self.ask(&self.services.registry, msg).await?? {
            return Err(AdminError::UnknownUser(username.to_owned()));
        }
        self.revoke_after_removal(GrantHolder::Subject(username.to_owned()))
            .await
    }

    /// [`Admin::revoke`] after a removal. On PostgreSQL, once more when every instance must
    /// have learnt of the removal (twice the change feed's bound): until then another
    /// instance may still have authenticated the client or user from its index and issued
    /// a code or a token into a new grant, which the first walk could not see.
    async fn revoke_after_removal(&self, holder: GrantHolder) -> Result<Revoked, AdminError> {
        let first = self.revoke(holder.clone()).await?;
        if !matches!(self.owned, Some(Owned::Postgres)) {
            return Ok(first);
        }
        tokio::time::sleep(2 * change_feed::BOUND).await;
        let second = self.revoke(holder).await?;
        Ok(Revoked {
            grants: first.grants + second.grants,
            codes: first.codes + second.codes,
        })
    }

    /// Revokes every grant of a user or client: their access and refresh tokens stop
    /// validating, and their codes not yet exchanged are discarded. Works whether or not the
    /// user or client still exists. Durable when it returns.
    pub async fn revoke(&self, holder: GrantHolder) -> Result<Revoked, AdminError> {
        let codes = DiscardCodesOf {
            holder: holder.clone(),
        };
        let codes = self.ask(&self.services.codes, codes).await?.wait().await?;
        let grants = RevokeGrantsOf { holder };
        let grants = self
            .ask(&self.services.ledger, grants)
            .await?
            .wait()
            .await?;
        Ok(Revoked { grants, codes })
    }

    /// Stops the actors and releases the storage (flushes and frees a sled directory,
    /// closes a PostgreSQL pool). Attached to a running server ([`Admin::attach`]), does
    /// nothing: the server's actors are its own.
    pub async fn close(self) -> Result<(), AdminError> {
        let Self {
            services, owned, ..
        } = self;
        let Some(owned) = owned else {
            return Ok(());
        };
        services.shutdown().await;
        drop(services);
        if let Owned::Sled(db) = owned {
            tokio::task::spawn_blocking(move || db.flush())
                .await
                .map_err(|e| AdminError::Internal(e.to_string()))?
                .map_err(StorageError::from)?;
        }
        Ok(())
    }
}

impl ClientSpec {
    /// The RFC 7591 metadata document this describes, for the registration rules.
    fn to_metadata(&self) -> Vec<u8> {
        let mut doc = serde_json::Map::new();
        doc.insert("redirect_uris".into(), self.redirect_uris.clone().into());
        if let Some(name) = &self.name {
            doc.insert("client_name".into(), name.clone().into());
        }
        let method = match (self.public, self.secret_post) {
            (true, _) => "none",
            (false, true) => "client_secret_post",
            (false, false) => "client_secret_basic",
        };
        doc.insert("token_endpoint_auth_method".into(), method.into());
        if !self.scopes.is_empty() {
            doc.insert("scope".into(), self.scopes.join(" ").into());
        }
        if !self.grant_types.is_empty() {
            doc.insert("grant_types".into(), self.grant_types.clone().into());
        }
        serde_json::Value::Object(doc).to_string().into_bytes()
    }
}

/// Usernames are typed into the login form and become token subjects: printable, no
/// whitespace, bounded.
fn check_username(name: &str) -> Result<(), AdminError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(AdminError::Invalid(format!(
            "a username has 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AdminError::Invalid(
            "a username has no spaces or control characters".into(),
        ));
    }
    Ok(())
}

/// Argon2id on the blocking pool, as for the demo user.
async fn hash(password: &Password) -> Result<String, AdminError> {
    let secret = password.secret();
    if secret.is_empty() || secret.len() > MAX_PASSWORD_BYTES {
        return Err(AdminError::Invalid(format!(
            "a password has 1 to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let password = password.clone();
    tokio::task::spawn_blocking(move || hash_password(password.secret()))
        .await
        .map_err(|e| AdminError::Internal(e.to_string()))?
        .map_err(AdminError::from)
}
