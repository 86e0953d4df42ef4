//! The client registry: owns registered clients and user accounts (trees `oauth.clients.v1`
//! and `oauth.users.v1`), the login throttle and the registration rate limit.
//!
//! Users live here rather than in an actor of their own because both are principals that
//! authenticate, and both change rarely: one small in-memory index serves every lookup.
//! Implements client authentication (OAuth 2.1 §2.4), dynamic registration (RFC 7591) and
//! resource-owner login with throttling (OAuth 2.1 §7, RFC 9700 §4.x brute force).
//!
//! The login throttle counts an attempt when it starts, before the password is checked,
//! so concurrent guesses cannot all pass the check before the first failure lands; it
//! counts every submitted name alike, known or not, so a lockout says nothing about which
//! accounts exist; and it counts addresses by [`address_key`] (IPv6 by /64). Password
//! checks run under one server-wide bound ([`Settings::password_hash_concurrency`]); a
//! check that finds it full is refused at once, not queued.
//!
//! It also owns the clients named by client ID metadata documents (MCP 2025-11-25,
//! draft-ietf-oauth-client-id-metadata-document): never stored, cached in memory for as long
//! as each document's HTTP cache headers allow, fetched through [`crate::fetch`] by a
//! future spawned beside the actor so that a slow document host never holds up the
//! registry's other messages. Past its freshness the last good copy of a document stands in
//! for a bounded time when a refetch fails for a transient reason or no fetch slot is free
//! ([`client_document::cache_policy`] says how long; a deliberate answer such as an invalid
//! document or a 410 ends it at once), and a failed fetch is remembered for
//! [`DOCUMENT_FAILURE_TTL_SECS`] so that requests naming a broken document do not each
//! fetch it again (the draft's §4.4 lets the server cache as it sees fit and §4.3 lets error
//! responses inform its policies).

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Semaphore;

use super::{Stop, Sweep};
use crate::{
    config::Settings,
    domain::{
        client::{AuthMethod, Client, ClientOrigin, User},
        client_address::address_key,
        clock::Clock,
        secrets::{random_bytes, ClientSecret, Digest, Password},
    },
    fetch::DocumentFetcher,
    metrics::{ActorKind, DocumentFetch, Metered, Metrics},
    oauth::client_document::{self, ClientDocumentError},
    storage::{ClientStore, StorageError},
};

/// Registry failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Unknown client, wrong or missing secret.
    #[error("client authentication failed")]
    InvalidClient,
    /// `max_registered_clients` dynamically registered clients exist already.
    #[error("the client registry is full")]
    Full,
    /// Too many registrations from one address.
    #[error("registration rate limit reached")]
    RateLimited {
        /// Seconds until another registration is accepted.
        retry_after: u64,
    },
    /// Unknown user or wrong password.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failed logins for this user or address.
    #[error("too many failed logins")]
    LoginThrottled {
        /// Seconds until the lockout ends.
        retry_after: u64,
    },
    /// Every password-check slot is taken; nothing was checked or counted.
    #[error("too many password checks in progress")]
    PasswordCheckBusy {
        /// Seconds to wait before trying again.
        retry_after: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Something that should not happen (password hashing failed, a task panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

pub use crate::domain::client::{NewClient, RegisteredClient};

/// Registers a client (RFC 7591). The registry mints `client_id` and secret.
/// Dynamically registered clients count against `max_registered_clients`.
#[derive(Debug, Message)]
#[rtype(result = "Result<RegisteredClient, RegistryError>")]
pub struct RegisterClient {
    /// The validated metadata.
    pub client: NewClient,
    /// Address of the caller, for the per-address rate limit.
    pub address: Option<IpAddr>,
    /// [`ClientOrigin::Dynamic`] at `/register`, [`ClientOrigin::Operator`] from
    /// `oauth-mcp admin`.
    pub origin: ClientOrigin,
}

/// Records that a token is about to be issued to a client, so that it is never removed as
/// unused. Sent by the token flow before the first issuance only (when the client it
/// authenticated is not yet marked), and durable before it answers. Answers whether the
/// client still exists: a client removed meanwhile must not be issued tokens.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct MarkClientUsed {
    /// The client id.
    pub client_id: String,
}

/// Inserts a client with a chosen id and secret unless one with that id exists (demo
/// seeding, administration). Returns whether it was inserted.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct InsertClientIfAbsent {
    /// The client, with `secret_digest` already set for confidential clients.
    pub client: Client,
}

/// Inserts a user unless one with that name exists. Returns whether it was inserted.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct InsertUserIfAbsent {
    /// The user, with an Argon2id hash.
    pub user: User,
}

/// Looks up a client by id (for /authorize, which must not redirect to unknown clients).
#[derive(Debug, Message)]
#[rtype(result = "Option<Client>")]
pub struct GetClient {
    /// The client id.
    pub client_id: String,
}

/// Authenticates a client at the token, revocation or introspection endpoint.
#[derive(Debug, Message)]
#[rtype(result = "Result<Client, RegistryError>")]
pub struct AuthenticateClient {
    /// The presented client id.
    pub client_id: String,
    /// The presented secret; `None` for the `none` method.
    pub secret: Option<ClientSecret>,
}

/// Verifies a user's password (Argon2id, off the actor and worker threads), subject to the
/// per-user and per-address throttle. Answers the username on success.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, RegistryError>")]
pub struct AuthenticateUser {
    /// Username typed into the form.
    pub username: String,
    /// Password typed into the form.
    pub password: Password,
    /// Client address, for the per-address throttle.
    pub address: Option<IpAddr>,
}

/// Starts a browser sign-in session for a user who just signed in with their password,
/// so later authorization requests from the same browser only ask for consent. Answers the
/// cookie value (256 random bits; only its digest is kept).
#[derive(Debug, Message)]
#[rtype(result = "String")]
pub struct StartLoginSession {
    /// The signed-in user.
    pub subject: String,
}

/// Resolves a sign-in session cookie to its user, if the session is still valid.
#[derive(Debug, Message)]
#[rtype(result = "Option<String>")]
pub struct ResolveLoginSession {
    /// The cookie value.
    pub token: String,
}

/// Every registered client, ordered by registration time then id (administration).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Client>")]
pub struct ListClients;

/// Every username, in order (administration).
#[derive(Debug, Message)]
#[rtype(result = "Vec<String>")]
pub struct ListUsers;

/// Removes a client: it can no longer authenticate or start an authorization request.
/// Answers whether it existed. Its grants are the token ledger's to revoke
/// (`RevokeGrantsOf`), which the caller does next.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct RemoveClient {
    /// The client id.
    pub client_id: String,
}

