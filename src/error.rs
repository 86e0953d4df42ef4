//! The crate error: what each component's error becomes (RFC 6749 §5.2 JSON on the OAuth
//! API endpoints with RFC 7591 §3.2.2 codes on /register, an HTML page where redirecting
//! would be unsafe (OAuth 2.1 §4.1.2.1), a `303` back to the client for authorization
//! errors once the client and redirect URI are verified, a bearer challenge, a JSON-RPC
//! transport error). The one place these become HTTP responses is
//! [`crate::http::error_response`].

use std::borrow::Cow;

use actix_web::http::StatusCode;

pub use crate::oauth::error::ErrorCode;
use crate::{
    actors::{client_registry::RegistryError, code_issuer::CodeError, token_ledger::LedgerError},
    oauth::{
        client_document::ClientDocumentError,
        error::{sanitize, ProtocolError},
    },
    storage::StorageError,
};

/// An OAuth JSON error.
#[derive(Debug, Clone)]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable text; sanitised to the characters OAuth 2.1 §3.2.4 allows.
    pub description: Cow<'static, str>,
    /// Client authentication was attempted with HTTP Basic: answer `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
    /// Answer 429 with this `Retry-After` (seconds) instead of the code's usual status
    /// (503 with it when `unavailable`).
    pub retry_after: Option<u64>,
    /// The service itself cannot answer now (its database is unreachable): 503 with
    /// `retry_after`, rather than 429, which would blame the client's rate.
    pub unavailable: bool,
}

/// The `Retry-After` (seconds) of a 503 for an unreachable database: about the time a
/// restarting PostgreSQL or a failover takes to come back, and several of the pool's
/// connect attempts ([`crate::storage::postgres::POOL_TIMEOUT`]).
pub const UNAVAILABLE_RETRY_AFTER: u64 = 2;

/// An HTML error page (for /authorize and the login form).
#[derive(Debug, Clone)]
pub struct PageError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, in words for the user (escaped when rendered).
    pub message: Cow<'static, str>,
    /// `Retry-After` seconds, for throttling.
    pub retry_after: Option<u64>,
}

/// The crate error: everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An OAuth JSON error.
    #[error("{}: {}", .0.code.as_str(), .0.description)]
    OAuth(OAuthError),
    /// An HTML error page; never a redirect.
    #[error("{}", .0.message)]
    Page(PageError),
    /// A `303 See Other` to this URL (authorization error sent back to the client).
    #[error("redirect to client")]
    Redirect(String),
    /// A bearer-token challenge from the MCP endpoint (RFC 6750 §3, RFC 9728 §5.1).
    #[error("{}", .0.description)]
    Challenge(Challenge),
    /// A transport-level refusal at the MCP endpoint, with a JSON-RPC error body.
    #[error("{message}")]
    Transport {
        /// HTTP status.
        status: StatusCode,
        /// Error message.
        message: Cow<'static, str>,
    },
}

/// A `WWW-Authenticate: Bearer` challenge.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// 401 (no or bad token), 403 (insufficient scope) or 400 (malformed request).
    pub status: StatusCode,
    /// `invalid_token`, `insufficient_scope`, `invalid_request`; `None` when no token was
    /// presented (RFC 6750 §3.1: no error code then).
    pub error: Option<&'static str>,
    /// Text for `error_description` (sanitised).
    pub description: Cow<'static, str>,
    /// Scopes the client should request.
    pub scope: String,
    /// URL of the protected-resource metadata document.
    pub resource_metadata: String,
}

impl Error {
    /// An OAuth error with a fixed description.
    pub fn oauth(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self::OAuth(OAuthError {
            code,
            description: sanitize(description.into()),
            basic_challenge: false,
            retry_after: None,
            unavailable: false,
        })
    }

    /// Shorthand for `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::oauth(ErrorCode::InvalidRequest, description)
    }

    /// An HTML error page.
    pub fn page(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Page(PageError {
            status,
            message: message.into(),
            retry_after: None,
        })
    }

    /// A 400 HTML error page: what cannot be sent back to the client by a redirect
    /// (OAuth 2.1 §4.1.2.1).
    pub fn bad_request_page(message: impl Into<Cow<'static, str>>) -> Self {
        Self::page(StatusCode::BAD_REQUEST, message)
    }

    /// Marks an `invalid_client` error as answering a Basic attempt.
    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        if let Self::OAuth(e) = &mut self {
            e.basic_challenge = basic && e.code == ErrorCode::InvalidClient;
        }
        self
    }

    /// The OAuth code, if this is an OAuth error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::OAuth(e) => Some(e.code),
            _ => None,
        }
    }
}

/// The OAuth (or bearer challenge) error code of an error response, left in the response's
/// extensions for [`crate::metrics`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorLabel(pub &'static str);

/// The protocol layer's verdict, answered as RFC 6749 §5.2 JSON.
impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        let (code, description) = e.into_parts();
        Self::oauth(code, description)
    }
}

impl From<actix::MailboxError> for Error {
    fn from(e: actix::MailboxError) -> Self {
        tracing::warn!(request_id = %crate::domain::request_id::current(), error = %e, "actor did not answer in time");
        Self::oauth(
            ErrorCode::TemporarilyUnavailable,
            "the server is busy, retry later",
        )
    }
}

