//! Token requests (OAuth 2.1 §3.2.2, §4.1.3, §4.2, §4.3), parsed by `grant_type`, and the
//! successful token response (§3.2.3).

use serde_json::{json, Value};

use super::{
    error::{ErrorCode, ProtocolError},
    params::Params,
};
use crate::domain::{
    client::GrantType,
    scope::Scopes,
    secrets::{AccessToken, AuthorizationCode, RefreshToken},
};

/// A parsed token request.
#[derive(Debug)]
pub enum TokenRequest {
    /// `grant_type=authorization_code`.
    AuthorizationCode {
        /// The code.
        code: AuthorizationCode,
        /// The PKCE verifier.
        code_verifier: String,
        /// The redirect URI, if the client repeated it (OAuth 2.0 compatibility).
        redirect_uri: Option<String>,
        /// RFC 8707 resource, if sent.
        resource: Option<String>,
    },
    /// `grant_type=refresh_token`.
    RefreshToken {
        /// The refresh token.
        refresh_token: RefreshToken,
        /// A narrower scope for the new access token.
        scope: Option<Scopes>,
        /// RFC 8707 resource, if sent.
        resource: Option<String>,
    },
    /// `grant_type=client_credentials`.
    ClientCredentials {
        /// Requested scope.
        scope: Option<Scopes>,
        /// RFC 8707 resource, if sent.
        resource: Option<String>,
    },
}

fn required<'a>(params: &'a Params, name: &'static str) -> Result<&'a str, ProtocolError> {
    params
        .get(name)
        .ok_or_else(|| ProtocolError::invalid_request(format!("{name} is required")))
}

fn scope(params: &Params) -> Result<Option<Scopes>, ProtocolError> {
    params
        .get("scope")
        .map(|s| {
            Scopes::parse(s)
                .map_err(|_| ProtocolError::new(ErrorCode::InvalidScope, "scope is malformed"))
        })
        .transpose()
}

impl TokenRequest {
    /// Parses the body. Duplicated parameters, a missing `grant_type` or a missing required
    /// parameter give `invalid_request`; an unknown grant gives `unsupported_grant_type`.
    pub fn parse(params: &Params) -> Result<Self, ProtocolError> {
        if params.any_duplicate().is_some() {
            return Err(ProtocolError::invalid_request("a parameter is repeated"));
        }
        let grant = required(params, "grant_type")?;
        let resource = params.get("resource").map(str::to_owned);
        match GrantType::parse(grant) {
            Some(GrantType::AuthorizationCode) => Ok(Self::AuthorizationCode {
                code: AuthorizationCode::new(required(params, "code")?.to_owned()),
                code_verifier: required(params, "code_verifier")?.to_owned(),
                redirect_uri: params.get("redirect_uri").map(str::to_owned),
                resource,
            }),
            Some(GrantType::RefreshToken) => Ok(Self::RefreshToken {
                refresh_token: RefreshToken::new(required(params, "refresh_token")?.to_owned()),
                scope: scope(params)?,
                resource,
            }),
            Some(GrantType::ClientCredentials) => Ok(Self::ClientCredentials {
                scope: scope(params)?,
                resource,
            }),
            None => Err(ProtocolError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code, refresh_token or client_credentials",
            )),
        }
    }

    /// The grant type of this request.
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }

    /// The RFC 8707 resource parameter, if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Self::AuthorizationCode { resource, .. }
            | Self::RefreshToken { resource, .. }
            | Self::ClientCredentials { resource, .. } => resource.as_deref(),
        }
    }
}

/// A successful token response (OAuth 2.1 §3.2.3): always a `Bearer` access token.
#[derive(Debug)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// Scope of the access token.
    pub scopes: Scopes,
    /// The refresh token, when the grant has one.
    pub refresh_token: Option<RefreshToken>,
}

impl TokenResponse {
    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "access_token": self.access_token.secret(),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scopes.to_string(),
        });
        if let (Some(rt), Some(obj)) = (&self.refresh_token, body.as_object_mut()) {
            obj.insert("refresh_token".into(), rt.secret().into());
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors() {
        let e = |q: &str| {
            TokenRequest::parse(&Params::parse(q.as_bytes()))
                .unwrap_err()
                .code()
        };
        let e = |q: &str| Some(e(q));
        assert_eq!(e(""), Some(ErrorCode::InvalidRequest));
        assert_eq!(
            e("grant_type=password"),
            Some(ErrorCode::UnsupportedGrantType)
        );
        assert_eq!(
            e("grant_type=authorization_code&code=x"),
            Some(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            e("grant_type=refresh_token&refresh_token=a&refresh_token=b"),
            Some(ErrorCode::InvalidRequest)
        );
    }

    #[test]
    fn parses_refresh_with_scope() {
        let r = TokenRequest::parse(&Params::parse(
            b"grant_type=refresh_token&refresh_token=r&scope=mcp:read",
        ))
        .unwrap();
        assert!(matches!(
            r,
            TokenRequest::RefreshToken { scope: Some(_), .. }
        ));
    }
}
