//! Command-line flags and their `OAUTH_MCP_*` environment variables, turned into a
//! [`Config`]. Kept in the library so the binary stays a thin `main`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use url::Url;

use crate::config::{Config, DatabaseUrl};

/// oauth-mcp: an OAuth 2.1 authorization server protecting an MCP server.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Something other than serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "OAUTH_MCP_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Public base URL (the issuer); default http://localhost:PORT.
    #[arg(long, env = "OAUTH_MCP_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// sled data directory.
    #[arg(long, env = "OAUTH_MCP_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// PostgreSQL instead of sled (postgres://user:password@host:port/db); migrated at
    /// start. TLS per its sslmode (disable, prefer, require, verify-ca, verify-full).
    #[arg(long, env = "OAUTH_MCP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A PEM file of root certificates trusted for the database's TLS certificate beside
    /// the bundled Mozilla roots (a private CA).
    #[arg(long, env = "OAUTH_MCP_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Server key file (at least 32 random bytes; keys the form CSRF values and the refresh
    /// grace derivation). Default: `server.key` in the data directory, generated at first
    /// start. Give every instance sharing a database the same file.
    #[arg(long, env = "OAUTH_MCP_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Do not seed the demo client and user (seeded only on a loopback-only server).
    #[arg(long, env = "OAUTH_MCP_NO_DEMO")]
    pub no_demo: bool,
    /// Seed and keep the demo client and user even when the server is reachable beyond
    /// loopback (otherwise such a server refuses to start while they exist).
    #[arg(long, env = "OAUTH_MCP_KEEP_DEMO")]
    pub keep_demo: bool,
    /// Remove a dynamically registered client to which no token was issued within this
    /// many seconds of its registration.
    #[arg(long, env = "OAUTH_MCP_UNUSED_CLIENT_TTL", default_value_t = 7 * 24 * 3600)]
    pub unused_client_ttl: u64,
    /// Most dynamically registered clients; beyond it /register answers 503.
    #[arg(
        long,
        env = "OAUTH_MCP_MAX_REGISTERED_CLIENTS",
        default_value_t = 10_000
    )]
    pub max_registered_clients: usize,
    /// Client metadata document fetches in flight at most per host.
    #[arg(
        long,
        env = "OAUTH_MCP_CLIENT_METADATA_FETCHES_PER_HOST",
        default_value_t = 4
    )]
    pub client_metadata_fetches_per_host: usize,
    /// Seconds past its expiry the last good client metadata document may still be used
    /// when a refetch fails or no fetch slot is free (0: never).
    #[arg(
        long,
        env = "OAUTH_MCP_CLIENT_METADATA_STALE_IF_ERROR",
        default_value_t = 3600
    )]
    pub client_metadata_stale_if_error: u64,
    /// Supported scopes, space- or comma-separated.
    #[arg(long, env = "OAUTH_MCP_SCOPES", default_value = "mcp:read mcp:write")]
    pub scopes: String,
    /// Scopes of clients registered without `scope` (default: all supported).
    #[arg(long, env = "OAUTH_MCP_DEFAULT_SCOPES")]
    pub default_scopes: Option<String>,
    /// Authorization code lifetime in seconds (at most 600).
    #[arg(long, env = "OAUTH_MCP_CODE_TTL", default_value_t = 60)]
    pub code_ttl: u64,
    /// Access token lifetime in seconds.
    #[arg(long, env = "OAUTH_MCP_ACCESS_TOKEN_TTL", default_value_t = 3600)]
    pub access_token_ttl: u64,
    /// Refresh token lifetime in seconds (renewed by each rotation).
    #[arg(long, env = "OAUTH_MCP_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl: u64,
    /// Seconds during which a rotated refresh token may be reused by the same client.
    #[arg(long, env = "OAUTH_MCP_REFRESH_GRACE", default_value_t = 10)]
    pub refresh_grace: u64,
    /// sled cache size in MiB.
    #[arg(long, env = "OAUTH_MCP_CACHE_MB", default_value_t = 32)]
    pub cache_mb: u64,
    /// Distinct clients dynamically registered per client address per hour (an identical
    /// public-client registration repeated within 24 hours answers the same client and is
    /// not counted).
    #[arg(long, env = "OAUTH_MCP_REGISTRATIONS_PER_HOUR", default_value_t = 30)]
    pub registrations_per_hour: u32,
    /// Let dynamically registered clients use `client_credentials` (tokens with no user).
    #[arg(long, env = "OAUTH_MCP_REGISTERED_CLIENT_CREDENTIALS")]
    pub registered_client_credentials: bool,
    /// Refuse redirect URIs with a private-use scheme (`cursor://...`, RFC 8252 §7.1);
    /// then only https and loopback http are accepted.
    #[arg(long, env = "OAUTH_MCP_NO_PRIVATE_USE_REDIRECTS")]
    pub no_private_use_redirects: bool,
    /// Do not serve `GET /metrics`.
    #[arg(long, env = "OAUTH_MCP_NO_METRICS")]
    pub no_metrics: bool,
    /// Do not accept client ID metadata documents (URL client ids).
    #[arg(long, env = "OAUTH_MCP_NO_CLIENT_METADATA_DOCUMENTS")]
    pub no_client_metadata_documents: bool,
    /// Development only: also fetch client metadata documents over plain http.
    #[arg(long, env = "OAUTH_MCP_CLIENT_METADATA_ALLOW_HTTP")]
    pub client_metadata_allow_http: bool,
    /// Fetch client metadata documents from loopback, private and other non-public
    /// addresses too (development, or a network you trust).
    #[arg(long, env = "OAUTH_MCP_CLIENT_METADATA_ALLOW_PRIVATE")]
    pub client_metadata_allow_private: bool,
    /// A PEM file of root certificates trusted for client metadata document hosts beside
    /// the bundled Mozilla roots (a private CA).
    #[arg(long, env = "OAUTH_MCP_CLIENT_METADATA_CA_FILE")]
    pub client_metadata_ca_file: Option<PathBuf>,
    /// Accept client metadata documents only from these hosts (`app.example` or
    /// `*.example.com`), space- or comma-separated; default: any public host.
    #[arg(long, env = "OAUTH_MCP_CLIENT_METADATA_TRUSTED_HOSTS")]
    pub client_metadata_trusted_hosts: Option<String>,
    /// Reverse proxies (CIDR blocks or addresses, space- or comma-separated) whose
    /// `Forwarded` / `X-Forwarded-For` headers give the client address for per-address
    /// limits; default: none (the headers are ignored).
    #[arg(long, env = "OAUTH_MCP_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Password verifications run at once (each holds about 19 MiB); more sign-ins get 503
    /// with Retry-After. 0 means the number of CPU cores.
    #[arg(long, env = "OAUTH_MCP_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "OAUTH_MCP_LOG_JSON")]
    pub log_json: bool,
    /// Live MCP sessions in all; when reached, new sessions get 503 (existing ones are kept).
    #[arg(long, env = "OAUTH_MCP_MCP_MAX_SESSIONS", default_value_t = 10_000)]
    pub mcp_max_sessions: usize,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Load-test a running server (ours or any RFC 8414 server) and print a report.
    Loadtest(LoadtestArgs),
    /// Manage clients, users and grants: on PostgreSQL (--database-url) or in a sled data
    /// directory (through the running server's admin socket when one holds it).
    Admin(AdminArgs),
    /// Apply the pending PostgreSQL migrations (under the migration lock, as a starting
    /// server does) and print the schema version.
    Migrate(MigrateArgs),
}

