//! Redirect URI rules.
//!
//! Registration (MCP authorization "Communication Security", RFC 9700 §2.1, OAuth 2.1 §2.3):
//! absolute `https` URIs, or `http` on a loopback host; no fragment; no control characters
//! or whitespace (RFC 3986 §2 has no place for them, and a NUL or line break cuts or
//! splits the URI in whatever logs or parses it later); no userinfo
//! (`https://trusted.example@evil.example/` reads as one host and leads to another,
//! RFC 3986 §7.6); nothing else. The same syntax rules ([`check_syntax`]) hold for a
//! redirect URI presented at /authorize.
//! Matching at /authorize (OAuth 2.1 §4.1.1, RFC 8252 §7.3): exact string comparison, except
//! that for loopback `http` URIs the port is ignored, because native clients (Claude Code,
//! Copilot CLI, ...) listen on an ephemeral port.

use url::{Host, Url};

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectUriError {
    /// Not an absolute URI.
    #[error("redirect URI is not an absolute URI")]
    NotAbsolute,
    /// Has a fragment (OAuth 2.1 §2.3.1).
    #[error("redirect URI must not contain a fragment")]
    Fragment,
    /// Not https, and not http on a loopback host.
    #[error("redirect URI must use https, or http on a loopback host")]
    Scheme,
    /// Contains a control character (NUL included) or whitespace.
    #[error("redirect URI must not contain control characters or whitespace")]
    Character,
    /// Has a userinfo part (`user@` or `user:password@` before the host).
    #[error("redirect URI must not contain a username or password")]
    Userinfo,
}

/// The syntax rules that do not depend on the scheme: no control character (C0, DEL, C1;
/// NUL included), no whitespace of any kind, and no userinfo. Checked on the string as
/// sent, because the URL parser silently strips or percent-encodes some of these.
pub fn check_syntax(uri: &str) -> Result<(), RedirectUriError> {
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(RedirectUriError::Character);
    }
    // The authority is what follows `//` up to the path, query or fragment; an `@` in it
    // starts the host (RFC 3986 §3.2.1), whatever comes before is userinfo.
    if let Some((_, rest)) = uri.split_once("//") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(RedirectUriError::Userinfo);
        }
    }
    Ok(())
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Validates a redirect URI offered for registration.
pub fn validate_for_registration(uri: &str) -> Result<Url, RedirectUriError> {
    check_syntax(uri)?;
    let url = Url::parse(uri).map_err(|_| RedirectUriError::NotAbsolute)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::Userinfo);
    }
    if url.fragment().is_some() || uri.contains('#') {
        return Err(RedirectUriError::Fragment);
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback_host(url.host()) => Ok(url),
        _ => Err(RedirectUriError::Scheme),
    }
}

/// Does `requested` match the registered URI? Exact string match, or for loopback http the
/// same scheme, host, path and query on any port.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    reg.scheme() == "http"
        && req.scheme() == "http"
        && is_loopback_host(reg.host())
        && reg.host() == req.host()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
        // Compare the textual form minus the port too, so that no normalisation by the URL
        // parser (case, dot segments) lets a different string match.
        && strip_port(registered) == strip_port(requested)
}

/// The URI text with its `:port` after the authority removed.
fn strip_port(uri: &str) -> String {
    let Some(rest) = uri.strip_prefix("http://") else {
        return uri.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rfind(':') {
        // Do not cut inside an IPv6 literal: the port colon comes after the `]`.
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    format!("http://{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_rules() {
        assert!(validate_for_registration("https://app.example/cb").is_ok());
        assert!(validate_for_registration("http://localhost:3000/cb").is_ok());
        assert!(validate_for_registration("http://127.0.0.1/cb").is_ok());
        assert!(validate_for_registration("http://[::1]:9/cb").is_ok());
        assert_eq!(
            validate_for_registration("http://evil.example/cb"),
            Err(RedirectUriError::Scheme)
        );
        assert_eq!(
            validate_for_registration("myapp://cb"),
            Err(RedirectUriError::Scheme)
        );
        assert_eq!(
            validate_for_registration("javascript:alert(1)"),
            Err(RedirectUriError::Scheme)
        );
        assert_eq!(
            validate_for_registration("https://a.example/cb#x"),
            Err(RedirectUriError::Fragment)
        );
        assert_eq!(
            validate_for_registration("/cb"),
            Err(RedirectUriError::NotAbsolute)
        );
        for bad in [
            "https://a.example/cb\0",
            "https://a.example/c\u{1}b",
            "https://a.example/cb\u{7f}",
            "https://a.example/cb\u{85}",
            "https://a.example/c b",
            "https://a.example/cb\n",
            "\thttps://a.example/cb",
            "https://a.example/cb\u{2028}",
        ] {
            assert_eq!(
                validate_for_registration(bad),
                Err(RedirectUriError::Character),
                "{bad:?}"
            );
        }
        for bad in [
            "https://u@a.example/cb",
            "https://u:p@a.example/cb",
            "https://@a.example/cb",
            "http://localhost:1@evil.example/cb",
        ] {
            assert_eq!(
                validate_for_registration(bad),
                Err(RedirectUriError::Userinfo),
                "{bad:?}"
            );
        }
        // An `@` after the authority is just a character of the path or query.
        assert!(validate_for_registration("https://a.example/cb?who=a@b").is_ok());
    }

    #[test]
    fn loopback_port_relaxed_only() {
        let reg = "http://127.0.0.1:8765/callback";
        assert!(matches(reg, "http://127.0.0.1:8765/callback"));
        assert!(matches(reg, "http://127.0.0.1:1234/callback"));
        assert!(matches(reg, "http://127.0.0.1/callback"));
        assert!(!matches(reg, "http://localhost:8765/callback"));
        assert!(!matches(reg, "http://127.0.0.1:8765/callback/"));
        assert!(!matches(reg, "http://127.0.0.1:8765/other"));
        assert!(!matches(reg, "http://127.0.0.1:8765/callback?x=1"));
        assert!(matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example:444/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example/CB"));
    }
}
