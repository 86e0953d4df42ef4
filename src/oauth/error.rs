//! The protocol layer's error (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 8707 §2): an OAuth error
//! code and a description, decided by the protocol rules in this module's siblings. Plain
//! values: no HTTP status, no page, no request id. The crate `Error` (`src/error.rs`), the
//! one mapping of errors to HTTP responses, converts from it.

use std::borrow::Cow;

/// OAuth error codes (RFC 6749 §4.1.2.1, §5.2; RFC 7591 §3.2.2; RFC 8707 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// "The request is missing a required parameter, includes an unsupported parameter
    /// value, repeats a parameter, ... or is otherwise malformed."
    InvalidRequest,
    /// "Client authentication failed." Answered with 401.
    InvalidClient,
    /// "The provided authorization grant ... or refresh token is invalid, expired, revoked,
    /// does not match the redirection URI ... or was issued to another client."
    InvalidGrant,
    /// "The authenticated client is not authorized to use this authorization grant type."
    UnauthorizedClient,
    /// "The authorization grant type is not supported by the authorization server."
    UnsupportedGrantType,
    /// "The requested scope is invalid, unknown, malformed, or exceeds the scope granted."
    InvalidScope,
    /// RFC 8707: "The requested resource is invalid, missing, unknown, or malformed."
    InvalidTarget,
    /// RFC 7591: a redirect URI is invalid.
    InvalidRedirectUri,
    /// RFC 7591: a metadata field is invalid.
    InvalidClientMetadata,
    /// The resource owner or server denied the request.
    AccessDenied,
    /// `response_type` other than `code`.
    UnsupportedResponseType,
    /// The server is overloaded or a dependency timed out (503).
    TemporarilyUnavailable,
    /// An unexpected condition (500).
    ServerError,
}

impl ErrorCode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// A request the protocol rules refuse: the OAuth error code and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", .code.as_str(), sanitize(.description.clone()))]
pub struct ProtocolError {
    code: ErrorCode,
    description: Cow<'static, str>,
}

impl ProtocolError {
    /// An error with `code`; `description` becomes `error_description` (sanitised when it
    /// is sent).
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// Shorthand for `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The description, as written (not sanitised).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The code and the description, as written.
    pub fn into_parts(self) -> (ErrorCode, Cow<'static, str>) {
        (self.code, self.description)
    }
}

/// Keeps only `%x20-21 / %x23-5B / %x5D-7E` (OAuth 2.1 §3.2.4 for `error_description`).
pub fn sanitize(s: Cow<'static, str>) -> Cow<'static, str> {
    let ok = |c: char| matches!(c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E);
    if s.chars().all(ok) {
        s
    } else {
        Cow::Owned(s.chars().map(|c| if ok(c) { c } else { ' ' }).collect())
    }
}