/// Flags of `oauth-mcp migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database to migrate (postgres://user:password@host:port/db).
    #[arg(long, env = "OAUTH_MCP_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// A PEM file of root certificates trusted for the database's TLS certificate beside
    /// the bundled Mozilla roots (a private CA).
    #[arg(long, env = "OAUTH_MCP_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
}

/// Flags of `oauth-mcp admin`. It works on the PostgreSQL database of `--database-url`
/// while servers run, or on a sled data directory: directly when no server holds it, else
/// through the running server's admin socket (see [`crate::admin`]).
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// sled data directory of the server; must exist.
    #[arg(
        long,
        global = true,
        env = "OAUTH_MCP_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// The PostgreSQL database of the deployment (as the servers' --database-url): then
    /// `admin` works on it directly, while the servers run, and --data-dir is not used.
    #[arg(
        long,
        global = true,
        env = "OAUTH_MCP_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// A PEM file of root certificates trusted for the database's TLS certificate beside
    /// the bundled Mozilla roots (as the servers' --database-ca-file).
    #[arg(long, global = true, env = "OAUTH_MCP_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// The server's supported scopes (as its --scopes), to check a new client's scopes.
    #[arg(
        long,
        global = true,
        env = "OAUTH_MCP_SCOPES",
        default_value = "mcp:read mcp:write"
    )]
    pub scopes: String,
    /// The server's default scopes (as its --default-scopes), for a client added without --scope.
    #[arg(long, global = true, env = "OAUTH_MCP_DEFAULT_SCOPES")]
    pub default_scopes: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `oauth-mcp admin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Add, list or remove clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Add, list or remove users, or change a password.
    #[command(subcommand)]
    User(UserCommand),
    /// Revoke every grant (all access and refresh tokens, unused codes) of a user or client.
    Revoke(RevokeArgs),
    /// Write the clients, users and live grants as JSON lines to standard output (from a
    /// stopped server's sled directory, or from PostgreSQL), to move to another backend.
    Export,
    /// Read an export from standard input into this storage (PostgreSQL, or an empty sled
    /// directory); records present already are kept. Nothing is written unless every line
    /// is valid.
    Import,
}

/// `oauth-mcp admin client ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its client_id and, for a confidential client, its secret
    /// (shown this once only).
    Add(ClientAddArgs),
    /// List the registered clients.
    List,
    /// Remove a client and revoke all of its grants.
    Remove {
        /// The client_id.
        client_id: String,
    },
}