/// Replaces a user's password hash, ends the user's browser sign-in sessions and clears
/// their failed-login count. Answers whether the user exists (nothing changes if not).
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct SetPassword {
    /// The user.
    pub username: String,
    /// The new Argon2id hash (see [`hash_password`]).
    pub password_hash: String,
}

/// Removes a user and ends their browser sign-in sessions. Answers whether the user
/// existed. Their grants are the token ledger's to revoke (`RevokeGrantsOf`).
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct RemoveUser {
    /// The user.
    pub username: String,
}

/// The client a client ID metadata document URL describes: from the registry's cache while
/// the document is fresh, otherwise fetched, validated and cached for as long as its HTTP
/// cache headers allow. Concurrent requests for one URL share a single fetch.
#[derive(Debug, Message)]
#[rtype(result = "Result<Client, ClientDocumentError>")]
pub struct ResolveClientDocument {
    /// The `client_id`, a URL.
    pub url: String,
}

/// Most client metadata documents cached at once (and, separately, most failures
/// remembered); beyond this, unusable entries are dropped and, if none are, a new one is
/// not cached.
const MAX_CACHED_DOCUMENTS: usize = 10_000;

/// How long a failed document fetch is remembered (answered again without fetching).
pub const DOCUMENT_FAILURE_TTL_SECS: i64 = 30;

/// A fetch in flight: the validated client and how it may be cached (`None`: `no-store`).
type PendingDocument = Shared<
    BoxFuture<'static, Result<(Client, Option<client_document::CachePolicy>), ClientDocumentError>>,
>;

/// A document client and until when (Unix seconds) it is fresh, and usable as the last
/// good copy when a refetch fails.
#[derive(Debug, Clone)]
struct CachedDocument {
    client: Client,
    fresh_until: i64,
    stale_until: i64,
}

/// Clients described by metadata documents: not stored, only cached (a restart fetches
/// them again), and never mixed with registered clients.
#[derive(Default)]
struct DocumentCache {
    /// URL → the last good document.
    fresh: HashMap<String, CachedDocument>,
    /// URL → the failure of its last fetch, and until when it is answered from here.
    failures: HashMap<String, (ClientDocumentError, i64)>,
    in_flight: HashMap<String, PendingDocument>,
}

impl DocumentCache {
    fn insert(&mut self, url: String, doc: CachedDocument, now: i64) {
        if self.fresh.len() >= MAX_CACHED_DOCUMENTS {
            self.fresh.retain(|_, d| d.stale_until > now);
        }
        if self.fresh.len() < MAX_CACHED_DOCUMENTS {
            self.fresh.insert(url, doc);
        }
    }

    fn remember_failure(&mut self, url: String, error: ClientDocumentError, now: i64) {
        if self.failures.len() >= MAX_CACHED_DOCUMENTS {
            self.failures.retain(|_, (_, until)| *until > now);
        }
        if self.failures.len() < MAX_CACHED_DOCUMENTS {
            let until = now.saturating_add(DOCUMENT_FAILURE_TTL_SECS);
            self.failures.insert(url, (error, until));
        }
    }

    /// Records the outcome of the fetch of `url` started at `now`.
    fn record(
        &mut self,
        url: &str,
        result: &Result<(Client, Option<client_document::CachePolicy>), ClientDocumentError>,
        now: i64,
    ) {
        match result {
            Ok((client, policy)) => {
                self.failures.remove(url);
                let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match policy {
                    Some(p) if !(p.fresh.is_zero() && p.stale.is_zero()) => {
                        let fresh_until = now.saturating_add(secs(p.fresh));
                        let doc = CachedDocument {
                            client: client.clone(),
                            fresh_until,
                            stale_until: fresh_until.saturating_add(secs(p.stale)),
                        };
                        self.insert(url.to_owned(), doc, now);
                    }
                    // `no-store`, or nothing to keep: not even the previous copy is kept.
                    _ => {
                        self.fresh.remove(url);
                    }
                }
            }
            // Our own limits, not the document's fault: nothing to remember.
            Err(ClientDocumentError::Busy) => {}
            // The URL is checked before any fetch, and that is cheap: not remembered.
            Err(ClientDocumentError::Url(_) | ClientDocumentError::Untrusted) => {}
            // The host may recover: remember the failure, keep the last good copy.
            Err(e @ ClientDocumentError::Unavailable(_)) => {
                self.remember_failure(url.to_owned(), e.clone(), now);
            }
            // A deliberate answer (invalid document, refused status, blocked address): the
            // last good copy is no longer the client's word.
            Err(e) => {
                self.fresh.remove(url);
                self.remember_failure(url.to_owned(), e.clone(), now);
            }
        }
    }

    /// The last good copy of `url`, if it may stand in for a fetch that failed with
    /// `error` at `now`.
    fn stale(&self, url: &str, error: &ClientDocumentError, now: i64) -> Option<Client> {
        let transient = matches!(
            error,
            ClientDocumentError::Unavailable(_) | ClientDocumentError::Busy
        );
        let doc = self.fresh.get(url).filter(|d| d.stale_until > now)?;
        transient.then(|| doc.client.clone())
    }
}

/// Fetches and validates one document (draft-ietf-oauth-client-id-metadata-document §4).
async fn fetch_document(
    fetcher: Arc<DocumentFetcher>,
    settings: Arc<Settings>,
    metrics: Option<Arc<Metrics>>,
    url: String,
    now: i64,
) -> Result<(Client, Option<client_document::CachePolicy>), ClientDocumentError> {
    let result = async {
        let parsed = client_document::document_url(&url, fetcher.allows_http())?;
        if !client_document::host_trusted(&parsed, &settings.config.client_metadata_trusted_hosts) {
            return Err(ClientDocumentError::Untrusted);
        }
        let fetched = fetcher.fetch(&parsed).await?;
        let client = client_document::parse_document(&url, &fetched.body, &settings, now)?;
        let cache_control: Vec<&str> = fetched.cache_control.iter().map(String::as_str).collect();
        let policy = client_document::cache_policy(
            &cache_control,
            fetched.expires.as_deref(),
            fetched.date.as_deref(),
            fetched.age.as_deref(),
            chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
            settings.config.client_metadata_max_cache,
            settings.config.client_metadata_stale_if_error,
        );
        Ok((client, policy))
    }
    .await;
    let outcome = match &result {
        Ok(_) => Some(DocumentFetch::Accepted),
        Err(ClientDocumentError::Invalid(_)) => Some(DocumentFetch::Invalid),
        Err(ClientDocumentError::Blocked) => Some(DocumentFetch::Blocked),
        Err(ClientDocumentError::Fetch(_) | ClientDocumentError::Unavailable(_)) => {
            Some(DocumentFetch::Failed)
        }
        Err(ClientDocumentError::Busy) => Some(DocumentFetch::Busy),
        // A URL that breaks the rules is never fetched.
        Err(ClientDocumentError::Url(_) | ClientDocumentError::Untrusted) => None,
    };
    if let (Some(metrics), Some(outcome)) = (&metrics, outcome) {
        metrics.document_fetched(outcome);
    }
    match &result {
        // `?url`: the client_id is whatever the request said, so it is logged escaped.
        Ok((_, policy)) => tracing::debug!(
            client_id = ?url,
            cached_for_secs = policy.map_or(0, |p| p.fresh.as_secs()),
            "client metadata document fetched"
        ),
        Err(e) => tracing::info!(client_id = ?url, error = %e, "client metadata document refused"),
    }
    result
}

