//! `POST /revoke` (RFC 7009).

use super::authenticate_client;
use crate::{
    actors::token_ledger::RevokeToken, domain::secrets::PresentedToken, error::Error,
    oauth::params::Params, services::Services,
};

/// `POST /revoke` (RFC 7009). Unknown tokens and other clients' tokens answer the same.
pub async fn revoke(
    services: &Services,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(), Error> {
    let params = Params::parse(body);
    let client = authenticate_client(services, authorization, &params).await?;
    if params.any_duplicate().is_some() {
        return Err(Error::invalid_request("a parameter is repeated"));
    }
    let token = params
        .get("token")
        .ok_or_else(|| Error::invalid_request("token is required"))?;
    // token_type_hint is optional and only an optimisation (RFC 7009 §2.1); one lookup by
    // digest finds either kind, so it is ignored.
    let msg = RevokeToken {
        token: PresentedToken::new(token.to_owned()),
        client_id: client.client_id,
    };
    services.ask(&services.ledger, msg).await?.wait().await?;
    services.metrics.token_revoked();
    Ok(())
}
