//! Domain vocabulary shared by the actors and the protocol modules: identifiers, secrets,
//! PKCE, scopes, redirect URIs, grants, the server key, client addresses and the clock. Nothing here knows about actix or sled.

pub mod client;
pub mod client_address;
pub mod clock;
pub mod grant;
pub mod pkce;
pub mod redirect;
pub mod request_id;
pub mod scope;
pub mod secrets;
pub mod server_key;
