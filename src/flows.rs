//! Multi-actor protocol flows, each one small orchestrating function: parse into domain
//! types, ask the owning actors in order, and map the answers. Handlers call these and only
//! render the result.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::{
    actors::{
        client_registry::{
            AuthenticateClient, AuthenticateUser, GetClient, MarkClientUsed, RegisterClient,
            RegistryError, ResolveClientDocument, ResolveLoginSession, StartLoginSession,
        },
        code_issuer::{CodeError, IssueCode, RedeemCode},
        token_ledger::{
            IntrospectToken, IssueTokens, IssuedTokens, RefreshTokens, RevokeGrant, RevokeToken,
        },
    },
    domain::{
        client::{Client, ClientOrigin, GrantType},
        grant::{GrantId, TokenKind},
        pkce::CodeChallenge,
        secrets::{Password, PresentedToken},
    },
    error::{Error, ErrorCode},
    metrics::Grant,
    oauth::{
        authorize::{self, AuthorizationRequest, AuthorizeError},
        client_auth::presented_client,
        client_document::{self, ClientDocumentError},
        params::Params,
        registration,
        token::TokenRequest,
    },
    services::Services,
};

/// Whether `client_id` names a client ID metadata document this server accepts.
fn names_document(services: &Services, client_id: &str) -> bool {
    services.settings.config.client_metadata_documents
        && client_document::is_document_url(client_id)
}

/// The client a metadata document URL describes (cached or fetched by the registry).
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
    Ok(crate::actors::ask(&services.registry, msg, timeout).await?)
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

/// The JSON body of a successful token response (OAuth 2.1 §3.2.3).
fn token_response(issued: IssuedTokens) -> Value {
    let mut body = json!({
        "access_token": issued.access_token.secret(),
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scopes.to_string(),
    });
    if let (Some(rt), Some(obj)) = (issued.refresh_token, body.as_object_mut()) {
        obj.insert("refresh_token".into(), rt.secret().into());
    }
    body
}

/// `POST /token`.
pub async fn token(
    services: &Services,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<Value, Error> {
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
            let msg = RefreshTokens {
                refresh_token,
                client_id: client.client_id,
                scopes: scope,
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
    Ok(token_response(issued))
}

/// OAuth 2.1 §4.1.3: a replayed code revokes every token issued from it.
async fn revoke_replayed(services: &Services, grant_id: GrantId) -> Result<(), Error> {
    tracing::warn!(
        request_id = %crate::http::request_id(),
        "authorization code replay detected, grant revoked"
    );
    services
        .ask(&services.ledger, RevokeGrant { grant_id })
        .await?
        .wait()
        .await?;
    Ok(())
}

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
) -> Result<Value, Error> {
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
        None => json!({ "active": false }),
        Some(info) => {
            let mut doc = json!({
                "active": true,
                "scope": info.scopes.to_string(),
                "client_id": info.client_id,
                "sub": info.subject.as_deref().unwrap_or(&info.client_id),
                "aud": info.resource,
                "iss": issuer,
                "exp": info.expires_at,
                "iat": info.issued_at,
                "token_type": match info.kind { TokenKind::Access => "Bearer", TokenKind::Refresh => "refresh_token" },
            });
            if let (Some(user), Some(obj)) = (&info.subject, doc.as_object_mut()) {
                obj.insert("username".into(), user.clone().into());
            }
            doc
        }
    })
}

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

/// The page shown when a redirect back to the client cannot be built (never a redirect).
fn invalid_redirect_uri() -> Error {
    Error::page(
        StatusCode::BAD_REQUEST,
        "The redirect_uri is not a valid URI.",
    )
}

