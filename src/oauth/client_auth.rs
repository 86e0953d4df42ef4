//! Client authentication at the token, revocation and introspection endpoints
//! (OAuth 2.1 §2.4.1, §3.2.1): `client_secret_basic` (id and secret form-encoded, then
//! Base64), `client_secret_post`, or `none` (public clients send only `client_id`).
//! Exactly one method per request; with Basic, `client_id` in the body is not required.

use base64::{engine::general_purpose::STANDARD, Engine as _};

use super::{
    error::{ErrorCode, ProtocolError},
    params::Params,
};
use crate::domain::secrets::ClientSecret;

/// Credentials presented by a client.
#[derive(Debug)]
pub struct PresentedClient {
    /// The client id.
    pub client_id: String,
    /// The secret; `None` for the `none` method.
    pub secret: Option<ClientSecret>,
    /// Whether HTTP Basic was used (failures then answer `WWW-Authenticate: Basic`).
    pub basic: bool,
}

fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Parses `Authorization: Basic ...` into (id, secret).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Extracts the client's credentials from the `Authorization` header and the body.
pub fn presented_client(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedClient, ProtocolError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if params.is_duplicated("client_id") || params.is_duplicated("client_secret") {
        return Err(ProtocolError::invalid_request(
            "client_id or client_secret repeated",
        ));
    }
    if let Some(header) = authorization {
        if body_secret.is_some() {
            return Err(ProtocolError::invalid_request(
                "use exactly one client authentication method",
            ));
        }
        let Some((id, secret)) = parse_basic(header) else {
            // `invalid_client`, answered with a Basic challenge: the client attempted Basic
            // (RFC 6749 §5.2; the caller adds the challenge when a header was sent).
            return Err(ProtocolError::new(
                ErrorCode::InvalidClient,
                "malformed Basic credentials",
            ));
        };
        if body_id.is_some_and(|b| b != id) {
            return Err(ProtocolError::invalid_request(
                "client_id in body differs from Basic credentials",
            ));
        }
        return Ok(PresentedClient {
            client_id: id,
            secret: Some(ClientSecret::new(secret)),
            basic: true,
        });
    }
    match body_id {
        Some(id) => Ok(PresentedClient {
            client_id: id.to_owned(),
            secret: body_secret.map(|s| ClientSecret::new(s.to_owned())),
            basic: false,
        }),
        None => Err(ProtocolError::new(
            ErrorCode::InvalidClient,
            "client authentication required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_without_body_client_id() {
        let p = Params::parse(b"grant_type=x");
        let c = presented_client(Some(&basic("demo_client", "demo_secret")), &p).unwrap();
        assert_eq!(c.client_id, "demo_client");
        assert_eq!(c.secret.unwrap().secret(), "demo_secret");
        assert!(c.basic);
    }

    #[test]
    fn basic_is_form_decoded() {
        let p = Params::parse(b"");
        let c = presented_client(Some(&basic("a%3Ab", "s+t%25")), &p).unwrap();
        assert_eq!(c.client_id, "a:b");
        assert_eq!(c.secret.unwrap().secret(), "s t%");
    }

    #[test]
    fn two_methods_refused() {
        let p = Params::parse(b"client_secret=x");
        let e = presented_client(Some(&basic("a", "b")), &p).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        let e = presented_client(Some("Basic !!!"), &Params::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidClient);
    }

    #[test]
    fn post_and_none() {
        let c = presented_client(None, &Params::parse(b"client_id=a&client_secret=b")).unwrap();
        assert!(c.secret.is_some() && !c.basic);
        let c = presented_client(None, &Params::parse(b"client_id=a")).unwrap();
        assert!(c.secret.is_none());
        assert!(presented_client(None, &Params::default()).is_err());
    }
}
