//! Configuration: one struct, validated once at start-up into [`Settings`] (typed values the
//! rest of the crate reads). The binary fills it from flags and `OAUTH_MCP_*` variables;
//! embedders and tests build it in code.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use url::Url;

use crate::domain::{client_address::TrustedProxies, redirect::is_loopback_host, scope::Scopes};

/// Everything an operator can set. Start from [`Config::default`] and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address the binary listens on (`--bind`).
    pub bind: SocketAddr,
    /// Public base URL: the issuer (RFC 8414) and the base of the MCP resource
    /// `<public-url>/mcp`. `None` means `http://localhost:<port of bind>`.
    pub public_url: Option<Url>,
    /// sled data directory.
    pub data_dir: PathBuf,
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
    /// Dynamic registrations allowed per client address per hour.
    pub registrations_per_hour: u32,
    /// Whether dynamically registered clients may use `client_credentials`. Off by default:
    /// with open registration, anyone who can reach `/register` would otherwise obtain an
    /// access token for the MCP server with no user involved.
    pub registered_client_credentials: bool,
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

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            public_url: None,
            data_dir: PathBuf::from("./data"),
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

/// Validated, derived settings shared (read-only) by actors and handlers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer, without trailing slash, e.g. `http://localhost:8000`.
    pub issuer: String,
    /// The issuer's URL.
    pub public_url: Url,
    /// True when the public URL's host is a loopback name, enabling host aliasing.
    pub loopback: bool,
    /// The MCP resource identifier, `<issuer>/mcp`.
    pub resource: String,
    /// Supported scopes.
    pub scopes: Scopes,
    /// Scopes of clients registered without `scope`.
    pub default_scopes: Scopes,
    /// Scopes every MCP request needs.
    pub mcp_scopes: Scopes,
    /// Parsed [`Config::trusted_proxies`].
    pub trusted_proxies: TrustedProxies,
    /// [`Config::password_hash_concurrency`], with zero resolved to the number of cores.
    pub password_hash_concurrency: usize,
    /// The configuration this was derived from.
    pub config: Config,
}

impl Config {
    /// Checks the configuration and derives [`Settings`]. `port` is the port actually bound,
    /// used when no public URL is set.
    pub fn settings(&self, port: u16) -> Result<Settings, ConfigError> {
        let public_url = match &self.public_url {
            Some(u) => u.clone(),
            None => Url::parse(&format!("http://localhost:{port}"))
                .map_err(|e| ConfigError(format!("cannot build default public URL: {e}")))?,
        };
        let loopback = is_loopback_host(public_url.host());
        match public_url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(ConfigError(format!(
                    "public URL {public_url} must use https (http is allowed only on localhost, 127.0.0.1 or [::1])"
                )))
            }
        }
        if public_url.path() != "/"
            || public_url.query().is_some()
            || public_url.fragment().is_some()
        {
            return Err(ConfigError(format!(
                "public URL {public_url} must be an origin without path, query or fragment (e.g. https://auth.example.com)"
            )));
        }
        if !public_url.username().is_empty() || public_url.password().is_some() {
            return Err(ConfigError(
                "public URL must not contain credentials".into(),
            ));
        }
        let scopes = Scopes::parse(&self.scopes.join(" "))
            .map_err(|e| ConfigError(format!("scopes: {e}")))?;
        if scopes.is_empty() {
            return Err(ConfigError("at least one scope must be configured".into()));
        }
        let default_scopes = Scopes::parse(&self.default_scopes.join(" "))
            .map_err(|e| ConfigError(format!("default scopes: {e}")))?;
        if !default_scopes.is_subset(&scopes) {
            return Err(ConfigError(
                "default scopes must be a subset of the supported scopes".into(),
            ));
        }
        for (name, d) in [
            ("code TTL", self.code_ttl),
            ("access token TTL", self.access_token_ttl),
            ("refresh token TTL", self.refresh_token_ttl),
            ("actor timeout", self.actor_timeout),
            ("request timeout", self.request_timeout),
            ("sweep interval", self.sweep_interval),
            ("login lockout", self.login_lockout),
            ("client metadata timeout", self.client_metadata_timeout),
            ("unused client TTL", self.unused_client_ttl),
        ] {
            if d.is_zero() {
                return Err(ConfigError(format!("{name} must be greater than zero")));
            }
        }
        if self.code_ttl > Duration::from_secs(600) {
            return Err(ConfigError(
                "code TTL must be at most 10 minutes (OAuth 2.1 §4.1.2)".into(),
            ));
        }
        let mcp_scopes = Scopes::parse(&self.mcp_scopes.join(" "))
            .map_err(|e| ConfigError(format!("MCP scopes: {e}")))?;
        if !mcp_scopes.is_subset(&scopes) {
            return Err(ConfigError(
                "MCP scopes must be a subset of the supported scopes".into(),
            ));
        }
        if self.mcp_max_sessions_per_owner == 0
            || self.mcp_max_sessions == 0
            || self.mcp_session_idle.is_zero()
        {
            return Err(ConfigError(
                "MCP session limits must be greater than zero".into(),
            ));
        }
        for origin in &self.allowed_origins {
            if Url::parse(origin)
                .map(|u| u.host().is_none())
                .unwrap_or(true)
            {
                return Err(ConfigError(format!(
                    "allowed origin {origin} must look like https://host[:port]"
                )));
            }
        }
        if !(256..=256 * 1024).contains(&self.client_metadata_max_bytes) {
            return Err(ConfigError(
                "client metadata document size limit must be between 256 bytes and 256 KiB".into(),
            ));
        }
        for host in &self.client_metadata_trusted_hosts {
            let name = host.strip_prefix("*.").unwrap_or(host);
            let ok = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                });
            if !ok {
                return Err(ConfigError(format!(
                    "trusted client metadata host {host:?} must be a lowercase host name, optionally starting with *."
                )));
            }
        }
        if self.client_metadata_max_fetches_per_host == 0 {
            return Err(ConfigError(
                "client metadata fetches per host must be at least 1".into(),
            ));
        }
        if self.mailbox_capacity == 0 {
            return Err(ConfigError(
                "mailbox capacity must be greater than zero".into(),
            ));
        }
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError(format!("trusted proxies: {e}")))?;
        let password_hash_concurrency = match self.password_hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let issuer = public_url.as_str().trim_end_matches('/').to_owned();
        Ok(Settings {
            trusted_proxies,
            password_hash_concurrency,
            resource: format!("{issuer}/mcp"),
            issuer,
            public_url,
            loopback,
            scopes,
            default_scopes,
            mcp_scopes,
            config: self.clone(),
        })
    }
}