/// Maps an authorization error to the crate error: a page, or a redirect to the client.
fn authorize_error(e: AuthorizeError, issuer: &str) -> Error {
    match e {
        AuthorizeError::Page(message) => Error::page(StatusCode::BAD_REQUEST, message),
        AuthorizeError::Redirect {
            redirect_uri,
            code,
            description,
            state,
        } => {
            match authorize::error_redirect(
                &redirect_uri,
                code,
                description,
                state.as_deref(),
                issuer,
            ) {
                Some(url) => Error::Redirect(url),
                None => invalid_redirect_uri(),
            }
        }
    }
}

/// `GET`/`POST /authorize`: validates the request for the login and consent page.
pub async fn authorize(
    services: &Services,
    params: &Params,
    issuer: &str,
) -> Result<AuthorizationRequest, Error> {
    let client_id = authorize::client_id(params).map_err(|e| authorize_error(e, issuer))?;
    let client = if names_document(services, client_id) {
        // Without a valid document there is no trusted redirect URI: an error page, never a
        // redirect (draft §4.3 aborts the request; RFC 6749 §4.1.2.1).
        Some(
            resolve_document(services, client_id)
                .await?
                .map_err(Error::client_document_page)?,
        )
    } else {
        let msg = GetClient {
            client_id: client_id.to_owned(),
        };
        services.ask(&services.registry, msg).await?
    };
    authorize::validate(params, client, &services.settings).map_err(|e| authorize_error(e, issuer))
}

/// Whether the authorization request asks for a fresh password login (`prompt=login`, as
/// in OpenID Connect Core §3.1.2.1; `prompt` is a space-separated list). Any `prompt`
/// parameter naming `login` counts, repeated or not.
pub fn prompts_login(params: &Params) -> bool {
    params
        .pairs()
        .iter()
        .any(|(k, v)| k == "prompt" && v.split_ascii_whitespace().any(|p| p == "login"))
}

/// What the user decided on the consent page.
#[derive(Debug)]
pub enum Decision {
    /// Approve, signing in with these credentials.
    Approve {
        /// Username.
        username: String,
        /// Password.
        password: Password,
    },
    /// Approve as the user of this browser's sign-in session (cookie value).
    ApproveSignedIn {
        /// The sign-in session cookie.
        session: String,
    },
    /// Deny.
    Deny,
}

impl Decision {
    /// The decision of a submitted consent form (`action`, `username`, `password`) and the
    /// browser's sign-in session cookie, if any; `None` when `action` is neither `approve`
    /// nor `deny`. Approving without a password uses the sign-in session when there is one.
    pub fn from_form(params: &Params, session: Option<String>) -> Option<Self> {
        match (params.get("action"), params.get("password"), session) {
            (Some("deny"), _, _) => Some(Self::Deny),
            // No password typed, and the page offered consent as the signed-in user.
            (Some("approve"), None, Some(session)) => Some(Self::ApproveSignedIn { session }),
            (Some("approve"), password, _) => Some(Self::Approve {
                username: params.get("username").unwrap_or_default().to_owned(),
                password: Password::new(password.unwrap_or_default().to_owned()),
            }),
            _ => None,
        }
    }
}

