//! Grants: the chain of tokens descending from one authorization code or one
//! client_credentials request ([`GrantId`]), whose grants an administrative revocation is
//! about ([`GrantHolder`]), and the two kinds of token in a grant ([`TokenKind`]). Plain values,
//! used from storage up to the HTTP handlers and `oauth-mcp admin`.

use serde::{Deserialize, Serialize};

use super::secrets::random_bytes;

/// Identifies one grant: the chain of tokens descending from one authorization code (or one
/// client_credentials request). Revoking a grant revokes every token in it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantId(pub [u8; 16]);

impl GrantId {
    /// A fresh random grant id.
    pub fn generate() -> Self {
        Self(random_bytes::<16>())
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

/// Access or refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
}
