//! Which names are this server's: the issuer a client that used a given `Host` sees
//! (loopback aliases, RFC 8414 §3.3 compares the issuer with the URL the client fetched), the
//! `Host` and `Origin` allow-lists of the DNS-rebinding defence (MCP 2025-11-25 transport
//! security), and which `resource` values name our MCP server (RFC 8707).

use url::Url;

use super::Settings;
use crate::domain::redirect::is_loopback_host;

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
    /// loopback public URL, the same URL under another loopback name; either with one
    /// trailing slash too (`…/mcp/`: both are valid URIs, MCP 2026-07-28 says clients SHOULD
    /// use the form without, and some send the other). Tokens are always bound to the
    /// canonical form, [`Settings::resource`], whichever spelling was sent.
    pub fn is_own_resource(&self, candidate: &str) -> bool {
        let candidate = candidate.strip_suffix('/').unwrap_or(candidate);
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
    use crate::config::Config;

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
        assert!(s.is_own_resource("http://localhost:8000/mcp/"));
        assert!(s.is_own_resource("http://127.0.0.1:8000/mcp/"));
        assert!(!s.is_own_resource("http://localhost:8000/mcp//"));
        assert!(!s.is_own_resource("http://localhost:8000/"));
        assert!(!s.is_own_resource("http://localhost:8000/mcp/x"));
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
}