/// Flags of `oauth-mcp admin client add`.
#[derive(Debug, clap::Args)]
pub struct ClientAddArgs {
    /// Name shown on the consent page.
    #[arg(long)]
    pub name: Option<String>,
    /// Redirect URI (https, or http on a loopback host); repeat for several.
    #[arg(long = "redirect-uri", required = true)]
    pub redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE only), e.g. a native or browser app.
    #[arg(long)]
    pub public: bool,
    /// Authenticate with client_secret_post instead of client_secret_basic.
    #[arg(long, conflicts_with = "public")]
    pub secret_post: bool,
    /// Scope the client may request; repeat or space-separate (default: the default scopes).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Grant type: authorization_code, refresh_token or client_credentials; repeat for
    /// several (default: authorization_code and refresh_token).
    #[arg(long = "grant-type")]
    pub grant_types: Vec<String>,
}

/// `oauth-mcp admin user ...`. Passwords are read from standard input (prompted for, without
/// echo, on a terminal), never taken as an argument, so they stay out of `ps` and shell
/// history.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// Username (also the token subject).
        username: String,
    },
    /// Change a user's password, read from standard input.
    Passwd {
        /// Username.
        username: String,
        /// Also revoke every grant of the user (tokens issued before the change).
        #[arg(long)]
        revoke: bool,
    },
    /// Remove a user and revoke all of their grants.
    Remove {
        /// Username.
        username: String,
    },
    /// List the usernames.
    List,
}

/// Flags of `oauth-mcp admin revoke`: exactly one of `--user` and `--client`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct RevokeArgs {
    /// Revoke every grant of this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Revoke every grant of this client.
    #[arg(long)]
    pub client: Option<String>,
}