impl Settings {
    /// The issuer as seen by a client that reached us with `host` (the `Host` header).
    /// With a loopback public URL, a client that used `localhost`, `127.0.0.1` or `[::1]`
    /// on our port gets that name back, so strict clients that compare the issuer with the
    /// URL they fetched accept it. Otherwise the configured issuer, exactly.
    pub fn issuer_for_host(&self, host: Option<&str>) -> String {
        if let (true, Some(host)) = (self.loopback, host) {
            if let Ok(url) = Url::parse(&format!("{}://{host}", self.public_url.scheme())) {
                let same_port =
                    url.port_or_known_default() == self.public_url.port_or_known_default();
                if same_port && is_loopback_host(url.host()) && url.path() == "/" {
                    return url.as_str().trim_end_matches('/').to_owned();
                }
            }
        }
        self.issuer.clone()
    }

    /// DNS-rebinding defence: is this `Host` header one of ours? The public URL's authority,
    /// its loopback aliases on the same port (loopback servers), or a configured extra.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Ok(url) = Url::parse(&format!("{}://{host}", self.public_url.scheme())) else {
            return false;
        };
        if url.path() != "/" || !url.username().is_empty() {
            return false;
        }
        let port = url.port_or_known_default();
        let public_port = self.public_url.port_or_known_default();
        if port == public_port
            && (url.host() == self.public_url.host()
                || (self.loopback && is_loopback_host(url.host())))
        {
            return true;
        }
        let name = url.host_str().unwrap_or_default();
        self.config.allowed_hosts.iter().any(|allowed| {
            match allowed
                .rsplit_once(':')
                .filter(|(_, p)| p.parse::<u16>().is_ok())
            {
                Some((h, p)) => h.eq_ignore_ascii_case(name) && p.parse::<u16>().ok() == port,
                None => allowed.eq_ignore_ascii_case(name),
            }
        })
    }

    /// DNS-rebinding and cross-site defence: is this `Origin` allowed to call `/mcp`? The
    /// public origin, loopback origins on any port when the server itself is on loopback
    /// (local tools such as MCP Inspector), or a configured extra. `null` never is.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let Ok(url) = Url::parse(origin) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return false;
        }
        let ours = url.scheme() == self.public_url.scheme()
            && url.host() == self.public_url.host()
            && url.port_or_known_default() == self.public_url.port_or_known_default();
        ours || (self.loopback && is_loopback_host(url.host()))
            || self.config.allowed_origins.iter().any(|o| {
                o.trim_end_matches('/')
                    .eq_ignore_ascii_case(origin.trim_end_matches('/'))
            })
    }

    /// True when `candidate` names our MCP resource: the canonical `<issuer>/mcp`, or with a
    /// loopback public URL, the same URL under another loopback name.
    pub fn is_own_resource(&self, candidate: &str) -> bool {
        if candidate == self.resource {
            return true;
        }
        let Ok(url) = Url::parse(candidate) else {
            return false;
        };
        self.loopback
            && url.scheme() == self.public_url.scheme()
            && is_loopback_host(url.host())
            && url.port_or_known_default() == self.public_url.port_or_known_default()
            && url.path() == "/mcp"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_public_url_follows_port() {
        let s = Config::default().settings(8123).unwrap();
        assert_eq!(s.issuer, "http://localhost:8123");
        assert_eq!(s.resource, "http://localhost:8123/mcp");
        assert!(s.loopback);
    }

    #[test]
    fn refuses_bad_public_urls() {
        for bad in [
            "http://example.com",
            "https://a.example/path",
            "https://a.example/?q=1",
        ] {
            let mut c = Config::default();
            c.public_url = Some(Url::parse(bad).unwrap());
            assert!(c.settings(1).is_err(), "{bad}");
        }
        let mut c = Config::default();
        c.public_url = Some(Url::parse("https://auth.example.com/").unwrap());
        let s = c.settings(1).unwrap();
        assert_eq!(s.issuer, "https://auth.example.com");
        assert!(!s.loopback);
    }

    #[test]
    fn loopback_aliases() {
        let s = Config::default().settings(8000).unwrap();
        assert_eq!(
            s.issuer_for_host(Some("127.0.0.1:8000")),
            "http://127.0.0.1:8000"
        );
        assert_eq!(s.issuer_for_host(Some("[::1]:8000")), "http://[::1]:8000");
        assert_eq!(
            s.issuer_for_host(Some("evil.example:8000")),
            "http://localhost:8000"
        );
        assert_eq!(
            s.issuer_for_host(Some("127.0.0.1:9")),
            "http://localhost:8000"
        );
        assert!(s.is_own_resource("http://127.0.0.1:8000/mcp"));
        assert!(!s.is_own_resource("http://127.0.0.1:8001/mcp"));
        assert!(!s.is_own_resource("http://evil.example:8000/mcp"));
        assert!(!s.is_own_resource("http://localhost:8000/other"));
    }

    #[test]
    fn host_and_origin_allow_lists() {
        let s = Config::default().settings(8000).unwrap();
        assert!(s.host_allowed("localhost:8000"));
        assert!(s.host_allowed("127.0.0.1:8000"));
        assert!(s.host_allowed("[::1]:8000"));
        assert!(!s.host_allowed("evil.example:8000"));
        assert!(!s.host_allowed("localhost:8001"));
        assert!(s.origin_allowed("http://localhost:6274"));
        assert!(!s.origin_allowed("http://evil.example"));
        assert!(!s.origin_allowed("null"));
        let mut c = Config::default();
        c.public_url = Some(Url::parse("https://mcp.example.com").unwrap());
        c.allowed_hosts = vec!["internal.example".into()];
        c.allowed_origins = vec!["https://app.example".into()];
        let s = c.settings(8000).unwrap();
        assert!(s.host_allowed("mcp.example.com"));
        assert!(s.host_allowed("mcp.example.com:443"));
        assert!(s.host_allowed("internal.example:9"));
        assert!(!s.host_allowed("localhost:443"));
        assert!(s.origin_allowed("https://mcp.example.com"));
        assert!(s.origin_allowed("https://app.example"));
        assert!(!s.origin_allowed("http://localhost:3000"));
    }

    #[test]
    fn trusted_proxies_and_hash_concurrency_are_validated() {
        let mut c = Config::default();
        c.trusted_proxies = vec![
            "10.0.0.0/8".into(),
            "2001:db8::/32".into(),
            "192.0.2.7".into(),
        ];
        let s = c.settings(1).unwrap();
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(
            s.password_hash_concurrency >= 1,
            "zero means the number of cores"
        );
        for bad in ["10.0.0.1/8", "proxy.internal", "10.0.0.0/40"] {
            let mut c = Config::default();
            c.trusted_proxies = vec![bad.into()];
            let e = c.settings(1).unwrap_err();
            assert!(e.0.contains("trusted proxies"), "{bad}: {e}");
        }
        let mut c = Config::default();
        c.password_hash_concurrency = 3;
        assert_eq!(c.settings(1).unwrap().password_hash_concurrency, 3);
    }

    #[test]
    fn refuses_bad_scopes_and_ttls() {
        let mut c = Config::default();
        c.default_scopes = vec!["other".into()];
        assert!(c.settings(1).is_err());
        let mut c = Config::default();
        c.code_ttl = Duration::ZERO;
        assert!(c.settings(1).is_err());
        let mut c = Config::default();
        c.unused_client_ttl = Duration::ZERO;
        assert!(c.settings(1).is_err());
        let mut c = Config::default();
        c.client_metadata_max_fetches_per_host = 0;
        assert!(c.settings(1).is_err());
        for bad in ["", "*.", "App.example", "https://app.example", "a b"] {
            let mut c = Config::default();
            c.client_metadata_trusted_hosts = vec![bad.into()];
            assert!(c.settings(1).is_err(), "{bad:?}");
        }
        let mut c = Config::default();
        c.client_metadata_trusted_hosts = vec!["app.example".into(), "*.vendor.example".into()];
        assert!(c.settings(1).is_ok());
    }
}
