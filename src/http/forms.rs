//! Defences of the login and consent form against posts from other sites (RFC 9700 §4.7,
//! CSRF; OAuth 2.1 §7.6). Two independent layers, checked by the `/authorize/decision`
//! handler before anything else:
//!
//! - **Fetch metadata and `Origin`.** A post whose `Sec-Fetch-Site` is anything but
//!   `same-origin` or `none`, or whose `Origin` is present, not `null` and not one of this
//!   server's own origins, is refused with a 403 page. Our pages send
//!   `Referrer-Policy: no-referrer`, so browsers post our own form with `Origin: null`;
//!   requests with neither header (curl, scripts) pass to the next layer.
//! - **A CSRF value minted by the server for this browser.** The field is
//!   HMAC-SHA256(server key, label, binding), where the binding is the browser's sign-in
//!   session cookie when the page offered consent as the signed-in user, and otherwise the
//!   browser's pre-login cookie (`oauth_mcp_csrf`, 256 random bits). Cookies are not
//!   port-isolated, so a page on another localhost port can set both cookie and field to
//!   values of its choosing; it cannot compute the MAC, and it cannot read the `HttpOnly`
//!   sign-in cookie, so it cannot approve in the signed-in user's name. A consent without a
//!   password must carry a value bound to the sign-in session it uses.
//!
//! And the reading of the form itself into the user's [`Decision`].

use actix_web::{http::header, http::StatusCode, HttpRequest};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

use crate::{
    config::Settings,
    domain::{redirect::is_loopback_host, secrets::Password, server_key::ServerKey},
    endpoints::authorize::Decision,
    error::Error,
    oauth::params::Params,
};

/// Domain-separation label of the form's CSRF MAC ([`ServerKey::mac`]).
const CSRF_LABEL: &str = "oauth-mcp/form-csrf/v1";

/// What a CSRF value is bound to.
#[derive(Debug, Clone, Copy)]
pub enum CsrfBinding<'a> {
    /// The browser's pre-login cookie: forms that ask for a password.
    PreLogin(&'a str),
    /// The browser's sign-in session cookie: forms that approve as the signed-in user.
    SignIn(&'a str),
}

impl CsrfBinding<'_> {
    fn parts(&self) -> [&[u8]; 2] {
        match self {
            Self::PreLogin(id) => [b"pre-login", id.as_bytes()],
            Self::SignIn(session) => [b"sign-in", session.as_bytes()],
        }
    }
}

/// The CSRF field value for `binding` (43 characters of base64url).
pub fn csrf_value(key: &ServerKey, binding: CsrfBinding<'_>) -> String {
    URL_SAFE_NO_PAD.encode(key.mac(CSRF_LABEL, &binding.parts()))
}

/// Whether `field` is the CSRF value for `binding`, compared in constant time.
pub fn csrf_valid(key: &ServerKey, binding: CsrfBinding<'_>, field: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(field)
        .is_ok_and(|mac| key.verify(CSRF_LABEL, &binding.parts(), &mac))
}

/// Whether a decision post's CSRF `field` is acceptable, given the browser's sign-in
/// `session` and `pre_login` cookies. Approving without a password rides on the sign-in
/// session, so only a value bound to that session will do (`without_password`); a password
/// login or a denial needs a value this server minted for this browser, either kind.
pub fn csrf_accepted(
    key: &ServerKey,
    field: &str,
    without_password: bool,
    session: Option<&str>,
    pre_login: Option<&str>,
) -> bool {
    let for_session = session.is_some_and(|s| csrf_valid(key, CsrfBinding::SignIn(s), field));
    let for_browser =
        || pre_login.is_some_and(|p| csrf_valid(key, CsrfBinding::PreLogin(p), field));
    for_session || (!without_password && for_browser())
}

/// The refusal of a form post that a browser marked as coming from another site, if it
/// is one (see the module doc).
pub fn cross_site_refusal(req: &HttpRequest, settings: &Settings) -> Option<Error> {
    let headers = req.headers();
    let refused = || {
        Some(Error::page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, so it was not accepted. Start again from the application.",
        ))
    };
    let mut fetch_site = headers.get_all("sec-fetch-site");
    if let Some(site) = fetch_site.next() {
        let ok = fetch_site.next().is_none()
            && site
                .to_str()
                .is_ok_and(|s| matches!(s.trim(), "same-origin" | "none"));
        if !ok {
            return refused();
        }
    }
    let mut origins = headers.get_all(header::ORIGIN);
    if let Some(origin) = origins.next() {
        let ok = origins.next().is_none()
            && origin
                .to_str()
                .is_ok_and(|o| o == "null" || is_own_origin(settings, o));
        if !ok {
            return refused();
        }
    }
    None
}

/// Whether `origin` is one of this server's origins: the public URL's, and with a
/// loopback public URL, every loopback name on the same scheme and port.
pub fn is_own_origin(settings: &Settings, origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let public = &settings.public_url;
    let bare = url.path() == "/"
        && !origin.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    bare && url.scheme() == public.scheme()
        && url.port_or_known_default() == public.port_or_known_default()
        && (url.host() == public.host() || (settings.loopback && is_loopback_host(url.host())))
}

