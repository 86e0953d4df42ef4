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
        // Deterministic per (presented, time), like the ledger's HMAC.
        successors: Box::new(move |at| {
            let tag = format!("{presented_secret}-{at}");
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

/// The export and import reads and writes of a token store (`oauth-mcp admin export` /
/// `import`), the same checks for every backend: an import inserts only absent keys, the
/// pages of `tokens_after` cover every token once in key order, and `lifetimes` reads
/// without recording.
pub(crate) async fn export_and_import(store: &dyn super::TokenStore) {
    use super::NewToken;
    use crate::domain::secrets::TokenKey;
    let grant = GrantId::generate();
    let new = |byte: u8, expires_at: i64| NewToken {
        key: TokenKey([byte; 40]),
        record: token(grant, "app", Some("alice"), expires_at),
    };
    assert!(store.tokens_after(None, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .import_tokens(vec![new(3, 30), new(1, 10)])
            .await
            .unwrap(),
        2
    );
    // Idempotent: a stored key keeps its record.
    assert_eq!(
        store
            .import_tokens(vec![new(1, 99), new(2, 20)])
            .await
            .unwrap(),
        1
    );
    let first = store.tokens_after(None, 2).await.unwrap();
    let keys: Vec<u8> = first.iter().map(|t| t.key.0[0]).collect();
    assert_eq!(keys, [1, 2]);
    assert_eq!(first[0].record.expires_at, 10);
    assert_eq!(first[0].record.grant_id, grant);
    let rest = store.tokens_after(Some(first[1].key), 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!((rest[0].key.0[0], rest[0].record.expires_at), (3, 30));
    assert!(store
        .tokens_after(Some(rest[0].key), 2)
        .await
        .unwrap()
        .is_empty());
    // The tokens are usable as issued ones.
    let got = store.get(&TokenKey([2; 40])).await.unwrap().unwrap();
    assert_eq!(got.expires_at, 20);

    assert!(store.lifetimes().await.unwrap().is_empty());
    store.record_lifetime(60, 500).await.unwrap();
    assert_eq!(store.lifetimes().await.unwrap(), [(60, 500)]);
}
