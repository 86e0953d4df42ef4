//! `POST /register` (RFC 7591): dynamic client registration.

use std::net::IpAddr;

use serde_json::Value;

use crate::{
    actors::client_registry::RegisterClient, domain::client::ClientOrigin, error::Error,
    oauth::registration, services::Services,
};

/// `POST /register` (RFC 7591).
pub async fn register(
    services: &Services,
    body: &[u8],
    address: Option<IpAddr>,
) -> Result<Value, Error> {
    let client = registration::parse(body, &services.settings)?;
    let msg = RegisterClient {
        client,
        address,
        origin: ClientOrigin::Dynamic,
    };
    let registered = services.ask(&services.registry, msg).await??;
    Ok(registration::response(&registered))
}
