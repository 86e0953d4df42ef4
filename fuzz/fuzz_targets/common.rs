//! Shared by the targets (included with `#[path]`; not every target uses every item).
#![allow(dead_code)]

use std::sync::OnceLock;

use oauth_mcp::{
    config::{Config, Settings},
    domain::{
        client::{AuthMethod, Client, ClientOrigin, GrantType},
        scope::Scopes,
    },
};

/// The default settings (public URL http://127.0.0.1:8000), built once.
pub fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Config::default().settings(8000).expect("default settings"))
}

/// A public client with a loopback and an https redirect URI, added by the operator.
pub fn client() -> Client {
    Client {
        client_id: "demo_client".into(),
        secret_digest: None,
        auth_method: AuthMethod::None,
        client_name: Some("Demo <b>client</b>".into()),
        redirect_uris: vec![
            "http://127.0.0.1:33418/callback".into(),
            "https://app.example/cb?x=1".into(),
        ],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: Scopes::parse("mcp:read mcp:write").expect("scopes"),
        issued_at: 0,
        extra: Default::default(),
        origin: ClientOrigin::Operator,
        used: true,
    }
}

/// The same client registered dynamically (at `/register`).
pub fn dynamic_client() -> Client {
    Client {
        origin: ClientOrigin::Dynamic,
        used: false,
        ..client()
    }
}

/// Splits the input at the first newline: two independent strings from one input.
pub fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
