//! Redirect URI rules.
//!
//! Registration (MCP authorization "Communication Security", RFC 9700 §2.1, OAuth 2.1 §2.3):
//! absolute `https` URIs, `http` on a loopback host, or (unless the operator turns it off)
//! a private-use URI scheme of a native app (RFC 8252 §7.1, see [`is_private_use`]); no
//! fragment; no control characters or whitespace (RFC 3986 §2 has no place for them, and a
//! NUL or line break cuts or splits the URI in whatever logs or parses it later); no
//! userinfo (`https://trusted.example@evil.example/` reads as one host and leads to
//! another, RFC 3986 §7.6); nothing else. The same syntax rules ([`check_syntax`]) hold for
//! a redirect URI presented at /authorize.
//!
//! Private-use schemes go beyond the MCP sentence "All redirect URIs MUST be either
//! localhost or use HTTPS" (2026-07-28 security considerations), deliberately: OAuth 2.1
//! §2.3.1 and RFC 8252 §7.1 allow them for native apps, and Cursor registers
//! `cursor://anysphere.cursor-mcp/oauth/callback`. What protects the code is PKCE (always
//! required here) and exact matching, since any app may claim a scheme (RFC 8252 §8.1).
//!
//! Matching at /authorize (OAuth 2.1 §4.1.1, RFC 8252 §7.3): exact string comparison, except
//! that for loopback `http` URIs the port is ignored, whether or not the registered URI has
//! one, because native clients (Claude Code, Zed register no port; VS Code registers 33418
//! and falls back to another when it is taken) listen on whatever port they got.

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
    /// Not https, not http on a loopback host, and not an acceptable private-use scheme.
    #[error("redirect URI must use https, http on a loopback host, or a private-use scheme")]
    Scheme,
    /// A private-use scheme on a server that does not accept them
    /// (`--no-private-use-redirects`).
    #[error("redirect URIs with a private-use scheme are not accepted by this server")]
    PrivateUseOff,
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

/// Schemes that are never a native app's redirect URI, although they have the shape of one:
/// they run script or show content in the browser itself (`javascript`, `data`, `vbscript`,
/// `blob`, `about`, `view-source`, `filesystem`), reach files or the network
/// (`file`, `ftp`, `ws`, `wss`), belong to the browser or its extensions (`chrome`,
/// `chrome-extension`, `edge`, `opera`, `moz-extension`, `resource`, `jar`), or start other
/// apps by a description rather than a scheme of their own (Android's `intent`), or hand
/// the URI to a handler of the operating system itself rather than to one app (Windows'
/// search, shell, help and archive handlers and every `ms-` scheme, see
/// [`DENIED_SCHEME_PREFIXES`]; network clients such as `smb`, `ssh`, `telnet`, `ldap`;
/// Apple's `itms-services` installer and `x-safari-*`; Java Web Start's `jnlp`; `mailto`,
/// `tel`, `sms`). `http` and `https` have rules of their own.
pub const DENIED_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "blob",
    "about",
    "view-source",
    "filesystem",
    "file",
    "ftp",
    "ftps",
    "sftp",
    "ws",
    "wss",
    "chrome",
    "chrome-extension",
    "chrome-untrusted",
    "edge",
    "opera",
    "brave",
    "moz-extension",
    "resource",
    "jar",
    "intent",
    "search",
    "search-ms",
    "shell",
    "mk",
    "its",
    "mhtml",
    "hcp",
    "jnlp",
    "smb",
    "nfs",
    "ssh",
    "telnet",
    "ldap",
    "ldaps",
    "news",
    "nntp",
    "gopher",
    "itms-services",
    "x-safari-http",
    "x-safari-https",
    "mailto",
    "tel",
    "sms",
];

/// Scheme prefixes denied like [`DENIED_SCHEMES`]: Windows' own protocol handlers
/// (`ms-msdt`, `ms-officecmd`, `ms-appinstaller`, `ms-settings`, `ms-its`, ...).
pub const DENIED_SCHEME_PREFIXES: &[&str] = &["ms-"];

/// Whether `url` is an acceptable private-use redirect URI of a native app (RFC 8252 §7.1,
/// OAuth 2.1 §2.3.1). The rule:
/// - the scheme is neither `http` nor `https`, not in [`DENIED_SCHEMES`], and does not end
///   in `-extension` (a browser extension's pages);
/// - the URI names where it leads: an authority with a non-empty host
///   (`cursor://anysphere.cursor-mcp/oauth/callback`), or else a path that starts with `/`
///   and is more than `/` (`com.example.app:/oauth2redirect`, RFC 8252's own example).
///   Opaque forms such as `mailto:a@b`, `myapp:cb` or `myapp:/` are refused;
/// - no fragment, userinfo, control characters or whitespace (checked by the caller, as
///   for every redirect URI).
///
/// Such a URI is only ever matched exactly at /authorize.
pub fn is_private_use(url: &Url) -> bool {
    let scheme = url.scheme();
    if matches!(scheme, "http" | "https")
        || DENIED_SCHEMES.contains(&scheme)
        || DENIED_SCHEME_PREFIXES.iter().any(|p| scheme.starts_with(p))
        || scheme.ends_with("-extension")
    {
        return false;
    }
    match url.host_str() {
        Some(host) => !host.is_empty(),
        None => url.path().starts_with('/') && url.path().len() > 1,
    }
}

