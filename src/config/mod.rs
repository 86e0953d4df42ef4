//! Configuration: one struct, validated once at start-up into [`Settings`] (typed values the
//! rest of the crate reads). The binary fills it from flags and `OAUTH_MCP_*` variables;
//! embedders and tests build it in code.
//!
//! This file holds [`Config`], its defaults and [`ConfigError`]; `settings.rs` the
//! validation into [`Settings`]; `hosts.rs` which `Host`, `Origin`, issuer and resource
//! names are this server's.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use url::Url;

mod hosts;
mod settings;

pub use settings::Settings;

/// Everything an operator can set. Start from [`Config::default`] and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address the binary listens on (`--bind`).
    pub bind: SocketAddr,
    /// Public base URL: the issuer (RFC 8414) and the base of the MCP resource
    /// `<public-url>/mcp`. `None` means `http://localhost:<port of bind>`.
    pub public_url: Option<Url>,
    /// sled data directory. With `database_url` it holds only the generated server key
    /// (when no `key_file` is given).
    pub data_dir: PathBuf,
    /// PostgreSQL instead of sled: a `postgres://user:password@host:port/db` URL (or a
    /// `key=value` connection string). The stores connect at start, apply the pending
    /// migrations under an advisory lock and refuse a schema outside this build's range
    /// (docs/storage.md, "PostgreSQL"). TLS as its `sslmode` says (`disable`, `prefer`,
    /// `require`, `verify-ca`, `verify-full`; `storage::postgres::tls`). `None` (the
    /// default): sled in `data_dir`. Holds a secret: never log it
    /// (`storage::postgres::describe` names the target without the password).
    pub database_url: Option<DatabaseUrl>,
    /// A PEM file of root certificates trusted for the database's TLS certificate beside
    /// the bundled Mozilla roots (a private CA, as managed databases and internal CAs
    /// use). Read and checked at start. With `sslmode=require` it makes the chain checked
    /// too (as libpq does with a root certificate).
    pub database_ca_file: Option<PathBuf>,
    /// File holding the server key (at least 32 random bytes): it keys the CSRF values of
    /// the forms and the refresh grace-window derivation. `None` means `server.key` in the
    /// data directory, generated at first start (mode 0600). Instances sharing a database
    /// must be given the same key.
    pub key_file: Option<PathBuf>,
    /// Seed the demo client and user (once; later changes are kept). Only honoured on a
    /// loopback-only server (loopback public URL and bind address); see `keep_demo`.
    pub demo: bool,
    /// Scopes this server knows (`scopes_supported`).
    pub scopes: Vec<String>,
    /// Scopes a client registered without `scope` may request.
    pub default_scopes: Vec<String>,
    /// Authorization code lifetime.
    pub code_ttl: Duration,
    /// Access token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh token lifetime, renewed by each rotation (expiry on inactivity).
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token may still be used by the same client without the
    /// reuse being treated as theft (parallel refreshes from one client).
    pub refresh_grace: Duration,
    /// How long a redeemed code is remembered so that a replay revokes its tokens.
    pub used_code_retention: Duration,
    /// Wait for fsync before answering (group commit). Off only for benchmarks.
    pub durable: bool,
    /// Serve `GET /metrics` (Prometheus text format; no per-user data).
    pub metrics: bool,
    /// sled page cache size in bytes.
    pub cache_capacity: u64,
    /// How long a request waits for an actor before answering 503.
    pub actor_timeout: Duration,
    /// Mailbox capacity of each actor.
    pub mailbox_capacity: usize,
    /// How long a client has to send a request's head (request line and headers) once it
    /// has connected or started a request; a slower one gets `408` and is disconnected, so
    /// slow clients cannot pin connections.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection is kept open between requests.
    pub keep_alive: Duration,
    /// Open connections at most per worker (two workers); beyond it, new connections wait
    /// in the listen backlog.
    pub max_connections_per_worker: usize,
    /// Failed logins per user before further attempts are refused for `login_lockout`.
    pub login_max_failures_per_user: u32,
    /// Failed logins per client address before further attempts are refused.
    pub login_max_failures_per_address: u32,
    /// Window and lockout time of the login throttle.
    pub login_lockout: Duration,
    /// How long a browser stays signed in after a password login (later authorization
    /// requests then only ask for consent). Zero turns sign-in sessions off.
    pub login_session_ttl: Duration,
    /// Distinct clients dynamically registered per client address per hour (an identical
    /// public-client registration repeated within 24 hours answers the same client and is
    /// not counted).
    pub registrations_per_hour: u32,
    /// Whether dynamically registered clients may use `client_credentials`. Off by default:
    /// with open registration, anyone who can reach `/register` would otherwise obtain an
    /// access token for the MCP server with no user involved.
    pub registered_client_credentials: bool,
    /// Accept redirect URIs with a private-use scheme of a native app
    /// (`cursor://anysphere.cursor-mcp/oauth/callback`, `com.example.app:/cb`; RFC 8252
    /// §7.1) at registration and in client metadata documents, matched exactly and with
    /// PKCE as always. On by default: Cursor registers one. This goes beyond the MCP
    /// sentence "all redirect URIs MUST be either localhost or use HTTPS", deliberately,
    /// following RFC 8252 (docs/security.md, "Private-use redirect URI schemes"). Off, such
    /// URIs are refused at registration and, for clients registered earlier, at
    /// `/authorize`.
    pub private_use_redirects: bool,
    /// Interval of the background sweep of expired codes and tokens.
    pub sweep_interval: Duration,
    /// Scopes every request to `/mcp` needs (the `scope` of the 401 challenge).
    pub mcp_scopes: Vec<String>,
    /// MCP sessions idle this long are closed.
    pub mcp_session_idle: Duration,
    /// MCP sessions per owner (subject and client); the least recently used is closed
    /// beyond this.
    pub mcp_max_sessions_per_owner: usize,
    /// Live MCP sessions in all, whatever their owners (each holds a worker task and its
    /// buffers); when reached, new sessions get 503 and existing ones are kept.
    pub mcp_max_sessions: usize,
    /// Largest request body accepted at `/mcp`.
    pub mcp_max_body_bytes: usize,
    /// Extra `Host` values accepted at `/mcp` (`name` for any port, or `name:port`), in
    /// addition to the public URL's host (and its loopback aliases).
    pub allowed_hosts: Vec<String>,
    /// Extra browser origins accepted at `/mcp` (`scheme://host[:port]`), in addition to the
    /// public URL's origin (and, on a loopback server, loopback origins on any port).
    pub allowed_origins: Vec<String>,
    /// Accept client ID metadata documents: a `client_id` that is an https URL names a
    /// JSON document the server fetches and uses as the client's registration (MCP
    /// 2025-11-25; advertised as `client_id_metadata_document_supported`).
    pub client_metadata_documents: bool,
    /// Development setting: also accept and fetch `http://` document URLs.
    pub client_metadata_allow_http: bool,
    /// Fetch documents from loopback, private, link-local and other non-public addresses
    /// too (development, or an internal deployment that trusts its network). Off by
    /// default: the URL is chosen by whoever sends the request.
    pub client_metadata_allow_private: bool,
    /// A PEM file of root certificates trusted for document hosts beside the bundled
    /// Mozilla roots: for hosts whose certificates come from a private CA (an internal
    /// network, tests). Read and checked at start.
    pub client_metadata_ca_file: Option<PathBuf>,
    /// Largest document accepted (the draft recommends 5 KB).
    pub client_metadata_max_bytes: usize,
    /// How long one fetch may take in all (connect, TLS, response).
    pub client_metadata_timeout: Duration,
    /// Longest time a fetched document is cached, whatever its headers allow.
    pub client_metadata_max_cache: Duration,
    /// Hosts whose documents are accepted: `app.example`, or `*.example.com` for any name
    /// under `example.com`. Empty accepts any public host (an open server); a list makes
    /// it a protected one (MCP 2025-11-25, "Trust Policies").
    pub client_metadata_trusted_hosts: Vec<String>,
    // ----- round 2: redirects, registration, documents (issue 11 §4, demo part of §5) -----
    /// A dynamically registered client to which no token was issued within this long of
    /// its registration is removed (by the registry's sweep), so open registration cannot
    /// grow storage without limit.
    pub unused_client_ttl: Duration,
    /// Most dynamically registered clients at once; a full registry answers `/register`
    /// with 503 `temporarily_unavailable`. Operator-added clients do not count.
    pub max_registered_clients: usize,
    /// Client metadata document fetches in flight at most per host (name or address of
    /// the document URL), within the global limit of [`crate::fetch::MAX_CONCURRENT_FETCHES`]
    /// (a larger value behaves as that limit). At least 1.
    pub client_metadata_max_fetches_per_host: usize,
    /// How long past its expiry the last good copy of a document may still be used when a
    /// refetch fails for a transient reason or no fetch slot is free, unless its
    /// `Cache-Control` forbids serving it stale (see [`crate::oauth::client_document`]).
    /// Zero turns this off.
    pub client_metadata_stale_if_error: Duration,
    /// Keep (and seed) the demo client and user even when the server is reachable beyond
    /// loopback. Without it such a server refuses to start while the demo records exist:
    /// their secret and password are public, and `client_credentials` with the demo secret
    /// would hand out tokens to anyone who can reach the server.
    pub keep_demo: bool,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are believed
    /// (`10.0.0.0/8`, `2001:db8::/32`, or a single address). Every per-address limit then
    /// counts the client address those headers give (see
    /// [`crate::domain::client_address`]). Empty (the default): the headers are ignored
    /// and the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Password verifications (Argon2id, about 19 MiB and tens of milliseconds each) run at
    /// once, server-wide; a sign-in that finds them all busy gets `503` with `Retry-After`
    /// instead of waiting. Zero (the default) means the number of CPU cores.
    pub password_hash_concurrency: usize,
}

