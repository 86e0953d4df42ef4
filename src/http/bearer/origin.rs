//! The DNS-rebinding defence in front of a protected resource (Streamable HTTP "Security
//! Warning": servers MUST validate `Origin`; we check `Host` too): a request whose `Host` is
//! not one of ours, or whose `Origin` is present and not allowed, gets 403. It runs before
//! authentication, so the answer does not depend on the token.

use actix_web::http::{header, header::HeaderMap, StatusCode};

use super::transport;
use crate::{config::Settings, error::Error};

/// Refuses a foreign or missing `Host`, and a foreign `Origin` (`Origin: null` included);
/// a request without `Origin` (not from a browser) passes.
pub fn check(headers: &HeaderMap, settings: &Settings) -> Result<(), Error> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| settings.host_allowed(h)) {
        return Err(transport(
            StatusCode::FORBIDDEN,
            "Forbidden: Host header is not allowed",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !origin.to_str().is_ok_and(|o| settings.origin_allowed(o)) {
            return Err(transport(
                StatusCode::FORBIDDEN,
                "Forbidden: Origin header is not allowed",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;
    use crate::config::Config;

    fn headers(pairs: &[(header::HeaderName, &'static [u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn refused(result: Result<(), Error>) -> Option<String> {
        match result {
            Ok(()) => None,
            Err(Error::Transport { status, message }) => {
                assert_eq!(status, StatusCode::FORBIDDEN);
                Some(message.into_owned())
            }
            Err(e) => panic!("unexpected refusal {e:?}"),
        }
    }

    #[test]
    fn own_host_passes_with_or_without_an_allowed_origin() {
        let s = Config::default().settings(8000).unwrap();
        assert_eq!(
            refused(check(&headers(&[(header::HOST, b"localhost:8000")]), &s)),
            None
        );
        let with_origin = headers(&[
            (header::HOST, b"127.0.0.1:8000"),
            (header::ORIGIN, b"http://localhost:8000"),
        ]);
        assert_eq!(refused(check(&with_origin, &s)), None);
    }

    #[test]
    fn foreign_missing_or_unreadable_host_is_refused() {
        let s = Config::default().settings(8000).unwrap();
        for h in [&b"evil.example"[..], b"evil.example:8000", b"\xff"] {
            let m = refused(check(&headers(&[(header::HOST, h)]), &s)).unwrap();
            assert!(m.contains("Host"), "{m}");
        }
        let m = refused(check(&HeaderMap::new(), &s)).unwrap();
        assert!(m.contains("Host"), "{m}");
    }

    #[test]
    fn foreign_null_or_unreadable_origin_is_refused_after_the_host() {
        let s = Config::default().settings(8000).unwrap();
        for o in [&b"https://evil.example"[..], b"null", b"\xff"] {
            let req = headers(&[(header::HOST, b"localhost:8000"), (header::ORIGIN, o)]);
            let m = refused(check(&req, &s)).unwrap();
            assert!(m.contains("Origin"), "{m}");
        }
        // The Host is checked first: a foreign Host with a foreign Origin names the Host.
        let both = headers(&[
            (header::HOST, b"evil.example"),
            (header::ORIGIN, b"https://evil.example"),
        ]);
        assert!(refused(check(&both, &s)).unwrap().contains("Host"));
    }
}
