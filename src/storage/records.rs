//! Records as stored. Clients and users are serialized as JSON; tokens and codes, the hot
//! records, in the compact binary layout of [`super::codec`]. The tree names carry a format
//! version (`oauth.tokens.v1`), so a layout change gets new trees and an explicit migration.

use serde::{Deserialize, Serialize};

use crate::domain::{scope::Scopes, secrets::random_bytes};

/// Identifies one grant: the chain of tokens descending from one authorization code (or one
/// client_credentials request). Revoking a grant revokes every token in it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantId(pub [u8; 16]);

impl GrantId {
    /// A fresh grant id: the creation time in microseconds (big-endian, 8 bytes), then 64
    /// random bits. Not a secret (it never leaves the server); the time prefix makes the
    /// records of grants created close in time (`oauth.grants.v1`) sort together, so their
    /// inserts land on recent B-tree leaves, as token keys do.
    pub fn generate() -> Self {
        let micros = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&micros.to_be_bytes());
        id[8..].copy_from_slice(&random_bytes::<8>());
        Self(id)
    }
}

impl std::fmt::Debug for GrantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrantId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Whose grants an administrative revocation is about: every grant whose tokens (or
/// pending codes) carry this resource owner as subject, or were issued to this client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantHolder {
    /// A resource owner (the token subject, i.e. the username).
    Subject(String),
    /// A client, by `client_id`.
    Client(String),
}

impl GrantHolder {
    /// Whether a token or code issued to `client_id` for `subject` belongs to this holder.
    pub fn holds(&self, client_id: &str, subject: Option<&str>) -> bool {
        match self {
            Self::Subject(s) => subject == Some(s.as_str()),
            Self::Client(c) => client_id == c,
        }
    }
}

/// An issued authorization code, stored under the digest of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The grant the tokens will belong to; known at issue so a replay can revoke it.
    pub grant_id: GrantId,
    /// Client the code was issued to.
    pub client_id: String,
    /// The redirect URI used at /authorize.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent explicitly (OAuth 2.1 §10.2 compatibility rule).
    pub redirect_uri_explicit: bool,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Granted scopes.
    pub scopes: Scopes,
    /// Resource (audience) the tokens will be bound to.
    pub resource: String,
    /// The authenticated user.
    pub subject: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

/// A redeemed code, kept to detect replays (OAuth 2.1 §4.1.3).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct UsedCodeRecord {
    /// The grant to revoke if the code is presented again.
    pub grant_id: GrantId,
    /// When the record may be dropped.
    pub forget_at: i64,
}

/// What the code tree holds under a code's key.
#[derive(Debug, Clone)]
pub enum StoredCode {
    /// A code not redeemed yet.
    Live(CodeRecord),
    /// A redeemed code, kept until `forget_at` to detect replays.
    Used(UsedCodeRecord),
}

/// Access or refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
}

/// A token, stored under the digest of its value. Carries every claim, so validating an
/// access token is one lookup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Access or refresh.
    pub kind: TokenKind,
    /// Grant this token belongs to.
    pub grant_id: GrantId,
    /// Client the token was issued to.
    pub client_id: String,
    /// Resource owner; `None` for client_credentials.
    pub subject: Option<String>,
    /// Scope of this token (an access token may be narrower than its grant).
    pub scopes: Scopes,
    /// Audience: the protected resource (RFC 8707).
    pub resource: String,
    /// Issue time (Unix seconds).
    pub issued_at: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// For refresh tokens: when it was rotated out, if it was.
    #[serde(default)]
    pub rotated_at: Option<i64>,
}
