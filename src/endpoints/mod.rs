//! The endpoints of the authorization server, one file each: the orchestration of one
//! request over the [`Services`] (parse into protocol and domain types, ask the owning
//! actors in order, map their answers) returning protocol types, which `http` renders. No
//! actix here: errors are the crate [`Error`], whose one mapping to HTTP is in `error`.
//!
//! This file holds what several endpoints share: client authentication at the token,
//! revocation and introspection endpoints (OAuth 2.1 §2.4.1, §3.2.1; clients named by
//! metadata documents included) and the first-use mark of dynamically registered clients.

pub mod authorize;
pub mod introspect;
pub mod register;
pub mod revoke;
pub mod token;

use crate::{
    actors::{
        client_documents::ResolveClientDocument,
        client_registry::{AuthenticateClient, MarkClientUsed, RegistryError},
    },
    domain::client::{Client, ClientOrigin},
    error::{Error, ErrorCode},
    oauth::{
        client_auth::presented_client,
        client_document::{self, ClientDocumentError},
        params::Params,
    },
    services::Services,
};

/// Whether `client_id` names a client ID metadata document this server accepts.
fn names_document(services: &Services, client_id: &str) -> bool {
    services.settings.config.client_metadata_documents
        && client_document::is_document_url(client_id)
}

/// The client a metadata document URL describes (cached or fetched by `ClientDocuments`).
async fn resolve_document(
    services: &Services,
    url: &str,
) -> Result<Result<Client, ClientDocumentError>, Error> {
    let msg = ResolveClientDocument {
        url: url.to_owned(),
    };
    // The answer may wait for a fetch, which has its own time limit: allow for it, so a
    // slow document host gets its own clear message rather than the actor timeout's. Not
    // through `Services::ask`, whose histogram measures actor waits, not remote servers.
    let config = &services.settings.config;
    let timeout = config.actor_timeout + config.client_metadata_timeout;
    Ok(services.documents.send(msg).timeout(timeout).await?)
}

/// Authenticates the client of a token, revocation or introspection request.
async fn authenticate_client(
    services: &Services,
    authorization: Option<&str>,
    params: &Params,
) -> Result<Client, Error> {
    // A client that sent credentials in the header attempted Basic: an `invalid_client`
    // then answers `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    let presented = presented_client(authorization, params)
        .map_err(|e| Error::from(e).with_basic_challenge(authorization.is_some()))?;
    let basic = presented.basic;
    if names_document(services, &presented.client_id) {
        // Document clients are public clients: nothing to check but that the document is
        // still valid. A secret means the caller is confused or guessing.
        if presented.secret.is_some() {
            return Err(Error::oauth(
                ErrorCode::InvalidClient,
                "a client identified by a metadata document has no client secret",
            )
            .with_basic_challenge(basic));
        }
        return Ok(resolve_document(services, &presented.client_id).await??);
    }
    let msg = AuthenticateClient {
        client_id: presented.client_id,
        secret: presented.secret,
    };
    services
        .ask(&services.registry, msg)
        .await?
        .map_err(|e| Error::from(e).with_basic_challenge(basic))
}

/// Before the first token is issued to a dynamically registered client, has the registry
/// mark it used (durably), so the unused-client sweep never removes a client that holds
/// tokens. Only that first time costs a message: the client we authenticated carries the
/// flag. A client removed meanwhile gets no tokens.
async fn mark_used(services: &Services, client: &Client) -> Result<(), Error> {
    if client.origin != ClientOrigin::Dynamic || client.used {
        return Ok(());
    }
    let msg = MarkClientUsed {
        client_id: client.client_id.clone(),
    };
    if services.ask(&services.registry, msg).await?? {
        Ok(())
    } else {
        Err(RegistryError::InvalidClient.into())
    }
}