/// A storage failure: `server_error`, except an unreachable database (or a connection lost
/// mid-intent), which is `temporarily_unavailable` (RFC 6749 §5.2 allows it at the token
/// endpoint; RFC 7009 §2.2.1 names it for revocation) with 503 and `Retry-After`: the
/// client retries, and the service resumes by itself when the database returns.
impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        let request_id = crate::domain::request_id::current();
        if let StorageError::Unavailable(_) = e {
            tracing::warn!(request_id = %request_id, error = %e, "storage unavailable");
            return Self::OAuth(OAuthError {
                code: ErrorCode::TemporarilyUnavailable,
                description: "the database is unavailable, retry later".into(),
                basic_challenge: false,
                retry_after: Some(UNAVAILABLE_RETRY_AFTER),
                unavailable: true,
            });
        }
        tracing::error!(request_id = %request_id, error = %e, "storage failure");
        Self::oauth(ErrorCode::ServerError, "storage failure")
    }
}

/// A client ID metadata document that cannot be used, at the token, revocation and
/// introspection endpoints: the client cannot be authenticated (`invalid_client`, the
/// reason as the description), or every fetch slot is taken (`temporarily_unavailable`).
impl From<ClientDocumentError> for Error {
    fn from(e: ClientDocumentError) -> Self {
        match e {
            ClientDocumentError::Busy => {
                Self::oauth(ErrorCode::TemporarilyUnavailable, e.to_string())
            }
            _ => Self::oauth(ErrorCode::InvalidClient, e.to_string()),
        }
    }
}

impl Error {
    /// A client ID metadata document that cannot be used, at `/authorize`: there is no
    /// trusted redirect URI, so a page and never a redirect (draft §4.3; RFC 6749
    /// §4.1.2.1); 503 when every fetch slot is taken, else 400.
    pub fn client_document_page(e: ClientDocumentError) -> Self {
        let status = match e {
            ClientDocumentError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::page(status, format!("This application cannot be used: {e}."))
    }
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::InvalidClient => {
                Self::oauth(ErrorCode::InvalidClient, "client authentication failed")
            }
            RegistryError::Full => Self::oauth(
                ErrorCode::TemporarilyUnavailable,
                "the server accepts no more client registrations at the moment, retry later",
            ),
            RegistryError::RateLimited { retry_after } => Self::OAuth(OAuthError {
                code: ErrorCode::TemporarilyUnavailable,
                description: "too many registrations from this address, retry later".into(),
                basic_challenge: false,
                retry_after: Some(retry_after),
                unavailable: false,
            }),
            RegistryError::InvalidCredentials => Self::page(
                StatusCode::BAD_REQUEST,
                "The username or password is incorrect.",
            ),
            RegistryError::LoginThrottled { retry_after } => Self::Page(PageError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "Too many failed sign-in attempts. Wait a while and try again.".into(),
                retry_after: Some(retry_after),
            }),
            RegistryError::PasswordCheckBusy { retry_after } => Self::Page(PageError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The server is busy checking other sign-ins. Try again in a moment."
                    .into(),
                retry_after: Some(retry_after),
            }),
            RegistryError::Storage(s) => s.into(),
            RegistryError::Internal(m) => {
                tracing::error!(request_id = %crate::domain::request_id::current(), error = %m, "registry failure");
                Self::oauth(ErrorCode::ServerError, "internal error")
            }
        }
    }
}

impl From<CodeError> for Error {
    fn from(e: CodeError) -> Self {
        match e {
            // Replays are answered like any unknown code; the ledger revocation already ran.
            CodeError::Invalid | CodeError::Replayed(_) => Self::oauth(
                ErrorCode::InvalidGrant,
                "authorization code is invalid, expired or already used",
            ),
            CodeError::Storage(s) => s.into(),
        }
    }
}

impl From<LedgerError> for Error {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::InvalidGrant => Self::oauth(
                ErrorCode::InvalidGrant,
                "refresh token is invalid, expired or revoked",
            ),
            LedgerError::GrantRevoked => {
                Self::oauth(ErrorCode::InvalidGrant, "the grant has been revoked")
            }
            LedgerError::InvalidScope => Self::oauth(
                ErrorCode::InvalidScope,
                "requested scope exceeds the scope originally granted",
            ),
            LedgerError::Storage(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError as _;

    use super::*;

    #[test]
    fn descriptions_are_sanitised() {
        let Error::OAuth(e) = Error::invalid_request("bad \"quote\" and \\ and\nnewline") else {
            unreachable!()
        };
        assert!(!e.description.contains(['"', '\\', '\n']));
    }

    #[test]
    fn statuses() {
        assert_eq!(
            Error::oauth(ErrorCode::InvalidClient, "x").status_code(),
            401
        );
        assert_eq!(
            Error::oauth(ErrorCode::InvalidGrant, "x").status_code(),
            400
        );
        assert_eq!(
            Error::oauth(ErrorCode::TemporarilyUnavailable, "x").status_code(),
            503
        );
        let unavailable = Error::from(StorageError::Unavailable("connection refused".into()));
        assert_eq!(unavailable.status_code(), 503);
        assert_eq!(unavailable.code(), Some(ErrorCode::TemporarilyUnavailable));
        let r = unavailable.error_response();
        assert_eq!(r.headers().get("retry-after").unwrap(), "2");
        assert_eq!(
            Error::from(StorageError::Database("42P01: no such table".into())).status_code(),
            500
        );
        let r = Error::oauth(ErrorCode::InvalidClient, "x")
            .with_basic_challenge(true)
            .error_response();
        assert!(r.headers().get("www-authenticate").is_some());
    }
}
