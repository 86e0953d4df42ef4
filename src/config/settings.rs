//! [`Settings`]: the configuration checked once at start-up and turned into the typed,
//! derived values the rest of the crate reads ([`Config::settings`]): the issuer and
//! resource, scopes, trusted proxies, and the bounds every other setting must respect (a
//! code lives at most 10 minutes, OAuth 2.1 §4.1.2; the public URL is https unless loopback).

use std::time::Duration;

use url::Url;

use super::{Config, ConfigError};
use crate::domain::{
    client_address::TrustedProxies,
    redirect::is_loopback_host,
    scope::{Scopes, OFFLINE_ACCESS},
};

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
    /// The PEM root certificates of `client_metadata_ca_file`, read at start.
    pub client_metadata_roots: Option<Vec<u8>>,
    /// The PEM root certificates of `database_ca_file`, read at start.
    pub database_roots: Option<Vec<u8>>,
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
        // Access tokens never carry offline_access (SEP-2207), so requiring it at /mcp
        // would refuse every token.
        if mcp_scopes.contains(OFFLINE_ACCESS) {
            return Err(ConfigError(
                "MCP scopes must not include offline_access: it is kept on the grant, never in an access token".into(),
            ));
        }
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
        let client_metadata_roots = match &self.client_metadata_ca_file {
            None => None,
            Some(path) => Some(read_roots(path, "client metadata CA file")?),
        };
        let database_roots = match &self.database_ca_file {
            None => None,
            Some(path) => Some(read_roots(path, "database CA file")?),
        };
        let issuer = public_url.as_str().trim_end_matches('/').to_owned();
        Ok(Settings {
            client_metadata_roots,
            database_roots,
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

/// A PEM file of root certificates (`--client-metadata-ca-file`, `--database-ca-file`;
/// `what` names it in errors), checked to hold at least one certificate that the TLS
/// library accepts.
fn read_roots(path: &std::path::Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| ConfigError(format!("{what} {shown}: {e}")))?;
    let certs = match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => certs,
        Ok(_) => {
            return Err(ConfigError(format!(
                "{what} {shown}: no PEM certificate in it"
            )))
        }
        Err(e) => return Err(ConfigError(format!("{what} {shown}: {e}"))),
    };
    // Decoding the PEM armour does not parse the certificates: the TLS library does that
    // when a client is built. Build one now, so a damaged file stops the start instead of
    // every document fetch later.
    certs
        .into_iter()
        .fold(reqwest::Client::builder(), |b, cert| {
            b.add_root_certificate(cert)
        })
        .build()
        .map(|_| pem)
        .map_err(|e| ConfigError(format!("{what} {shown}: {e}")))
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
    fn the_client_metadata_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("oauth-mcp-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = Config::default();
        c.client_metadata_ca_file = Some(dir.join("missing.pem"));
        assert!(c.settings(1).unwrap_err().0.contains("missing.pem"));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        c.client_metadata_ca_file = Some(empty);
        assert!(c.settings(1).unwrap_err().0.contains("no PEM certificate"));
        // PEM armour around something that is not a certificate.
        let damaged = dir.join("damaged.pem");
        std::fs::write(
            &damaged,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        c.client_metadata_ca_file = Some(damaged);
        assert!(c.settings(1).unwrap_err().0.contains("damaged.pem"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offline_access_is_no_mcp_scope() {
        let mut c = Config::default();
        c.mcp_scopes = vec!["mcp:read".into(), "offline_access".into()];
        let e = c.settings(1).unwrap_err();
        assert!(e.0.contains("offline_access"), "{e}");
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