/// Flags of `oauth-mcp loadtest`.
#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// Base URL of the server under test; several (comma-separated or repeated) for several
    /// instances of one deployment (one shared database, --key-file and --public-url): virtual
    /// user `i` connects to URL `i mod n` (round robin per connection) and sends the first
    /// URL's host as `Host`, as a load balancer would; preparation uses the first.
    #[arg(long, value_delimiter = ',', default_values = ["http://127.0.0.1:8000"])]
    pub url: Vec<String>,
    /// Client id (default: the demo client). Ignored with --register.
    #[arg(long, default_value = "demo_client")]
    pub client_id: String,
    /// Client secret.
    #[arg(long, default_value = "demo_secret")]
    pub client_secret: String,
    /// Register a new confidential client (RFC 7591) instead of using --client-id.
    #[arg(long)]
    pub register: bool,
    /// Resource owner for the login form.
    #[arg(long, default_value = "demo_user")]
    pub username: String,
    /// Their password.
    #[arg(long, default_value = "demo_password")]
    pub password: String,
    /// Redirect URI registered for the client.
    #[arg(long, default_value = "http://127.0.0.1:8765/callback")]
    pub redirect_uri: String,
    /// Scenarios to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["trivial", "client-credentials", "refresh", "code", "tools-call"])]
    pub scenarios: Vec<crate::loadtest::Scenario>,
    /// Concurrencies (virtual users, one connection each), comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["1", "16", "64"])]
    pub concurrency: Vec<usize>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Warm-up seconds per run (not measured).
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Codes prepared per `code` run (at most 6,000 per virtual user), through the login and
    /// consent pages (one password login per generator connection, then one consent per
    /// code). A run ends early when they are used up; its rate and CPU figures then cover
    /// only the time they lasted.
    #[arg(long, default_value_t = 50_000)]
    pub codes: usize,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pid of the server under test, when it runs on this machine: reports its CPU time per
    /// request (Linux). Several (comma-separated or repeated): their CPU time together.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Run every scenario and concurrency this many times, interleaved, and report the
    /// round with the median rate of each (shared machines are noisy: read medians).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A space- or comma-separated list.
