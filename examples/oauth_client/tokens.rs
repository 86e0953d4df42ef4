//! The OAuth side through oauth2-rs: the client for the discovered endpoints, showing the
//! tokens, the error an endpoint answered, a refused (rotated-out) refresh token, and
//! revocation (RFC 7009).

use oauth2::{
    basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse},
    AccessToken, AuthUrl, ClientId, ClientSecret, ConfigurationError, RedirectUrl,
    RequestTokenError, RevocationUrl, StandardRevocableToken, TokenResponse as _, TokenUrl,
};

use reqwest::{Client, StatusCode};

use crate::common::{BoxError, Discovery};
use crate::{identity::Identity, short, OAuthClient, REDIRECT_URI};

/// oauth2-rs's client for `identity` and the discovered endpoints. Without a secret,
/// oauth2-rs sends `client_id` in the request body (a public client).
pub(crate) fn oauth_client(
    found: &Discovery,
    identity: &Identity,
) -> Result<OAuthClient, BoxError> {
    let client = BasicClient::new(ClientId::new(identity.client_id().to_owned()))
        .set_auth_uri(AuthUrl::new(found.endpoint("authorization_endpoint")?)?)
        .set_token_uri(TokenUrl::new(found.endpoint("token_endpoint")?)?)
        .set_revocation_url(RevocationUrl::new(found.endpoint("revocation_endpoint")?)?)
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned())?);
    Ok(match identity.secret() {
        Some(secret) => client.set_client_secret(ClientSecret::new(secret.to_owned())),
        None => client,
    })
}

pub(crate) fn show_tokens(tokens: &BasicTokenResponse) {
    println!("token_type    = {:?}", tokens.token_type());
    println!("access_token  = {}", short(tokens.access_token().secret()));
    if let Some(refresh) = tokens.refresh_token() {
        println!("refresh_token = {}", short(refresh.secret()));
    }
    if let Some(expires_in) = tokens.expires_in() {
        println!("expires_in    = {} s", expires_in.as_secs());
    }
    if let Some(scopes) = tokens.scopes() {
        let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        println!("scope         = {}", scopes.join(" "));
    }
}

/// A readable message for an oauth2-rs token request error, with the server's error code.
pub(crate) fn token_error<E: std::error::Error>(
    e: &RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => format!(
            "the server answered {}{}",
            r.error(),
            r.error_description()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        RequestTokenError::Request(inner) => format!("request failed: {inner}"),
        RequestTokenError::Parse(inner, body) => format!(
            "unreadable response ({inner}): {}",
            String::from_utf8_lossy(body)
        ),
        RequestTokenError::Other(other) => other.clone(),
    }
}

pub(crate) fn expect_invalid_grant<E: std::error::Error>(
    what: &str,
    result: Result<BasicTokenResponse, RequestTokenError<E, oauth2::basic::BasicErrorResponse>>,
    grace: u64,
) -> Result<(), BoxError> {
    match result {
        Err(RequestTokenError::ServerResponse(r))
            if *r.error() == BasicErrorResponseType::InvalidGrant =>
        {
            println!(
                "{what} -> invalid_grant{}",
                r.error_description()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => Err(format!("{what}: expected invalid_grant, {}", token_error(&e)).into()),
        Ok(_) => Err(format!(
            "{what} was accepted; is the server's --refresh-grace longer than {grace} s? \
             (pass the same value with --refresh-grace)"
        )
        .into()),
    }
}

/// RFC 7009 revocation of an access token. oauth2-rs refuses to send it to an `http`
/// endpoint (RFC 7009 §2: clients MUST verify that the revocation URL is https); this
/// server runs on loopback http, so the same request is then made by hand.
pub(crate) async fn revoke_access_token(
    http: &Client,
    client: &OAuthClient,
    identity: &Identity,
    token: &AccessToken,
) -> Result<(), BoxError> {
    let revocable = StandardRevocableToken::AccessToken(token.clone());
    match client.revoke_token(revocable) {
        Ok(request) => {
            request
                .request_async(http)
                .await
                .map_err(|e| format!("revocation: {e}"))?;
            println!("revoked with oauth2-rs");
        }
        Err(ConfigurationError::InsecureUrl(_)) => {
            let url = client.revocation_url().url().clone();
            println!("oauth2-rs refuses a non-https revocation URL (RFC 7009 §2); the same request by hand:");
            println!(
                "POST {url}  token=…&token_type_hint=access_token  ({})",
                identity.auth_method()
            );
            let mut form = vec![
                ("token", token.secret().as_str()),
                ("token_type_hint", "access_token"),
            ];
            let request = match identity.secret() {
                Some(secret) => http
                    .post(url)
                    .basic_auth(identity.client_id(), Some(secret)),
                None => {
                    form.push(("client_id", identity.client_id()));
                    http.post(url)
                }
            };
            let reply = request.form(&form).send().await?;
            let status = reply.status();
            println!("  <- {status}");
            if status != StatusCode::OK {
                let body = reply.text().await.unwrap_or_default();
                return Err(format!("revocation answered {status}: {body}").into());
            }
        }
        Err(e) => return Err(format!("revocation: {e}").into()),
    }
    Ok(())
}