/// Outcome of a consent form submission.
#[derive(Debug)]
pub enum DecisionOutcome {
    /// Send the browser back to the client (code or `access_denied`); with a new sign-in
    /// session cookie value after a password login.
    Redirect {
        /// Where to.
        url: String,
        /// A sign-in session to set as a cookie.
        new_session: Option<String>,
    },
    /// The form must be shown again, with this message.
    Retry(Box<AuthorizationRequest>, &'static str),
}

/// `POST /authorize/decision`: re-validates the request, signs the user in, and issues a
/// code. CSRF has been checked by the handler.
pub async fn decide(
    services: &Services,
    params: &Params,
    decision: Decision,
    issuer: &str,
    address: Option<IpAddr>,
) -> Result<DecisionOutcome, Error> {
    let request = authorize(services, params, issuer).await?;
    let (username, password) = match decision {
        Decision::Deny => {
            let url = authorize::error_redirect(
                &request.redirect_uri,
                ErrorCode::AccessDenied,
                "the user denied the request",
                request.state.as_deref(),
                issuer,
            );
            return url
                .map(|url| DecisionOutcome::Redirect {
                    url,
                    new_session: None,
                })
                .ok_or_else(invalid_redirect_uri);
        }
        Decision::Approve { username, password } => (username, password),
        // `prompt=login` holds when the form comes back, not only when it was drawn: a
        // consent without the password does not satisfy it, whatever session is alive.
        Decision::ApproveSignedIn { .. } if prompts_login(params) => {
            return Ok(DecisionOutcome::Retry(
                Box::new(request),
                "This application asks you to sign in again. Enter your password.",
            ));
        }
        Decision::ApproveSignedIn { session } => {
            let msg = ResolveLoginSession { token: session };
            return match services.ask(&services.registry, msg).await? {
                Some(subject) => issue_code(services, request, subject, issuer, None).await,
                None => Ok(DecisionOutcome::Retry(
                    Box::new(request),
                    "Your sign-in has expired. Sign in again.",
                )),
            };
        }
    };
    let login = services
        .ask(
            &services.registry,
            AuthenticateUser {
                username,
                password,
                address,
            },
        )
        .await?;
    let subject = match login {
        Ok(s) => s,
        Err(RegistryError::InvalidCredentials) => {
            services.metrics.login_failed();
            return Ok(DecisionOutcome::Retry(
                Box::new(request),
                "The username or password is incorrect.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let new_session = if services.settings.config.login_session_ttl.is_zero() {
        None
    } else {
        Some(
            services
                .ask(
                    &services.registry,
                    StartLoginSession {
                        subject: subject.clone(),
                    },
                )
                .await?,
        )
    };
    issue_code(services, request, subject, issuer, new_session).await
}

/// Issues the code for an approved request and builds the redirect (code, state, iss).
async fn issue_code(
    services: &Services,
    request: AuthorizationRequest,
    subject: String,
    issuer: &str,
    new_session: Option<String>,
) -> Result<DecisionOutcome, Error> {
    let msg = IssueCode {
        client_id: request.client.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_explicit: request.redirect_uri_explicit,
        code_challenge: request.code_challenge.as_str().to_owned(),
        scopes: request.scopes.clone(),
        resource: request.resource.clone(),
        subject,
    };
    let code = services.ask(&services.codes, msg).await?.wait().await?;
    let mut pairs = vec![("code", code.secret())];
    if let Some(state) = request.state.as_deref() {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    authorize::redirect_url(&request.redirect_uri, &pairs)
        .map(|url| DecisionOutcome::Redirect { url, new_session })
        .ok_or_else(invalid_redirect_uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(form: &[u8], session: Option<&str>) -> Option<Decision> {
        Decision::from_form(&Params::parse(form), session.map(str::to_owned))
    }

    #[test]
    fn decision_form_parsing() {
        assert!(matches!(
            decide(b"action=deny&password=x", Some("s")),
            Some(Decision::Deny)
        ));
        assert!(matches!(
            decide(b"action=approve", Some("s")),
            Some(Decision::ApproveSignedIn { session }) if session == "s"
        ));
        let Some(Decision::Approve { username, password }) =
            decide(b"action=approve&username=alice&password=p+w", Some("s"))
        else {
            panic!("expected a password approval");
        };
        assert_eq!((username.as_str(), password.secret()), ("alice", "p w"));
        assert!(matches!(
            decide(b"action=approve", None),
            Some(Decision::Approve { username, .. }) if username.is_empty()
        ));
        assert!(decide(b"action=maybe", None).is_none());
        for (form, login) in [
            (&b"prompt=login"[..], true),
            (b"prompt=consent+login", true),
            (b"prompt=none&prompt=login", true),
            (b"prompt=consent", false),
            (b"prompt=logins", false),
            (b"x=login", false),
        ] {
            assert_eq!(prompts_login(&Params::parse(form)), login, "{form:?}");
        }
        assert!(decide(b"password=x", Some("s")).is_none());
    }
}