// The decision is what the authorization endpoint takes; reading it from our own HTML form
// is this layer's business, so the constructor lives here, beside the form's other checks.
impl Decision {
    /// The decision of a submitted consent form (`action`, `username`, `password`) and the
    /// browser's sign-in session cookie, if any; `None` when `action` is neither `approve`
    /// nor `deny`. Approving without a password uses the sign-in session when there is one.
    pub fn from_form(params: &Params, session: Option<String>) -> Option<Self> {
        match (params.get("action"), params.get("password"), session) {
            (Some("deny"), _, _) => Some(Self::Deny),
            // No password typed, and the page offered consent as the signed-in user.
            (Some("approve"), None, Some(session)) => Some(Self::ApproveSignedIn { session }),
            (Some("approve"), password, _) => Some(Self::Approve {
                username: params.get("username").unwrap_or_default().to_owned(),
                password: Password::new(password.unwrap_or_default().to_owned()),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;
    use crate::config::Config;

    #[test]
    fn csrf_values_are_bound_to_key_kind_and_browser() {
        let key = ServerKey::from_bytes(&[1u8; 32]).unwrap();
        let other = ServerKey::from_bytes(&[2u8; 32]).unwrap();
        let v = csrf_value(&key, CsrfBinding::PreLogin("a"));
        assert_eq!(v.len(), 43);
        assert!(crate::http::pages::is_csrf_token(&v));
        assert!(csrf_valid(&key, CsrfBinding::PreLogin("a"), &v));
        assert!(!csrf_valid(&key, CsrfBinding::PreLogin("b"), &v));
        assert!(!csrf_valid(&key, CsrfBinding::SignIn("a"), &v));
        assert!(!csrf_valid(&other, CsrfBinding::PreLogin("a"), &v));
        assert!(!csrf_valid(&key, CsrfBinding::PreLogin("a"), "a"));
        assert!(!csrf_valid(&key, CsrfBinding::PreLogin("a"), ""));
    }

    #[test]
    fn consent_without_a_password_needs_the_session_bound_value() {
        let key = ServerKey::from_bytes(&[1u8; 32]).unwrap();
        let by_session = csrf_value(&key, CsrfBinding::SignIn("s"));
        let by_browser = csrf_value(&key, CsrfBinding::PreLogin("p"));
        let ok = |field: &str, without_password| {
            csrf_accepted(&key, field, without_password, Some("s"), Some("p"))
        };
        assert!(ok(&by_session, true) && ok(&by_session, false));
        assert!(!ok(&by_browser, true));
        assert!(ok(&by_browser, false));
        assert!(!csrf_accepted(&key, &by_session, true, None, Some("p")));
        assert!(!csrf_accepted(&key, &by_browser, false, Some("s"), None));
        assert!(!csrf_accepted(&key, "p", false, Some("s"), Some("p")));
    }

    #[test]
    fn own_origins() {
        let s = Config::default().settings(8000).unwrap();
        for ok in [
            "http://localhost:8000",
            "http://127.0.0.1:8000",
            "http://[::1]:8000",
        ] {
            assert!(is_own_origin(&s, ok), "{ok}");
        }
        for bad in [
            "http://localhost:8001",
            "https://localhost:8000",
            "http://evil.example:8000",
            "http://localhost:8000/",
            "http://localhost:8000/x",
            "http://u@localhost:8000",
            "null",
            "",
        ] {
            assert!(!is_own_origin(&s, bad), "{bad}");
        }
        let mut c = Config::default();
        c.public_url = Some(url::Url::parse("https://auth.example.com").unwrap());
        let s = c.settings(8000).unwrap();
        assert!(is_own_origin(&s, "https://auth.example.com"));
        assert!(is_own_origin(&s, "https://auth.example.com:443"));
        assert!(!is_own_origin(&s, "https://localhost"));
        assert!(!is_own_origin(&s, "http://auth.example.com"));
    }

    #[test]
    fn fetch_metadata_and_origin() {
        let s = Config::default().settings(8000).unwrap();
        let refused = |headers: &[(&str, &str)]| {
            let mut req = TestRequest::post();
            for (k, v) in headers {
                req = req.append_header((*k, *v));
            }
            cross_site_refusal(&req.to_http_request(), &s).is_some()
        };
        assert!(!refused(&[]));
        assert!(!refused(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "null")
        ]));
        assert!(!refused(&[("sec-fetch-site", "none")]));
        assert!(!refused(&[("origin", "http://127.0.0.1:8000")]));
        for site in ["cross-site", "same-site", "other", ""] {
            assert!(refused(&[("sec-fetch-site", site)]), "{site}");
        }
        assert!(refused(&[("origin", "http://localhost:9999")]));
        assert!(refused(&[("origin", "null"), ("origin", "null")]));
        assert!(refused(&[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "same-origin")
        ]));
    }

    fn decide(form: &[u8], session: Option<&str>) -> Option<Decision> {
        Decision::from_form(&Params::parse(form), session.map(str::to_owned))
    }

    #[test]
    fn decision_form_parsing() {
        assert!(matches!(
            decide(b"action=deny&password=x", Some("s")),
            Some(Decision::Deny)
        ));
        assert!(matches!(
            decide(b"action=approve", Some("s")),
            Some(Decision::ApproveSignedIn { session }) if session == "s"
        ));
        let Some(Decision::Approve { username, password }) =
            decide(b"action=approve&username=alice&password=p+w", Some("s"))
        else {
            panic!("expected a password approval");
        };
        assert_eq!((username.as_str(), password.secret()), ("alice", "p w"));
        assert!(matches!(
            decide(b"action=approve", None),
            Some(Decision::Approve { username, .. }) if username.is_empty()
        ));
        assert!(decide(b"action=maybe", None).is_none());
        assert!(decide(b"password=x", Some("s")).is_none());
    }
}
