//! `GET`/`POST /authorize` and `POST /authorize/decision` (OAuth 2.1 §4.1.1, §4.1.2):
//! validating the authorization request (errors before the client and its redirect URI are
//! verified are pages, never redirects: §4.1.2.1), then the user's decision: sign-in by
//! password or by the browser's sign-in session, consent, and the code sent back.

use std::net::IpAddr;

use super::{names_document, resolve_document};
use crate::{
    actors::{
        client_registry::{
            AuthenticateUser, GetClient, RegistryError, ResolveLoginSession, StartLoginSession,
        },
        code_issuer::IssueCode,
    },
    domain::secrets::Password,
    error::{Error, ErrorCode},
    oauth::{
        authorize::{self, prompts_login, AuthorizationRequest, AuthorizeError},
        params::Params,
    },
    services::Services,
};

/// The page shown when a redirect back to the client cannot be built (never a redirect).
fn invalid_redirect_uri() -> Error {
    Error::bad_request_page("The redirect_uri is not a valid URI.")
}

/// Maps an authorization error to the crate error: a page, or a redirect to the client.
fn authorize_error(e: AuthorizeError, issuer: &str) -> Error {
    match e {
        AuthorizeError::Page(message) => Error::bad_request_page(message),
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

/// What the user decided on the consent page (read from the form by `http::forms`).
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
            return match services.ask(&services.registry, msg).await?? {
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
                .await??,
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
