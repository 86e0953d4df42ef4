//! Token introspection responses (RFC 7662 §2.2).

use serde_json::{json, Value};

use crate::domain::{grant::TokenKind, scope::Scopes};

/// The answer about one token: inactive (unknown, expired, revoked, or not the caller's to
/// see, all alike), or active with what it stands for.
#[derive(Debug)]
pub enum Introspection {
    /// `{"active": false}`.
    Inactive,
    /// An active token.
    Active(ActiveToken),
}

/// What an active token stands for.
#[derive(Debug)]
pub struct ActiveToken {
    /// The token's scope.
    pub scopes: Scopes,
    /// The client it was issued to.
    pub client_id: String,
    /// The resource owner; `None` for client_credentials (then `sub` is the client).
    pub subject: Option<String>,
    /// Audience (RFC 8707 resource).
    pub resource: String,
    /// The issuer, as the caller addressed this server.
    pub issuer: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Issue time (Unix seconds).
    pub issued_at: i64,
    /// Access or refresh.
    pub kind: TokenKind,
}

impl Introspection {
    /// The JSON body.
    pub fn body(&self) -> Value {
        let Self::Active(info) = self else {
            return json!({ "active": false });
        };
        let mut doc = json!({
            "active": true,
            "scope": info.scopes.to_string(),
            "client_id": info.client_id,
            "sub": info.subject.as_deref().unwrap_or(&info.client_id),
            "aud": info.resource,
            "iss": info.issuer,
            "exp": info.expires_at,
            "iat": info.issued_at,
            "token_type": match info.kind { TokenKind::Access => "Bearer", TokenKind::Refresh => "refresh_token" },
        });
        if let (Some(user), Some(obj)) = (&info.subject, doc.as_object_mut()) {
            obj.insert("username".into(), user.clone().into());
        }
        doc
    }
}