/// Validates a redirect URI offered for registration; private-use schemes only when
/// `private_use` is on.
pub fn validate_for_registration(uri: &str, private_use: bool) -> Result<Url, RedirectUriError> {
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
        _ if is_private_use(&url) => {
            if private_use {
                Ok(url)
            } else {
                Err(RedirectUriError::PrivateUseOff)
            }
        }
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

    fn validate_for_registration_on(uri: &str) -> Result<Url, RedirectUriError> {
        validate_for_registration(uri, true)
    }

    #[test]
    fn private_use_schemes() {
        for ok in [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "com.example.app:/oauth2redirect",
            "com.example.app:/oauth2redirect/example-provider",
            "myapp://callback",
            "myapp://host",
        ] {
            assert!(validate_for_registration_on(ok).is_ok(), "{ok}");
            assert_eq!(
                validate_for_registration(ok, false),
                Err(RedirectUriError::PrivateUseOff),
                "{ok}"
            );
        }
        for bad in [
            "javascript:alert(1)",
            "javascript://x/%0aalert(1)",
            "JavaScript://x/%0aalert(1)",
            "data:text/html,<b>x</b>",
            "data://x/y",
            "file:///etc/passwd",
            "file://host/share",
            "vbscript://x/y",
            "blob://x/y",
            "about://x/blank",
            "ws://x/y",
            "wss://x/y",
            "ftp://x/y",
            "chrome://settings/",
            "chrome-extension://abc/cb",
            "moz-extension://abc/cb",
            "view-source://x/y",
            "intent://scan/#Intent;scheme=zxing;end",
            "intent://x/y",
            "search-ms://query/x",
            "ms-msdt://id/x",
            "ms-officecmd://x/y",
            "MS-Settings://x/y",
            "shell://x/y",
            "smb://host/share",
            "ssh://host/x",
            "itms-services://x/y",
            "x-safari-https://evil.example/",
            "jnlp://x/y",
            "http://evil.example/cb",
            "myapp:cb",
            "myapp:/",
            "myapp:",
            "mailto:a@b.example",
            "tel:+1555",
            "myapp:///",
            "cursor://anysphere.cursor-mcp/oauth/callback#x",
            "cursor://u@anysphere.cursor-mcp/oauth/callback",
        ] {
            assert!(validate_for_registration_on(bad).is_err(), "{bad}");
        }
        // Exact match only: no port, path, case or query leniency.
        let reg = "cursor://anysphere.cursor-mcp/oauth/callback";
        assert!(matches(reg, reg));
        for other in [
            "cursor://anysphere.cursor-mcp/oauth/callback/",
            "cursor://anysphere.cursor-mcp/oauth/callback?x=1",
            "cursor://anysphere.cursor-mcp/oauth/callback/more",
            "cursor://evil.extension/oauth/callback",
            "cursor://anysphere.cursor-mcp:1/oauth/callback",
            "Cursor://anysphere.cursor-mcp/oauth/callback",
        ] {
            assert!(!matches(reg, other), "{other}");
        }
    }

    #[test]
    fn loopback_with_a_registered_port_matches_any_port() {
        // VS Code registers 33418 and uses another port when that one is taken.
        let reg = "http://127.0.0.1:33418/";
        assert!(matches(reg, "http://127.0.0.1:59656/"));
        assert!(matches(reg, "http://127.0.0.1/"));
        assert!(!matches(reg, "http://127.0.0.1:59656/x"));
        assert!(!matches(reg, "http://localhost:33418/"));
        // Claude Code and Zed register no port.
        assert!(matches(
            "http://localhost/callback",
            "http://localhost:41234/callback"
        ));
        assert!(matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:41234/callback"
        ));
        assert!(!matches(
            "http://127.0.0.1/callback",
            "http://localhost:41234/callback"
        ));
    }

    #[test]
    fn registration_rules() {
        assert!(validate_for_registration_on("https://app.example/cb").is_ok());
        assert!(validate_for_registration_on("http://localhost:3000/cb").is_ok());
        assert!(validate_for_registration_on("http://127.0.0.1/cb").is_ok());
        assert!(validate_for_registration_on("http://[::1]:9/cb").is_ok());
        assert_eq!(
            validate_for_registration_on("http://evil.example/cb"),
            Err(RedirectUriError::Scheme)
        );
        assert_eq!(
            validate_for_registration_on("myapp:cb"),
            Err(RedirectUriError::Scheme)
        );
        assert_eq!(
            validate_for_registration_on("javascript:alert(1)"),
            Err(RedirectUriError::Scheme)
        );
        assert_eq!(
            validate_for_registration_on("https://a.example/cb#x"),
            Err(RedirectUriError::Fragment)
        );
        assert_eq!(
            validate_for_registration_on("/cb"),
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
                validate_for_registration_on(bad),
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
                validate_for_registration_on(bad),
                Err(RedirectUriError::Userinfo),
                "{bad:?}"
            );
        }
        // An `@` after the authority is just a character of the path or query.
        assert!(validate_for_registration_on("https://a.example/cb?who=a@b").is_ok());
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
