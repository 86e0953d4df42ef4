//! Registered clients and users as the registry stores them, and a client on its way in:
//! validated registration metadata ([`NewClient`]) and the registered client with its
//! secret, shown once ([`RegisteredClient`]); the fingerprint of a registration, by which a
//! repeated identical one is recognised ([`NewClient::fingerprint`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    scope::Scopes,
    secrets::{ClientSecret, Digest},
};

/// How a client authenticates at the token, revocation and introspection endpoints
/// (OAuth 2.1 §2.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic with form-encoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: no secret.
    None,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    /// Parses an RFC 7591 name; other methods (e.g. `private_key_jwt`) are unsupported.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// Grant types a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantType {
    /// `authorization_code` (OAuth 2.1 §4.1).
    AuthorizationCode,
    /// `refresh_token` (OAuth 2.1 §4.3).
    RefreshToken,
    /// `client_credentials` (OAuth 2.1 §4.2), confidential clients only.
    ClientCredentials,
}

impl GrantType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// Parses a wire name we support.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "client_credentials" => Some(Self::ClientCredentials),
            _ => None,
        }
    }
}

/// How the server came to know a client. It decides whether `/authorize` may send an
/// error back to the client's redirect URI before the user has interacted (RFC 9700
/// §4.11.2: only for clients the operator vouched for; anyone can register a URI), and
/// whether the client expires when it is never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientOrigin {
    /// Added by the operator: `oauth-mcp admin client add`, or the demo seed.
    Operator,
    /// Registered by anyone at `/register` (RFC 7591). Also what a stored record written
    /// before this field existed reads as: the cautious choice, since those may have been
    /// registered by anyone (such records are never expired, see [`Client::used`]).
    #[default]
    Dynamic,
    /// Described by a client ID metadata document; cached, never stored.
    Document,
}

/// Records written before [`Client::used`] existed count as used, so that an upgrade never
/// removes a client that may hold tokens.
fn assume_used() -> bool {
    true
}

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// SHA-256 of the secret; `None` for public clients.
    pub secret_digest: Option<Digest>,
    /// Registered authentication method.
    pub auth_method: AuthMethod,
    /// Human-readable name shown on the consent page.
    pub client_name: Option<String>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Allowed grant types.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may request.
    pub scopes: Scopes,
    /// Registration time (Unix seconds).
    pub issued_at: i64,
    /// Other RFC 7591 metadata the client sent, echoed back (`client_uri`, `logo_uri`, ...).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// How the server came to know the client.
    #[serde(default)]
    pub origin: ClientOrigin,
    /// Whether a token has ever been issued to the client. A dynamically registered client
    /// that stays unused for `unused_client_ttl` is removed.
    #[serde(default = "assume_used")]
    pub used: bool,
}

impl Client {
    /// Whether `/authorize` may redirect errors it finds before the user has interacted
    /// (bad or missing parameters) to this client: only for clients the operator added.
    /// Anyone can register a redirect URI or publish a document, so for those clients such
    /// errors are shown on a page instead, and the server never redirects to a URI it
    /// cannot vouch for without a person having looked at the consent page first.
    pub fn may_receive_early_errors(&self) -> bool {
        self.origin == ClientOrigin::Operator
    }

    /// True for confidential clients.
    pub fn is_confidential(&self) -> bool {
        self.secret_digest.is_some()
    }