/// Most unused clients removed per sweep tick, so a sweep never holds the registry long.
const MAX_REMOVALS_PER_SWEEP: usize = 256;

/// Most browser sign-in sessions kept at once; the oldest are dropped beyond this.
const MAX_LOGIN_SESSIONS: usize = 100_000;

/// Most names and addresses the login throttle tracks at once (each entry is a few dozen
/// bytes: names are kept as digests). Beyond this, expired windows are dropped first, then
/// windows of names that are not accounts, so a flood of invented names cannot push a real
/// account's count out.
const MAX_THROTTLE_ENTRIES: usize = 100_000;

/// `Retry-After` seconds when every password-check slot is taken: one check takes tens of
/// milliseconds, so a second is plenty.
const PASSWORD_CHECK_RETRY_SECS: u64 = 1;

/// The login throttle's count for one submitted username.
#[derive(Debug, Clone, Copy)]
struct NameWindow {
    window: Window,
    /// The name was an account when last counted (eviction spares these).
    known: bool,
}

/// A fixed-window counter used by the throttles.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: i64,
    count: u32,
}

impl Window {
    /// Count in the current window, restarting it when `len` has passed.
    fn current(entry: Option<&Window>, now: i64, len: i64) -> Window {
        match entry {
            Some(w) if now - w.started < len => *w,
            _ => Window {
                started: now,
                count: 0,
            },
        }
    }
}

/// Makes room for `key` in a throttle map holding `cap` entries at most: when it is new and
/// the map is full, entries that are no longer `live` go first, then one that is
/// `evictable` (any one, if none is).
fn make_room<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    cap: usize,
    live: impl Fn(&V) -> bool,
    evictable: impl Fn(&V) -> bool,
) {
    if map.contains_key(key) || map.len() < cap {
        return;
    }
    map.retain(|_, v| live(v));
    if map.len() >= cap {
        let victim = map
            .iter()
            .find(|(_, v)| evictable(v))
            .or_else(|| map.iter().next())
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            map.remove(&k);
        }
    }
}

/// Hashes a password with Argon2id and a random salt. Blocking: call from a blocking task.
pub fn hash_password(password: &str) -> Result<String, RegistryError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The client registry actor.
pub struct ClientRegistry {
    store: Box<dyn ClientStore>,
    clients: HashMap<String, Client>,
    users: HashMap<String, User>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    /// Verified against when the user is unknown, so timing does not reveal which names exist.
    dummy_hash: Arc<str>,
    /// Login attempts (started, and not ended by a success) per submitted username, keyed
    /// by the name's digest: unknown names are counted exactly like accounts.
    user_failures: HashMap<Digest, NameWindow>,
    /// Login attempts per client address key ([`address_key`]).
    address_failures: HashMap<IpAddr, Window>,
    /// The server-wide bound on concurrent password checks.
    password_checks: Arc<Semaphore>,
    registrations: HashMap<IpAddr, Window>,
    /// Browser sign-in sessions: digest of the cookie → (user, expiry). In memory: a restart
    /// signs everyone out, which is the safe direction.
    login_sessions: HashMap<Digest, (String, i64)>,
    /// Dynamically registered clients never issued a token, by registration time: the
    /// expiry index of the unused-client sweep.
    unused: BTreeSet<(i64, String)>,
    /// How many dynamically registered clients exist (`max_registered_clients` bounds it).
    dynamic_clients: usize,
    /// Clients named by metadata document URLs.
    documents: DocumentCache,
    fetcher: Arc<DocumentFetcher>,
    /// Where document fetches are counted, when the server keeps metrics.
    metrics: Option<Arc<Metrics>>,
}

impl ClientRegistry {
    /// Loads every client and user from `store`. `dummy_hash` is any Argon2id hash with the
    /// production parameters (see [`hash_password`]).
    pub fn new(
        store: Box<dyn ClientStore>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        dummy_hash: String,
    ) -> Result<Self, StorageError> {
        let (clients, users) = store.load()?;
        let fetcher = Arc::new(DocumentFetcher::new(&settings.config));
        let dynamic = clients.iter().filter(|c| c.origin == ClientOrigin::Dynamic);
        let dynamic_clients = dynamic.clone().count();
        let unused = dynamic
            .filter(|c| !c.used)
            .map(|c| (c.issued_at, c.client_id.clone()))
            .collect();
        let password_checks = Arc::new(Semaphore::new(settings.password_hash_concurrency.max(1)));
        Ok(Self {
            fetcher,
            password_checks,
            store,
            unused,
            dynamic_clients,
            clients: clients
                .into_iter()
                .map(|c| (c.client_id.clone(), c))
                .collect(),
            users: users.into_iter().map(|u| (u.username.clone(), u)).collect(),
            settings,
            clock,
            dummy_hash: dummy_hash.into(),
            user_failures: HashMap::new(),
            address_failures: HashMap::new(),
            registrations: HashMap::new(),
            login_sessions: HashMap::new(),
            documents: DocumentCache::default(),
            metrics: None,
        })
    }

    /// Shares `checks` as the bound on concurrent password checks (instead of a private one
    /// of [`Settings::password_hash_concurrency`] slots), so its owner can see or hold it.
    pub fn with_password_checks(mut self, checks: Arc<Semaphore>) -> Self {
        self.password_checks = checks;
        self
    }

