//! Records as stored. Clients and users are serialized as JSON; tokens and codes, the hot
//! records, in the compact binary layout of [`super::codec`]. The tree names carry a format
//! version (`oauth.tokens.v1`), so a layout change gets new trees and an explicit migration.

use serde::{Deserialize, Serialize};

// Re-exported: these plain values were defined here before they moved to `domain`.
pub use crate::domain::grant::{GrantHolder, GrantId, TokenKind};
use crate::domain::scope::Scopes;

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
    /// For refresh tokens: when it was rotated out, if it was, in Unix **microseconds**:
    /// the seconds decide the grace window, and the whole value is the time prefix of the
    /// successors' keys, which must be recomputable yet land in time order (see
    /// `successors` in `actors/token_ledger/refresh.rs`). Records written before it had
    /// microseconds hold whole seconds here, times a million.
    #[serde(default)]
    pub rotated_at_us: Option<i64>,
}