    /// True when the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// A resource owner account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Login name, also the token subject.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_origin_and_used_read_as_dynamic_and_used() {
        let old = r#"{"client_id":"c","secret_digest":null,"auth_method":"none",
            "client_name":null,"redirect_uris":["https://a.example/cb"],
            "grant_types":["authorization_code"],"scopes":["mcp:read"],"issued_at":1}"#;
        let c: Client = serde_json::from_str(old).unwrap();
        assert_eq!(c.origin, ClientOrigin::Dynamic);
        assert!(c.used, "never expired by an upgrade");
        assert!(!c.may_receive_early_errors());
        let back: Client = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!((back.origin, back.used), (ClientOrigin::Dynamic, true));
    }

    #[test]
    fn fingerprints_are_equal_exactly_for_the_same_address_and_metadata() {
        let extra = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::json!({ "b": v, "a": 1 })))
                .collect::<serde_json::Map<_, _>>()
        };
        let new = NewClient {
            client_name: Some("App".into()),
            redirect_uris: vec!["https://a.example/cb".into()],
            auth_method: AuthMethod::None,
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: None,
            extra: extra(&[("logo_uri", "x"), ("client_uri", "y")]),
        };
        let here: IpAddr = [192, 0, 2, 1].into();
        let fp = |c: &NewClient| c.fingerprint(here).unwrap();
        let mut reordered = new.clone();
        reordered.extra = extra(&[("client_uri", "y"), ("logo_uri", "x")]);
        assert!(fp(&reordered) == fp(&new), "key order does not matter");
        assert!(new.fingerprint([192, 0, 2, 2].into()) != Some(fp(&new)));
        let mut other = new.clone();
        other.scopes = Some(Scopes::parse("mcp:read").unwrap());
        assert!(fp(&other) != fp(&new));
        let mut other = new.clone();
        other.client_name = None;
        assert!(fp(&other) != fp(&new));
        let mut other = new.clone();
        other.auth_method = AuthMethod::ClientSecretBasic;
        assert!(fp(&other) != fp(&new));
        let mut other = new.clone();
        other.extra = extra(&[("logo_uri", "x"), ("client_uri", "z")]);
        assert!(fp(&other) != fp(&new));
    }
}

/// A validated registration request (RFC 7591 §2), built by `oauth::registration`.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Client name, if given.
    pub client_name: Option<String>,
    /// Validated redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Token endpoint authentication method.
    pub auth_method: AuthMethod,
    /// Grant types.
    pub grant_types: Vec<GrantType>,
    /// Scopes; `None` means the configured default scopes.
    pub scopes: Option<Scopes>,
    /// Other metadata to echo back.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl NewClient {
    /// The client this metadata describes, under `client_id`, issued at `now`; without
    /// `scope` it gets `default_scopes`. Only a dynamically registered client starts unused.
    pub fn into_client(
        self,
        client_id: String,
        secret_digest: Option<Digest>,
        default_scopes: &Scopes,
        now: i64,
        origin: ClientOrigin,
    ) -> Client {
        Client {
            client_id,
            secret_digest,
            auth_method: self.auth_method,
            client_name: self.client_name,
            redirect_uris: self.redirect_uris,
            grant_types: self.grant_types,
            scopes: self.scopes.unwrap_or_else(|| default_scopes.clone()),
            issued_at: now,
            extra: self.extra,
            origin,
            used: origin != ClientOrigin::Dynamic,
        }
    }
}

impl NewClient {
    /// The SHA-256 of a canonical serialisation of this metadata together with `address`
    /// (the caller's address key, [`address_key`](super::client_address::address_key)):
    /// two registrations have the same fingerprint exactly when they come from the same
    /// address key with the same effective metadata. Lists keep their order (a client
    /// repeating its registration sends the same body); object keys in the other metadata
    /// are sorted, so their order does not matter. `None` only if the metadata cannot be
    /// serialised, and then the registration is simply not recognised as a repeat.
    pub fn fingerprint(&self, address: IpAddr) -> Option<Digest> {
        let doc = serde_json::json!([
            // Versioned, so a change of this layout can never match an old fingerprint.
            "oauth-mcp.registration.v1",
            address.to_string(),
            self.client_name,
            self.redirect_uris,
            self.auth_method.as_str(),
            self.grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>(),
            self.scopes.as_ref().map(ToString::to_string),
            canonical(&Value::Object(self.extra.clone())),
        ]);
        serde_json::to_vec(&doc)
            .ok()
            .map(|bytes| Digest::of(&bytes))
    }
}

/// `value` with the keys of every object sorted (serde_json keeps insertion order here,
/// since the `preserve_order` feature is on).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let sorted: Map<String, Value> = keys
                .into_iter()
                .filter_map(|k| map.get(k).map(|v| (k.clone(), canonical(v))))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// A freshly registered client with its secret, shown exactly once.
#[derive(Debug)]
pub struct RegisteredClient {
    /// The stored client.
    pub client: Client,
    /// The plaintext secret for confidential clients.
    pub secret: Option<ClientSecret>,
}