    /// Counts document fetches in `metrics` (served at `GET /metrics`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn lockout_secs(&self) -> i64 {
        i64::try_from(self.settings.config.login_lockout.as_secs()).unwrap_or(i64::MAX)
    }

    /// Seconds left on a lockout, if the name or address is locked out.
    fn throttled(&self, name: &Digest, address: Option<IpAddr>) -> Option<u64> {
        let now = self.clock.now();
        let len = self.lockout_secs();
        let cfg = &self.settings.config;
        let user = Window::current(self.user_failures.get(name).map(|n| &n.window), now, len);
        let addr = address.map(|a| Window::current(self.address_failures.get(&a), now, len));
        let mut wait = None;
        if user.count >= cfg.login_max_failures_per_user {
            wait = Some(user.started + len - now);
        }
        if let Some(a) = addr {
            if a.count >= cfg.login_max_failures_per_address {
                wait = Some(wait.unwrap_or(0).max(a.started + len - now));
            }
        }
        wait.map(|w| u64::try_from(w.max(1)).unwrap_or(1))
    }

    /// Counts a login attempt that is about to check a password, before it does: the
    /// attempt is a failure until it succeeds ([`Self::release_attempt`]). Answers the
    /// address window's start, to release the right window.
    fn reserve_attempt(&mut self, name: Digest, known: bool, address: Option<IpAddr>) -> i64 {
        let now = self.clock.now();
        let len = self.lockout_secs();
        let live = |w: &Window| now - w.started < len;
        make_room(
            &mut self.user_failures,
            &name,
            MAX_THROTTLE_ENTRIES,
            |n| live(&n.window),
            |n| !n.known,
        );
        let mut w = Window::current(self.user_failures.get(&name).map(|n| &n.window), now, len);
        w.count = w.count.saturating_add(1);
        self.user_failures
            .insert(name, NameWindow { window: w, known });
        let Some(a) = address else {
            return now;
        };
        make_room(
            &mut self.address_failures,
            &a,
            MAX_THROTTLE_ENTRIES,
            live,
            |_| true,
        );
        let mut w = Window::current(self.address_failures.get(&a), now, len);
        w.count = w.count.saturating_add(1);
        self.address_failures.insert(a, w);
        w.started
    }

    /// A reserved attempt succeeded: the name's count is cleared (as a successful login
    /// always did) and the address gets its attempt back.
    fn release_attempt(&mut self, name: &Digest, address: Option<IpAddr>, started: i64) {
        self.user_failures.remove(name);
        if let Some(w) = address.and_then(|a| self.address_failures.get_mut(&a)) {
            if w.started == started {
                w.count = w.count.saturating_sub(1);
            }
        }
    }

    /// Forgets every browser sign-in session of `username`.
    fn end_login_sessions_of(&mut self, username: &str) {
        self.login_sessions
            .retain(|_, (subject, _)| subject != username);
    }

    /// Answers `value` once the writes made so far are on disk.
    fn after_persist<T: Send + 'static>(
        &self,
        value: T,
    ) -> ResponseFuture<Result<T, RegistryError>> {
        let persist = self.store.persist();
        Box::pin(async move {
            persist.await?;
            Ok(value)
        })
    }

    /// Forgets `client_id` in the in-memory index and its bookkeeping (the store is the
    /// caller's to update).
    fn forget_client(&mut self, client_id: &str) -> Option<Client> {
        let client = self.clients.remove(client_id)?;
        if client.origin == ClientOrigin::Dynamic {
            self.dynamic_clients = self.dynamic_clients.saturating_sub(1);
            self.unused
                .remove(&(client.issued_at, client.client_id.clone()));
        }
        Some(client)
    }

    /// Removes dynamically registered clients that were never issued a token within
    /// `unused_client_ttl` of their registration, oldest first and at most
    /// [`MAX_REMOVALS_PER_SWEEP`] per call; the rest wait for the next tick. Answers how
    /// many were removed; the removals are made durable by the caller.
    fn sweep_unused_clients(&mut self) -> Result<usize, StorageError> {
        let ttl = self.settings.config.unused_client_ttl;
        let cutoff = self
            .clock
            .now()
            .saturating_sub(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let expired: Vec<String> = self
            .unused
            .iter()
            .take_while(|(issued_at, _)| *issued_at <= cutoff)
            .take(MAX_REMOVALS_PER_SWEEP)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &expired {
            self.store.remove_client(id)?;
            self.forget_client(id);
        }
        if !expired.is_empty() {
            tracing::info!(
                removed = expired.len(),
                "removed dynamically registered clients never issued a token"
            );
        }
        Ok(expired.len())
    }

    fn prune_windows(&mut self) {
        let now = self.clock.now();
        let len = self.lockout_secs();
        self.user_failures
            .retain(|_, n| now - n.window.started < len);
        self.address_failures.retain(|_, w| now - w.started < len);
        self.registrations.retain(|_, w| now - w.started < 3600);
        self.login_sessions.retain(|_, (_, exp)| *exp > now);
        self.documents.fresh.retain(|_, d| d.stale_until > now);
        self.documents.failures.retain(|_, (_, until)| *until > now);
    }
}

impl Metered for ClientRegistry {
    const KIND: ActorKind = ActorKind::Registry;
}

impl Actor for ClientRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.config.mailbox_capacity);
        ctx.run_interval(self.settings.config.sweep_interval, |act, ctx| {
            act.prune_windows();
            match act.sweep_unused_clients() {
                Ok(0) => {}
                Ok(_) => {
                    let persist = act.store.persist();
                    ctx.spawn(
                        async move {
                            if let Err(e) = persist.await {
                                tracing::error!(error = %e, "could not persist the removal of unused clients");
                            }
                        }
                        .into_actor(act),
                    );
                }
                Err(e) => tracing::error!(error = %e, "could not remove unused clients"),
            }
        });
    }
}

