//! `POST /introspect` (RFC 7662).

use super::authenticate_client;
use crate::{
    actors::token_ledger::IntrospectToken,
    domain::secrets::PresentedToken,
    error::{Error, ErrorCode},
    oauth::{
        introspection::{ActiveToken, Introspection},
        params::Params,
    },
    services::Services,
};

/// `POST /introspect` (RFC 7662). Only confidential clients may introspect, and only their
/// own tokens: any other token answers `{"active": false}` exactly like an unknown one, so
/// a registered client cannot probe or read other clients' tokens (RFC 7662 §4, token
/// scanning; §2.2 lets the server answer inactive for tokens the caller may not see). The
/// protected MCP resource validates tokens through the ledger directly, not through here.
pub async fn introspect(
    services: &Services,
    authorization: Option<&str>,
    body: &[u8],
    issuer: &str,
) -> Result<Introspection, Error> {
    let params = Params::parse(body);
    let client = authenticate_client(services, authorization, &params).await?;
    if !client.is_confidential() {
        return Err(Error::oauth(
            ErrorCode::InvalidClient,
            "introspection requires client authentication",
        ));
    }
    let token = params
        .get("token")
        .ok_or_else(|| Error::invalid_request("token is required"))?;
    let info = services
        .ask(
            &services.ledger,
            IntrospectToken {
                token: PresentedToken::new(token.to_owned()),
            },
        )
        .await??;
    Ok(match info.filter(|i| i.client_id == client.client_id) {
        None => Introspection::Inactive,
        Some(info) => Introspection::Active(ActiveToken {
            scopes: info.scopes,
            client_id: info.client_id,
            subject: info.subject,
            resource: info.resource,
            issuer: issuer.to_owned(),
            expires_at: info.expires_at,
            issued_at: info.issued_at,
            kind: info.kind,
        }),
    })
}