fn split_list(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The supported and default scopes from `--scopes` and `--default-scopes` (default: all
/// supported), shared by the server's and the administration command's flags.
fn scope_lists(scopes: &str, default_scopes: Option<&str>) -> (Vec<String>, Vec<String>) {
    let scopes = split_list(scopes);
    let default_scopes = default_scopes
        .map(split_list)
        .unwrap_or_else(|| scopes.clone());
    (scopes, default_scopes)
}

impl Cli {
    /// The configuration these flags describe (validated later by [`Config::settings`]).
    pub fn config(&self) -> Config {
        let (scopes, default_scopes) = scope_lists(&self.scopes, self.default_scopes.as_deref());
        Config {
            bind: self.bind,
            public_url: self.public_url.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone().map(DatabaseUrl::from),
            database_ca_file: self.database_ca_file.clone(),
            key_file: self.key_file.clone(),
            demo: !self.no_demo,
            keep_demo: self.keep_demo,
            unused_client_ttl: Duration::from_secs(self.unused_client_ttl),
            max_registered_clients: self.max_registered_clients,
            client_metadata_max_fetches_per_host: self.client_metadata_fetches_per_host,
            client_metadata_stale_if_error: Duration::from_secs(
                self.client_metadata_stale_if_error,
            ),
            scopes,
            default_scopes,
            code_ttl: Duration::from_secs(self.code_ttl),
            access_token_ttl: Duration::from_secs(self.access_token_ttl),
            refresh_token_ttl: Duration::from_secs(self.refresh_token_ttl),
            refresh_grace: Duration::from_secs(self.refresh_grace),
            cache_capacity: self.cache_mb.saturating_mul(1024 * 1024),
            registrations_per_hour: self.registrations_per_hour,
            registered_client_credentials: self.registered_client_credentials,
            private_use_redirects: !self.no_private_use_redirects,
            metrics: !self.no_metrics,
            client_metadata_documents: !self.no_client_metadata_documents,
            client_metadata_allow_http: self.client_metadata_allow_http,
            client_metadata_allow_private: self.client_metadata_allow_private,
            client_metadata_ca_file: self.client_metadata_ca_file.clone(),
            client_metadata_trusted_hosts: self
                .client_metadata_trusted_hosts
                .as_deref()
                .map(split_list)
                .unwrap_or_default(),
            mcp_max_sessions: self.mcp_max_sessions,
            trusted_proxies: self
                .trusted_proxies
                .as_deref()
                .map(split_list)
                .unwrap_or_default(),
            password_hash_concurrency: self.password_hash_concurrency,
            ..Config::default()
        }
    }
}

impl AdminArgs {
    /// The configuration the administration actors run with: the data directory or the
    /// database, and the server's scopes; everything else at its default.
    pub fn config(&self) -> Config {
        let (scopes, default_scopes) = scope_lists(&self.scopes, self.default_scopes.as_deref());
        Config {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone().map(DatabaseUrl::from),
            database_ca_file: self.database_ca_file.clone(),
            scopes,
            default_scopes,
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(args: &[&str]) -> Config {
        let argv = std::iter::once("oauth-mcp").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().config()
    }

    #[test]
    fn switches_reach_the_config() {
        let c = config(&[]);
        assert!(c.client_metadata_documents);
        assert!(!c.client_metadata_allow_http && !c.client_metadata_allow_private);
        assert!(c.metrics && c.demo && !c.registered_client_credentials);
        assert!(c.private_use_redirects);
        assert_eq!(c.mcp_max_sessions, 10_000);
        assert!(c.trusted_proxies.is_empty() && c.password_hash_concurrency == 0);
        let c = config(&[
            "--no-client-metadata-documents",
            "--client-metadata-allow-http",
            "--client-metadata-allow-private",
            "--no-metrics",
            "--no-demo",
            "--registered-client-credentials",
            "--no-private-use-redirects",
            "--key-file",
            "/etc/oauth-mcp/key",
            "--scopes",
            "a,b c",
            "--client-metadata-trusted-hosts",
            "app.example, *.vendor.example",
            "--mcp-max-sessions",
            "7",
            "--trusted-proxies",
            "10.0.0.0/8, 2001:db8::/32",
            "--password-hash-concurrency",
            "3",
            "--client-metadata-ca-file",
            "/etc/oauth-mcp/ca.pem",
        ]);
        assert_eq!(
            c.client_metadata_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/oauth-mcp/ca.pem"))
        );
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(c.password_hash_concurrency, 3);
        assert!(!c.client_metadata_documents);
        assert!(c.client_metadata_allow_http && c.client_metadata_allow_private);
        assert!(!c.metrics && !c.demo && c.registered_client_credentials);
        assert!(!c.private_use_redirects);
        assert_eq!(c.scopes, ["a", "b", "c"]);
        assert_eq!(
            c.key_file.as_deref(),
            Some(std::path::Path::new("/etc/oauth-mcp/key"))
        );
        assert_eq!(c.default_scopes, c.scopes);
        assert_eq!(
            c.client_metadata_trusted_hosts,
            ["app.example", "*.vendor.example"]
        );
        assert_eq!(c.mcp_max_sessions, 7);
    }

    #[test]
    fn the_database_url_reaches_the_config_and_migrate_takes_it() {
        assert_eq!(config(&[]).database_url, None);
        let url = "postgres://app:pw@db.internal:5432/auth";
        assert_eq!(
            config(&["--database-url", url])
                .database_url
                .as_ref()
                .map(DatabaseUrl::as_str),
            Some(url)
        );
        assert_eq!(
            config(&["--database-ca-file", "/etc/db-ca.pem"]).database_ca_file,
            Some(PathBuf::from("/etc/db-ca.pem"))
        );
        let cli = Cli::try_parse_from([
            "oauth-mcp",
            "migrate",
            "--database-url",
            url,
            "--database-ca-file",
            "/etc/db-ca.pem",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Migrate(args)) => {
                assert_eq!(args.database_url, url);
                assert_eq!(args.database_ca_file, Some(PathBuf::from("/etc/db-ca.pem")));
            }
            other => panic!("not migrate: {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["oauth-mcp", "admin", "--database-url", url, "user", "list"])
                .unwrap();
        match cli.command {
            Some(Command::Admin(args)) => assert_eq!(args.database_url.as_deref(), Some(url)),
            other => panic!("not admin: {other:?}"),
        }
    }

    #[test]
    fn round_2_registration_and_document_flags_reach_the_config() {
        let c = config(&[]);
        assert!(!c.keep_demo);
        assert_eq!(c.unused_client_ttl, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.max_registered_clients, 10_000);
        assert_eq!(c.client_metadata_max_fetches_per_host, 4);
        assert_eq!(c.client_metadata_stale_if_error, Duration::from_secs(3600));
        let c = config(&[
            "--keep-demo",
            "--unused-client-ttl",
            "60",
            "--max-registered-clients",
            "5",
            "--client-metadata-fetches-per-host",
            "2",
            "--client-metadata-stale-if-error",
            "0",
        ]);
        assert!(c.keep_demo);
        assert_eq!(c.unused_client_ttl, Duration::from_secs(60));
        assert_eq!(c.max_registered_clients, 5);
        assert_eq!(c.client_metadata_max_fetches_per_host, 2);
        assert!(c.client_metadata_stale_if_error.is_zero());
    }
}