impl Handler<Stop> for ClientRegistry {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Sweep> for ClientRegistry {
    type Result = ResponseFuture<Result<usize, StorageError>>;
    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        self.prune_windows();
        let removed = match self.sweep_unused_clients() {
            Ok(n) => n,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let persist = self.store.persist();
        Box::pin(async move {
            persist.await?;
            Ok(removed)
        })
    }
}

impl Handler<MarkClientUsed> for ClientRegistry {
    type Result = ResponseFuture<Result<bool, RegistryError>>;
    fn handle(&mut self, msg: MarkClientUsed, _: &mut Self::Context) -> Self::Result {
        let Some(client) = self.clients.get_mut(&msg.client_id) else {
            return Box::pin(async { Ok(false) });
        };
        if client.used {
            return Box::pin(async { Ok(true) });
        }
        let mut marked = client.clone();
        marked.used = true;
        if let Err(e) = self.store.put_client(&marked) {
            return Box::pin(async move { Err(e.into()) });
        }
        self.unused
            .remove(&(marked.issued_at, marked.client_id.clone()));
        *client = marked;
        self.after_persist(true)
    }
}

impl Handler<GetClient> for ClientRegistry {
    type Result = Option<Client>;
    fn handle(&mut self, msg: GetClient, _: &mut Self::Context) -> Self::Result {
        self.clients.get(&msg.client_id).cloned()
    }
}

impl Handler<ResolveClientDocument> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<Client, ClientDocumentError>>;
    fn handle(&mut self, msg: ResolveClientDocument, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let url = msg.url;
        if let Some(doc) = self.documents.fresh.get(&url) {
            if doc.fresh_until > now {
                return Box::pin(fut::ready(Ok(doc.client.clone())));
            }
        }
        // A recent failure is answered without fetching again, by the last good copy when
        // it may stand in.
        if let Some((error, until)) = self.documents.failures.get(&url) {
            if *until > now {
                let answer = self.documents.stale(&url, error, now).ok_or(error.clone());
                return Box::pin(fut::ready(answer));
            }
        }
        let pending = match self.documents.in_flight.get(&url) {
            Some(p) => p.clone(),
            None => {
                let p = fetch_document(
                    self.fetcher.clone(),
                    self.settings.clone(),
                    self.metrics.clone(),
                    url.clone(),
                    now,
                )
                .boxed()
                .shared();
                self.documents.in_flight.insert(url.clone(), p.clone());
                p
            }
        };
        let this = pending.clone();
        // The fetch runs beside the actor (a spawned actor future), so the registry keeps
        // answering other messages meanwhile; only the first waiter to finish records the
        // outcome, and every waiter may be answered by the last good copy.
        Box::pin(pending.into_actor(self).map(move |result, act, _| {
            let first = act
                .documents
                .in_flight
                .get(&url)
                .is_some_and(|p| p.ptr_eq(&this));
            if first {
                act.documents.in_flight.remove(&url);
                act.documents.record(&url, &result, now);
            }
            match result {
                Ok((client, _)) => Ok(client),
                Err(e) => match act.documents.stale(&url, &e, now) {
                    Some(client) => {
                        if first {
                            // Once per failed fetch, not per request served meanwhile.
                            tracing::warn!(
                                client_id = ?url,
                                error = %e,
                                "client metadata document not refetched, its last good copy is used"
                            );
                        }
                        Ok(client)
                    }
                    None => Err(e),
                },
            }
        }))
    }
}

impl Handler<AuthenticateClient> for ClientRegistry {
    type Result = Result<Client, RegistryError>;
    fn handle(&mut self, msg: AuthenticateClient, _: &mut Self::Context) -> Self::Result {
        let client = self.clients.get(&msg.client_id);
        match (client, msg.secret) {
            (Some(c), None) if c.auth_method == AuthMethod::None => Ok(c.clone()),
            (Some(c), Some(secret)) => {
                // Server-minted secrets are 256 random bits, so SHA-256 at rest is enough and
                // keeps authentication cheap; the comparison is constant time.
                let presented = secret.digest();
                match &c.secret_digest {
                    Some(stored) if stored.ct_eq(&presented) => Ok(c.clone()),
                    _ => Err(RegistryError::InvalidClient),
                }
            }
            (None, Some(secret)) => {
                // Same work as for a known client, so timing does not reveal which ids exist.
                let _ = Digest([0; 32]).ct_eq(&secret.digest());
                Err(RegistryError::InvalidClient)
            }
            _ => Err(RegistryError::InvalidClient),
        }
    }
}

impl Handler<RegisterClient> for ClientRegistry {
    type Result = ResponseFuture<Result<RegisteredClient, RegistryError>>;
    fn handle(&mut self, msg: RegisterClient, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let dynamic = msg.origin == ClientOrigin::Dynamic;
        // Checked before the rate limit counts the attempt: a full registry is not the
        // caller's doing.
        if dynamic && self.dynamic_clients >= self.settings.config.max_registered_clients {
            return Box::pin(async { Err(RegistryError::Full) });
        }
        if let Some(addr) = msg.address.map(address_key) {
            let w = Window::current(self.registrations.get(&addr), now, 3600);
            if w.count >= self.settings.config.registrations_per_hour {
                let retry_after = u64::try_from((w.started + 3600 - now).max(1)).unwrap_or(1);
                return Box::pin(async move { Err(RegistryError::RateLimited { retry_after }) });
            }
            self.registrations.insert(
                addr,
                Window {
                    started: w.started,
                    count: w.count + 1,
                },
            );
        }
        let new = msg.client;
        let secret = (new.auth_method != AuthMethod::None).then(ClientSecret::generate);
        // 256 random bits, unguessable and collision-free in practice; retried anyway.
        let mut client_id = crate::domain::secrets::random_token();
        while self.clients.contains_key(&client_id) {
            client_id = crate::domain::secrets::random_token();
        }
        let client = new.into_client(
            client_id.clone(),
            secret.as_ref().map(ClientSecret::digest),
            &self.settings.default_scopes,
            now,
            msg.origin,
        );
        if let Err(e) = self.store.put_client(&client) {
            return Box::pin(async move { Err(e.into()) });
        }
        if dynamic {
            self.dynamic_clients += 1;
            self.unused.insert((now, client_id.clone()));
        }
        self.clients.insert(client_id, client.clone());
        let persist = self.store.persist();
        Box::pin(async move {
            persist.await?;
            Ok(RegisteredClient { client, secret })
        })
    }
}

impl Handler<InsertClientIfAbsent> for ClientRegistry {
    type Result = ResponseFuture<Result<bool, RegistryError>>;
    fn handle(&mut self, msg: InsertClientIfAbsent, _: &mut Self::Context) -> Self::Result {
        if self.clients.contains_key(&msg.client.client_id) {
            return Box::pin(async { Ok(false) });
        }
        if let Err(e) = self.store.put_client(&msg.client) {
            return Box::pin(async move { Err(e.into()) });
        }
        let c = &msg.client;
        if c.origin == ClientOrigin::Dynamic {
            self.dynamic_clients += 1;
            if !c.used {
                self.unused.insert((c.issued_at, c.client_id.clone()));
            }
        }
        self.clients
            .insert(msg.client.client_id.clone(), msg.client);
        let persist = self.store.persist();
        Box::pin(async move {
            persist.await?;
            Ok(true)
        })
    }
}

impl Handler<InsertUserIfAbsent> for ClientRegistry {
    type Result = ResponseFuture<Result<bool, RegistryError>>;
    fn handle(&mut self, msg: InsertUserIfAbsent, _: &mut Self::Context) -> Self::Result {
        if self.users.contains_key(&msg.user.username) {
            return Box::pin(async { Ok(false) });
        }
        if let Err(e) = self.store.put_user(&msg.user) {
            return Box::pin(async move { Err(e.into()) });
        }
        self.users.insert(msg.user.username.clone(), msg.user);
        let persist = self.store.persist();
        Box::pin(async move {
            persist.await?;
            Ok(true)
        })
    }
}

