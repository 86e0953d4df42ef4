//! `POST /token` (OAuth 2.1 §3.2, §4.1.3, §4.3, §4.4): the code exchange (the code burnt
//! first, then PKCE), refresh with rotation, and client_credentials.

use super::{authenticate_client, mark_used};
use crate::{
    actors::{
        code_issuer::{CodeError, RedeemCode},
        token_ledger::{IssueTokens, RefreshTokens, RevokeGrant},
    },
    domain::{client::GrantType, grant::GrantId, pkce::CodeChallenge},
    error::{Error, ErrorCode},
    metrics::Grant,
    oauth::{
        params::Params,
        token::{TokenRequest, TokenResponse},
    },
    services::Services,
};

/// `POST /token`.
pub async fn token(
    services: &Services,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<TokenResponse, Error> {
    let params = Params::parse(body);
    let client = authenticate_client(services, authorization, &params).await?;
    let request = TokenRequest::parse(&params)?;
    if !client.allows(request.grant_type()) {
        return Err(Error::oauth(
            ErrorCode::UnauthorizedClient,
            "this client may not use this grant type",
        ));
    }
    if let Some(resource) = request.resource() {
        if !services.settings.is_own_resource(resource) {
            return Err(Error::oauth(ErrorCode::InvalidTarget, "unknown resource"));
        }
    }
    let grant = match &request {
        TokenRequest::AuthorizationCode { .. } => Grant::AuthorizationCode,
        TokenRequest::RefreshToken { .. } => Grant::RefreshToken,
        TokenRequest::ClientCredentials { .. } => Grant::ClientCredentials,
    };
    let issued = match request {
        TokenRequest::AuthorizationCode {
            code,
            code_verifier,
            redirect_uri,
            ..
        } => {
            // Burn the code first, then check PKCE: a failed verifier must not leave the
            // code usable for another guess.
            let redeemed = services
                .ask(
                    &services.codes,
                    RedeemCode {
                        code,
                        client_id: client.client_id.clone(),
                    },
                )
                .await?;
            let record = match redeemed {
                Ok(r) => r,
                Err(CodeError::Replayed(grant_id)) => {
                    revoke_replayed(services, grant_id).await?;
                    return Err(CodeError::Replayed(grant_id).into());
                }
                Err(e) => return Err(e.into()),
            };
            if redirect_uri.is_some_and(|r| r != record.redirect_uri) {
                return Err(Error::oauth(
                    ErrorCode::InvalidGrant,
                    "redirect_uri does not match the authorization request",
                ));
            }
            let challenge = CodeChallenge::from_stored(record.code_challenge);
            if !challenge.verify(&code_verifier).unwrap_or(false) {
                return Err(Error::oauth(
                    ErrorCode::InvalidGrant,
                    "code_verifier does not match the code_challenge",
                ));
            }
            mark_used(services, &client).await?;
            let msg = IssueTokens {
                grant_id: record.grant_id,
                client_id: client.client_id.clone(),
                subject: Some(record.subject),
                scopes: record.scopes,
                resource: record.resource,
                with_refresh: client.allows(GrantType::RefreshToken),
            };
            services.ask(&services.ledger, msg).await?.wait().await?
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            ..
        } => {
            // `offline_access` names no permission of the access token (SEP-2207): asking
            // for it again on refresh narrows nothing.
            let scopes = scope
                .map(|s| s.for_access_token())
                .filter(|s| !s.is_empty());
            let msg = RefreshTokens {
                refresh_token,
                client_id: client.client_id,
                scopes,
            };
            services.ask(&services.ledger, msg).await?.wait().await?
        }
        TokenRequest::ClientCredentials { scope, .. } => {
            if !client.is_confidential() {
                return Err(Error::oauth(
                    ErrorCode::UnauthorizedClient,
                    "public clients may not use client_credentials",
                ));
            }
            let scopes = match scope {
                Some(s) if !s.is_subset(&client.scopes) => {
                    return Err(Error::oauth(
                        ErrorCode::InvalidScope,
                        "requested scope is not allowed",
                    ))
                }
                Some(s) => s,
                None => client.scopes.clone(),
            };
            mark_used(services, &client).await?;
            let msg = IssueTokens {
                grant_id: GrantId::generate(),
                client_id: client.client_id,
                subject: None,
                scopes,
                resource: services.settings.resource.clone(),
                with_refresh: false,
            };
            services.ask(&services.ledger, msg).await?.wait().await?
        }
    };
    if !issued.repeated {
        services
            .metrics
            .tokens_issued(grant, 1 + u64::from(issued.refresh_token.is_some()));
    }
    Ok(TokenResponse {
        access_token: issued.access_token,
        expires_in: issued.expires_in,
        scopes: issued.scopes,
        refresh_token: issued.refresh_token,
    })
}

/// OAuth 2.1 §4.1.3: a replayed code revokes every token issued from it.
async fn revoke_replayed(services: &Services, grant_id: GrantId) -> Result<(), Error> {
    tracing::warn!(
        request_id = %crate::domain::request_id::current(),
        "authorization code replay detected, grant revoked"
    );
    services
        .ask(&services.ledger, RevokeGrant { grant_id })
        .await?
        .wait()
        .await?;
    Ok(())
}