/// A PostgreSQL connection URL. It may hold a password, so its `Debug` shows nothing of
/// it: a `{:?}` of the [`Config`] (or of the settings that carry it) cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            public_url: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_ca_file: None,
            key_file: None,
            demo: true,
            scopes: vec!["mcp:read".into(), "mcp:write".into()],
            default_scopes: vec!["mcp:read".into(), "mcp:write".into()],
            code_ttl: Duration::from_secs(60),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(10),
            used_code_retention: Duration::from_secs(24 * 3600),
            durable: true,
            metrics: true,
            cache_capacity: 32 * 1024 * 1024,
            actor_timeout: Duration::from_secs(5),
            mailbox_capacity: 4096,
            request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(30),
            max_connections_per_worker: 10_000,
            login_max_failures_per_user: 5,
            login_max_failures_per_address: 20,
            login_lockout: Duration::from_secs(15 * 60),
            login_session_ttl: Duration::from_secs(8 * 3600),
            registrations_per_hour: 30,
            registered_client_credentials: false,
            private_use_redirects: true,
            sweep_interval: Duration::from_secs(60),
            mcp_scopes: vec!["mcp:read".into()],
            mcp_session_idle: Duration::from_secs(30 * 60),
            mcp_max_sessions_per_owner: 32,
            mcp_max_sessions: 10_000,
            mcp_max_body_bytes: 1024 * 1024,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            client_metadata_documents: true,
            client_metadata_allow_http: false,
            client_metadata_allow_private: false,
            client_metadata_max_bytes: 5 * 1024,
            client_metadata_timeout: Duration::from_secs(5),
            client_metadata_max_cache: Duration::from_secs(24 * 3600),
            client_metadata_trusted_hosts: Vec::new(),
            client_metadata_ca_file: None,
            unused_client_ttl: Duration::from_secs(7 * 24 * 3600),
            max_registered_clients: 10_000,
            client_metadata_max_fetches_per_host: 4,
            client_metadata_stale_if_error: Duration::from_secs(3600),
            keep_demo: false,
            trusted_proxies: Vec::new(),
            password_hash_concurrency: 0,
        }
    }
}

/// A configuration that cannot be used; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_database_url() {
        let mut config = Config::default();
        config.database_url = Some("postgres://app:hunter2@db.internal/auth".into());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("db.internal"),
            "{shown}"
        );
        let settings = config.settings(8000).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