impl Handler<ListClients> for ClientRegistry {
    type Result = MessageResult<ListClients>;
    fn handle(&mut self, _: ListClients, _: &mut Self::Context) -> Self::Result {
        let mut clients: Vec<Client> = self.clients.values().cloned().collect();
        clients.sort_by(|a, b| (a.issued_at, &a.client_id).cmp(&(b.issued_at, &b.client_id)));
        MessageResult(clients)
    }
}

impl Handler<ListUsers> for ClientRegistry {
    type Result = MessageResult<ListUsers>;
    fn handle(&mut self, _: ListUsers, _: &mut Self::Context) -> Self::Result {
        let mut names: Vec<String> = self.users.keys().cloned().collect();
        names.sort();
        MessageResult(names)
    }
}

impl Handler<RemoveClient> for ClientRegistry {
    type Result = ResponseFuture<Result<bool, RegistryError>>;
    fn handle(&mut self, msg: RemoveClient, _: &mut Self::Context) -> Self::Result {
        if !self.clients.contains_key(&msg.client_id) {
            return Box::pin(async { Ok(false) });
        }
        if let Err(e) = self.store.remove_client(&msg.client_id) {
            return Box::pin(async move { Err(e.into()) });
        }
        self.forget_client(&msg.client_id);
        self.after_persist(true)
    }
}

impl Handler<SetPassword> for ClientRegistry {
    type Result = ResponseFuture<Result<bool, RegistryError>>;
    fn handle(&mut self, msg: SetPassword, _: &mut Self::Context) -> Self::Result {
        let Some(existing) = self.users.get(&msg.username) else {
            return Box::pin(async { Ok(false) });
        };
        let user = User {
            username: existing.username.clone(),
            password_hash: msg.password_hash,
        };
        if let Err(e) = self.store.put_user(&user) {
            return Box::pin(async move { Err(e.into()) });
        }
        self.users.insert(msg.username.clone(), user);
        // A new password is often a response to a leaked one: browsers signed in with the
        // old one sign in again, and a lockout caused by guessing it ends.
        self.end_login_sessions_of(&msg.username);
        self.user_failures
            .remove(&Digest::of(msg.username.as_bytes()));
        self.after_persist(true)
    }
}

impl Handler<RemoveUser> for ClientRegistry {
    type Result = ResponseFuture<Result<bool, RegistryError>>;
    fn handle(&mut self, msg: RemoveUser, _: &mut Self::Context) -> Self::Result {
        if !self.users.contains_key(&msg.username) {
            return Box::pin(async { Ok(false) });
        }
        if let Err(e) = self.store.remove_user(&msg.username) {
            return Box::pin(async move { Err(e.into()) });
        }
        self.users.remove(&msg.username);
        self.end_login_sessions_of(&msg.username);
        self.after_persist(true)
    }
}

impl Handler<StartLoginSession> for ClientRegistry {
    type Result = String;
    fn handle(&mut self, msg: StartLoginSession, _: &mut Self::Context) -> String {
        let now = self.clock.now();
        if self.login_sessions.len() >= MAX_LOGIN_SESSIONS {
            self.login_sessions.retain(|_, (_, exp)| *exp > now);
            if self.login_sessions.len() >= MAX_LOGIN_SESSIONS {
                // Still full of live sessions: drop the one closest to expiry.
                let oldest = self
                    .login_sessions
                    .iter()
                    .min_by_key(|(_, (_, exp))| *exp)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.login_sessions.remove(&k);
                }
            }
        }
        let token = crate::domain::secrets::random_token();
        let expires = crate::domain::clock::expiry(now, self.settings.config.login_session_ttl);
        self.login_sessions
            .insert(Digest::of(token.as_bytes()), (msg.subject, expires));
        token
    }
}

impl Handler<ResolveLoginSession> for ClientRegistry {
    type Result = Option<String>;
    fn handle(&mut self, msg: ResolveLoginSession, _: &mut Self::Context) -> Option<String> {
        let now = self.clock.now();
        let (subject, exp) = self.login_sessions.get(&Digest::of(msg.token.as_bytes()))?;
        // A session for a user that has since been removed is worthless.
        (*exp > now && self.users.contains_key(subject)).then(|| subject.clone())
    }
}

