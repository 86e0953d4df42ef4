//! Records and rotations for the store tests, shared by every backend's tests so that each
//! backend is checked against the same inputs.

use super::{GrantId, Rotation, StoreFuture, TokenKind, TokenRecord};
use crate::domain::{
    client::{AuthMethod, Client, ClientOrigin},
    scope::Scopes,
    secrets::{ordered_token_with, AccessToken, Digest, RefreshToken},
};

/// Runs an intent of a sled store through its trait, as the owning actor does: sled answers
/// ready futures.
pub(crate) fn run<T>(answer: StoreFuture<T>) -> T {
    use futures_util::FutureExt as _;
    answer
        .now_or_never()
        .expect("the sled store answers ready futures")
        .unwrap()
}

/// A public client `id` with no metadata, never used.
pub(crate) fn client(id: &str, origin: ClientOrigin) -> Client {
    Client {
        client_id: id.into(),
        secret_digest: None,
        auth_method: AuthMethod::None,
        client_name: None,
        redirect_uris: Vec::new(),
        grant_types: Vec::new(),
        scopes: Scopes::default(),
        issued_at: 0,
        extra: serde_json::Map::new(),
        origin,
        used: false,
    }
}

/// An access token record of `grant` for `client` (and `subject`), scope `mcp:read`.
pub(crate) fn token(
    grant: GrantId,
    client: &str,
    subject: Option<&str>,
    expires_at: i64,
) -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Access,
        grant_id: grant,
        client_id: client.into(),
        subject: subject.map(Into::into),
        scopes: Scopes::parse("mcp:read").unwrap(),
        resource: "http://localhost:8000/mcp".into(),
        issued_at: 0,
        expires_at,
        rotated_at_us: None,
    }
}

/// A refresh token record of `grant` for client `app` and `alice`, scope
/// `mcp:read mcp:write`.
pub(crate) fn refresh_token(grant: GrantId, expires_at: i64) -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Refresh,
        scopes: Scopes::parse("mcp:read mcp:write").unwrap(),
        ..token(grant, "app", Some("alice"), expires_at)
    }
}

/// A rotation of `presented` by client `app` at second `now` (stamped `now` seconds
/// exactly) with a 10 s window.
pub(crate) fn rotation(presented: &RefreshToken, now: i64, scopes: Option<&str>) -> Rotation {
    let presented_secret = presented.secret().to_owned();
    Rotation {
        presented: presented.key(),
        client_id: "app".into(),
        scopes: scopes.map(|s| Scopes::parse(s).unwrap()),
        now,
        rotated_at_us: now * 1_000_000,
        grace: 10,
        access_expires_at: now + 100,
        refresh_expires_at: now + 1_000,
        forget_at: now + 5_000,
        // Deterministic per (presented, grant, time), like the ledger's HMAC.
        successors: Box::new(move |grant, at| {
            let tag = format!("{presented_secret}-{:?}-{at}", grant.0);
            let derive = |kind: &str| {
                let digest = Digest::of(format!("{tag}-{kind}").as_bytes());
                ordered_token_with(u64::try_from(at).unwrap(), &digest.0)
            };
            (
                AccessToken::new(derive("access")),
                RefreshToken::new(derive("refresh")),
            )
        }),
    }
}