impl Handler<AuthenticateUser> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<String, RegistryError>>;
    fn handle(&mut self, msg: AuthenticateUser, _: &mut Self::Context) -> Self::Result {
        // The same steps, answers and counters for every name, account or not.
        let name = Digest::of(msg.username.as_bytes());
        let address = msg.address.map(address_key);
        if let Some(retry_after) = self.throttled(&name, address) {
            return Box::pin(fut::ready(Err(RegistryError::LoginThrottled {
                retry_after,
            })));
        }
        // Each check holds ~19 MiB for tens of milliseconds: a bounded number at once, and
        // a refusal rather than a queue beyond it. Nothing is counted for a refusal.
        let Ok(permit) = Arc::clone(&self.password_checks).try_acquire_owned() else {
            return Box::pin(fut::ready(Err(RegistryError::PasswordCheckBusy {
                retry_after: PASSWORD_CHECK_RETRY_SECS,
            })));
        };
        let known = self
            .users
            .get(&msg.username)
            .map(|u| u.password_hash.clone());
        let exists = known.is_some();
        // Counted now, before the check: a burst of guesses reaches the limit as soon as
        // the limit's worth of them have started.
        let started = self.reserve_attempt(name, exists, address);
        let phc: Arc<str> = known
            .map(Into::into)
            .unwrap_or_else(|| Arc::clone(&self.dummy_hash));
        let password = msg.password;
        // Argon2 takes tens of milliseconds: run it on the blocking pool, never on the
        // actor's thread or an HTTP worker. The permit is released when it ends.
        let verify = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(password.secret(), &phc)
        });
        let username = msg.username;
        Box::pin(verify.into_actor(self).map(move |res, act, _| match res {
            Ok(true) if exists => {
                act.release_attempt(&name, address, started);
                Ok(username)
            }
            // The attempt stays counted.
            Ok(_) => Err(RegistryError::InvalidCredentials),
            Err(e) => Err(RegistryError::Internal(e.to_string())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        config::Config,
        domain::{client::GrantType, clock::ManualClock, scope::Scopes},
        storage::sled::{Durability, SledClientStore},
    };

    #[test]
    fn the_document_cache_is_bounded_and_makes_room_from_expired_entries() {
        let client = Client {
            client_id: "https://app.example/c.json".into(),
            secret_digest: None,
            auth_method: AuthMethod::None,
            client_name: None,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            scopes: Scopes::default(),
            issued_at: 0,
            extra: serde_json::Map::new(),
            origin: ClientOrigin::Document,
            used: true,
        };
        let mut cache = DocumentCache::default();
        let doc = |until: i64| CachedDocument {
            client: client.clone(),
            fresh_until: until,
            stale_until: until,
        };
        for i in 0..MAX_CACHED_DOCUMENTS {
            // Half of them expire at 100, half at 1000.
            let expires = if i % 2 == 0 { 100 } else { 1_000 };
            cache.insert(format!("u{i}"), doc(expires), 0);
        }
        assert_eq!(cache.fresh.len(), MAX_CACHED_DOCUMENTS);
        // Full and nothing expired: used but not cached.
        cache.insert("late".into(), doc(1_000), 50);
        assert!(!cache.fresh.contains_key("late"));
        assert_eq!(cache.fresh.len(), MAX_CACHED_DOCUMENTS);
        // Once some have expired they make room.
        cache.insert("later".into(), doc(1_000), 200);
        assert!(cache.fresh.contains_key("later"));
        assert_eq!(cache.fresh.len(), MAX_CACHED_DOCUMENTS / 2 + 1);
    }

    #[test]
    fn throttle_maps_make_room_from_expired_then_unknown_entries() {
        // (live, known)
        let mut map: HashMap<u8, (bool, bool)> =
            HashMap::from([(1, (true, true)), (2, (false, true)), (3, (true, false))]);
        let room = |map: &mut HashMap<u8, (bool, bool)>, key| {
            make_room(map, &key, 3, |v| v.0, |v| !v.1);
        };
        room(&mut map, 1);
        assert_eq!(map.len(), 3, "a key already present needs no room");
        room(&mut map, 9);
        assert!(!map.contains_key(&2), "the expired entry went first");
        assert_eq!(map.len(), 2);
        map.insert(4, (true, true));
        room(&mut map, 9);
        assert!(!map.contains_key(&3), "then the unknown name's");
        assert!(map.contains_key(&1) && map.contains_key(&4));
        map.insert(5, (true, true));
        room(&mut map, 9);
        assert_eq!(map.len(), 2, "all known and live: one goes anyway");
    }

    async fn start(cfg: Config) -> (Addr<ClientRegistry>, Arc<ManualClock>) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
        let settings = Arc::new(cfg.settings(8000).unwrap());
        let clock = ManualClock::new(1_000);
        let dummy = hash_password("dummy").unwrap();
        let registry =
            ClientRegistry::new(Box::new(store), settings, clock.clone(), dummy).unwrap();
        let addr = registry.start();
        let user = User {
            username: "alice".into(),
            password_hash: hash_password("pw").unwrap(),
        };
        assert!(addr
            .send(InsertUserIfAbsent { user: user.clone() })
            .await
            .unwrap()
            .unwrap());
        assert!(
            !addr
                .send(InsertUserIfAbsent { user })
                .await
                .unwrap()
                .unwrap(),
            "seeding is idempotent"
        );
        (addr, clock)
    }

    fn login(password: &str, address: Option<IpAddr>) -> AuthenticateUser {
        AuthenticateUser {
            username: "alice".into(),
            password: Password::new(password.into()),
            address,
        }
    }

    #[actix::test]
    async fn login_is_throttled_per_user_then_recovers() {
        let (addr, clock) = start(Config::default()).await;
        assert_eq!(
            addr.send(login("pw", None)).await.unwrap().unwrap(),
            "alice"
        );
        for _ in 0..5 {
            let r = addr.send(login("wrong", None)).await.unwrap();
            assert!(matches!(r, Err(RegistryError::InvalidCredentials)));
        }
        let r = addr.send(login("pw", None)).await.unwrap();
        assert!(matches!(r, Err(RegistryError::LoginThrottled { .. })));
        clock.advance(Duration::from_secs(15 * 60));
        assert!(addr.send(login("pw", None)).await.unwrap().is_ok());
    }

    fn login_as(name: &str, password: &str, address: Option<IpAddr>) -> AuthenticateUser {
        AuthenticateUser {
            username: name.into(),
            password: Password::new(password.into()),
            address,
        }
    }

    #[actix::test]
    async fn concurrent_guesses_are_counted_before_any_is_checked() {
        let mut cfg = Config::default();
        cfg.password_hash_concurrency = 32;
        let (addr, _) = start(cfg).await;
        let answers =
            futures_util::future::join_all((0..12).map(|_| addr.send(login("wrong", None)))).await;
        let checked = answers
            .iter()
            .filter(|r| matches!(r, Ok(Err(RegistryError::InvalidCredentials))))
            .count();
        let throttled = answers
            .iter()
            .filter(|r| matches!(r, Ok(Err(RegistryError::LoginThrottled { .. }))))
            .count();
        assert_eq!((checked, throttled), (5, 7), "{answers:?}");
        let r = addr.send(login("pw", None)).await.unwrap();
        assert!(matches!(r, Err(RegistryError::LoginThrottled { .. })));
    }

    #[actix::test]
    async fn unknown_names_lock_out_like_accounts() {
        let (addr, _) = start(Config::default()).await;
        for name in ["alice", "nobody"] {
            for _ in 0..5 {
                let r = addr.send(login_as(name, "wrong", None)).await.unwrap();
                assert!(matches!(r, Err(RegistryError::InvalidCredentials)));
            }
            let r = addr.send(login_as(name, "pw", None)).await.unwrap();
            assert!(
                matches!(r, Err(RegistryError::LoginThrottled { retry_after: 900 })),
                "{name}: {r:?}"
            );
        }
    }

    #[actix::test]
    async fn ipv6_addresses_share_their_64_and_success_gives_the_attempt_back() {
        let mut cfg = Config::default();
        cfg.login_max_failures_per_address = 2;
        let (addr, _) = start(cfg).await;
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // A success does not use up the address's allowance.
        for _ in 0..3 {
            assert!(addr
                .send(login("pw", ip("2001:db8:1:2::1")))
                .await
                .unwrap()
                .is_ok());
        }
        for (name, a) in [("x", "2001:db8:1:2::1"), ("y", "2001:db8:1:2:ffff::9")] {
            let r = addr.send(login_as(name, "wrong", ip(a))).await.unwrap();
            assert!(matches!(r, Err(RegistryError::InvalidCredentials)));
        }
        let r = addr
            .send(login_as("z", "wrong", ip("2001:db8:1:2::abcd")))
            .await
            .unwrap();
        assert!(
            matches!(r, Err(RegistryError::LoginThrottled { .. })),
            "same /64"
        );
        let r = addr
            .send(login_as("z", "wrong", ip("2001:db8:1:3::1")))
            .await
            .unwrap();
        assert!(
            matches!(r, Err(RegistryError::InvalidCredentials)),
            "another /64"
        );
    }

    #[actix::test]
    async fn a_full_password_check_bound_refuses_without_counting() {
        let (addr, _) = start(Config::default()).await;
        let checks = Arc::new(Semaphore::new(1));
        // Rebuild the registry around a bound the test can hold.
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
        let settings = Arc::new(Config::default().settings(8000).unwrap());
        let registry = ClientRegistry::new(
            Box::new(store),
            settings,
            ManualClock::new(1_000),
            hash_password("dummy").unwrap(),
        )
        .unwrap()
        .with_password_checks(Arc::clone(&checks))
        .start();
        drop(addr);
        let held = checks.try_acquire().unwrap();
        for _ in 0..10 {
            let r = registry.send(login("wrong", None)).await.unwrap();
            assert!(matches!(
                r,
                Err(RegistryError::PasswordCheckBusy { retry_after: 1 })
            ));
        }
        drop(held);
        let r = registry.send(login("wrong", None)).await.unwrap();
        assert!(
            matches!(r, Err(RegistryError::InvalidCredentials)),
            "the refusals were not counted: {r:?}"
        );
    }

    #[actix::test]
    async fn register_authenticate_and_rate_limit() {
        let mut cfg = Config::default();
        cfg.registrations_per_hour = 1;
        let (addr, _) = start(cfg).await;
        let new = NewClient {
            client_name: None,
            redirect_uris: vec!["https://a.example/cb".into()],
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: None,
            extra: Default::default(),
        };
        let ip: IpAddr = [127, 0, 0, 1].into();
        let reg = addr
            .send(RegisterClient {
                client: new.clone(),
                address: Some(ip),
                origin: ClientOrigin::Dynamic,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            reg.client.scopes.to_string(),
            "mcp:read mcp:write",
            "default scopes"
        );
        let secret = reg.secret.unwrap();
        let id = reg.client.client_id.clone();
        let ok = addr
            .send(AuthenticateClient {
                client_id: id.clone(),
                secret: Some(secret),
            })
            .await
            .unwrap();
        assert!(ok.is_ok());
        let bad = addr
            .send(AuthenticateClient {
                client_id: id.clone(),
                secret: Some(ClientSecret::new("x".into())),
            })
            .await
            .unwrap();
        assert!(matches!(bad, Err(RegistryError::InvalidClient)));
        let none = addr
            .send(AuthenticateClient {
                client_id: id,
                secret: None,
            })
            .await
            .unwrap();
        assert!(
            matches!(none, Err(RegistryError::InvalidClient)),
            "confidential client needs its secret"
        );
        let limited = addr
            .send(RegisterClient {
                client: new,
                address: Some(ip),
                origin: ClientOrigin::Dynamic,
            })
            .await
            .unwrap();
        assert!(matches!(limited, Err(RegistryError::RateLimited { .. })));
    }

    fn public_client(id: &str, issued_at: i64) -> Client {
        Client {
            client_id: id.into(),
            secret_digest: None,
            auth_method: AuthMethod::None,
            client_name: None,
            redirect_uris: vec!["http://localhost/cb".into()],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: Scopes::parse("mcp:read").unwrap(),
            issued_at,
            extra: Default::default(),
            origin: ClientOrigin::Operator,
            used: true,
        }
    }

    #[actix::test]
    async fn clients_are_listed_in_registration_order_and_removed() {
        let (addr, _) = start(Config::default()).await;
        for (id, at) in [("b", 2), ("c", 1), ("a", 2)] {
            let client = public_client(id, at);
            assert!(addr
                .send(InsertClientIfAbsent { client })
                .await
                .unwrap()
                .unwrap());
        }
        let ids =
            |clients: Vec<Client>| clients.into_iter().map(|c| c.client_id).collect::<Vec<_>>();
        assert_eq!(ids(addr.send(ListClients).await.unwrap()), ["c", "a", "b"]);
        let remove = |id: &str| RemoveClient {
            client_id: id.into(),
        };
        assert!(addr.send(remove("a")).await.unwrap().unwrap());
        assert!(!addr.send(remove("a")).await.unwrap().unwrap(), "gone");
        assert_eq!(ids(addr.send(ListClients).await.unwrap()), ["c", "b"]);
        let get = GetClient {
            client_id: "a".into(),
        };
        assert!(addr.send(get).await.unwrap().is_none());
        let auth = AuthenticateClient {
            client_id: "a".into(),
            secret: None,
        };
        assert!(matches!(
            addr.send(auth).await.unwrap(),
            Err(RegistryError::InvalidClient)
        ));
    }

    #[actix::test]
    async fn a_new_password_replaces_the_old_and_ends_sign_in_sessions() {
        let (addr, _) = start(Config::default()).await;
        let cookie = addr
            .send(StartLoginSession {
                subject: "alice".into(),
            })
            .await
            .unwrap();
        let set = |name: &str| SetPassword {
            username: name.into(),
            password_hash: hash_password("new pw").unwrap(),
        };
        assert!(addr.send(set("alice")).await.unwrap().unwrap());
        assert!(!addr.send(set("nobody")).await.unwrap().unwrap());
        assert!(matches!(
            addr.send(login("pw", None)).await.unwrap(),
            Err(RegistryError::InvalidCredentials)
        ));
        assert_eq!(
            addr.send(login("new pw", None)).await.unwrap().unwrap(),
            "alice"
        );
        let resolve = ResolveLoginSession { token: cookie };
        assert_eq!(addr.send(resolve).await.unwrap(), None);
        assert_eq!(addr.send(ListUsers).await.unwrap(), ["alice"]);
    }

    #[actix::test]
    async fn a_removed_user_cannot_sign_in() {
        let (addr, _) = start(Config::default()).await;
        let cookie = addr
            .send(StartLoginSession {
                subject: "alice".into(),
            })
            .await
            .unwrap();
        let remove = || RemoveUser {
            username: "alice".into(),
        };
        assert!(addr.send(remove()).await.unwrap().unwrap());
        assert!(!addr.send(remove()).await.unwrap().unwrap());
        assert!(matches!(
            addr.send(login("pw", None)).await.unwrap(),
            Err(RegistryError::InvalidCredentials)
        ));
        let resolve = ResolveLoginSession { token: cookie };
        assert_eq!(addr.send(resolve).await.unwrap(), None);
        assert!(addr.send(ListUsers).await.unwrap().is_empty());
    }
}
