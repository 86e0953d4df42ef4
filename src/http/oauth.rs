//! Handlers of the authorization server endpoints. Each extracts, calls one endpoint in
//! [`crate::endpoints`], and renders; no state, no policy.

use actix_web::{
    cookie::{Cookie, SameSite},
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};

use super::forms::{self, CsrfBinding};
use crate::{
    actors::client_registry::ResolveLoginSession,
    domain::secrets::random_token,
    endpoints::{
        self,
        authorize::{Decision, DecisionOutcome},
    },
    error::{Error, ErrorCode},
    oauth::{authorize::prompts_login, metadata, params::Params},
    services::Services,
};

/// The pre-login cookie (a per-browser random id the CSRF values of password forms are
/// bound to, [`forms`]); `__Host-` binds it to this exact origin when served over https.
fn csrf_cookie_name(services: &Services) -> &'static str {
    if services.settings.public_url.scheme() == "https" {
        "__Host-oauth_mcp_csrf"
    } else {
        "oauth_mcp_csrf"
    }
}

/// The browser sign-in session cookie name.
fn session_cookie_name(services: &Services) -> &'static str {
    if services.settings.public_url.scheme() == "https" {
        "__Host-oauth_mcp_session"
    } else {
        "oauth_mcp_session"
    }
}

fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
}

/// Form endpoints accept `application/x-www-form-urlencoded` only (OAuth 2.1 §3.2).
fn form_body<'a>(req: &HttpRequest, body: &'a web::Bytes) -> Result<&'a [u8], Error> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        Ok(body)
    } else {
        Err(Error::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ))
    }
}

fn no_store_json(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(req: HttpRequest, services: web::Data<Services>) -> HttpResponse {
    let issuer = super::issuer(&req, &services.settings);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(metadata::authorization_server(&issuer, &services.settings))
}

/// A cookie's value, when it has the shape of the random values this server sets.
fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name)
        .map(|c| c.value().to_owned())
        .filter(|v| super::pages::is_csrf_token(v))
}

/// The browser's pre-login id (reused so that two open tabs both work, or a fresh one)
/// and the cookie that keeps it.
fn pre_login(req: &HttpRequest, services: &Services) -> (String, Cookie<'static>) {
    let name = csrf_cookie_name(services);
    let id = cookie_value(req, name).unwrap_or_else(random_token);
    let cookie = csrf_cookie(services, name, id.clone());
    (id, cookie)
}

/// Renders the login page for a valid request.
async fn show_login(
    req: &HttpRequest,
    services: &Services,
    params: Params,
) -> Result<HttpResponse, Error> {
    let issuer = super::issuer(req, &services.settings);
    let request = endpoints::authorize::authorize(services, &params, &issuer).await?;
    let (browser, cookie) = pre_login(req, services);
    // A browser that signed in recently only confirms consent, unless the client asked for
    // a fresh login (`prompt=login`, as in OpenID Connect) or the user chose another account.
    let session = cookie_value(req, session_cookie_name(services));
    let signed_in = match session.clone() {
        Some(token) if !prompts_login(&params) => services
            .ask(&services.registry, ResolveLoginSession { token })
            .await??
            .zip(session),
        _ => None,
    };
    // Consent as the signed-in user carries a value only that session's holder can have.
    let csrf = match &signed_in {
        Some((_, session)) => forms::csrf_value(&services.key, CsrfBinding::SignIn(session)),
        None => forms::csrf_value(&services.key, CsrfBinding::PreLogin(&browser)),
    };
    Ok(super::pages::login_page(
        StatusCode::OK,
        &request,
        &params,
        &csrf,
        cookie,
        signed_in.as_ref().map(|(user, _)| user.as_str()),
        None,
    ))
}

fn csrf_cookie(services: &Services, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(services.settings.public_url.scheme() == "https")
        .finish()
}

fn session_cookie(services: &Services, value: String) -> Cookie<'static> {
    let ttl = services.settings.config.login_session_ttl;
    Cookie::build(session_cookie_name(services), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(services.settings.public_url.scheme() == "https")
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// `GET /authorize`.
pub async fn authorize_get(
    req: HttpRequest,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    let params = Params::parse(req.query_string().as_bytes());
    show_login(&req, &services, params).await
}

/// `POST /authorize` (form-encoded parameters, OAuth 2.1 §3.1).
pub async fn authorize_post(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    let Ok(body) = form_body(&req, &body) else {
        return Err(Error::page(
            StatusCode::BAD_REQUEST,
            "The authorization request must be form-encoded.",
        ));
    };
    show_login(&req, &services, Params::parse(body)).await
}

/// `POST /authorize/decision`: the login and consent form.
pub async fn decision(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    let bad_form = || {
        Error::page(
            StatusCode::BAD_REQUEST,
            "This sign-in form has expired or is invalid. Start again from the application.",
        )
    };
    if let Some(refusal) = forms::cross_site_refusal(&req, &services.settings) {
        return Err(refusal);
    }
    let body = form_body(&req, &body).map_err(|_| bad_form())?;
    let params = Params::parse(body);
    if params.is_duplicated("csrf") || params.is_duplicated("action") {
        return Err(bad_form());
    }
    let session = cookie_value(&req, session_cookie_name(&services));
    let Some(decision) = Decision::from_form(&params, session.clone()) else {
        return Err(bad_form());
    };
    let csrf_ok = forms::csrf_accepted(
        &services.key,
        params.get("csrf").unwrap_or_default(),
        matches!(decision, Decision::ApproveSignedIn { .. }),
        session.as_deref(),
        cookie_value(&req, csrf_cookie_name(&services)).as_deref(),
    );
    if !csrf_ok {
        return Err(bad_form());
    }
    let issuer = super::issuer(&req, &services.settings);
    let address = super::client_address(&req, &services.settings);
    match endpoints::authorize::decide(&services, &params, decision, &issuer, address).await? {
        // 303 so the browser follows with GET and never re-posts the credentials
        // (RFC 9700 §4.12).
        DecisionOutcome::Redirect { url, new_session } => {
            let mut resp = HttpResponse::SeeOther();
            resp.insert_header((header::LOCATION, url))
                .insert_header((header::CACHE_CONTROL, "no-store"));
            if let Some(token) = new_session {
                resp.cookie(session_cookie(&services, token));
            }
            Ok(resp.finish())
        }
        // The password form again, so its value is bound to the pre-login id.
        DecisionOutcome::Retry(request, message) => {
            let (browser, cookie) = pre_login(&req, &services);
            let csrf = forms::csrf_value(&services.key, CsrfBinding::PreLogin(&browser));
            Ok(super::pages::login_page(
                StatusCode::BAD_REQUEST,
                &request,
                &params,
                &csrf,
                cookie,
                None,
                Some(message),
            ))
        }
    }
}

/// `POST /token`.
pub async fn token(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    let body = form_body(&req, &body)?;
    let response = endpoints::token::token(&services, authorization(&req), body).await?;
    Ok(no_store_json(StatusCode::OK, &response.body()))
}

/// `POST /revoke` (RFC 7009).
pub async fn revoke(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    let body = form_body(&req, &body)?;
    endpoints::revoke::revoke(&services, authorization(&req), body).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST /introspect` (RFC 7662).
pub async fn introspect(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    let body = form_body(&req, &body)?;
    let issuer = super::issuer(&req, &services.settings);
    let response =
        endpoints::introspect::introspect(&services, authorization(&req), body, &issuer).await?;
    Ok(no_store_json(StatusCode::OK, &response.body()))
}

/// Whether the request says its body is JSON (`application/json`, any parameters).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /register` (RFC 7591). The body must be declared `application/json` (RFC 7591
/// §3.1): a browser sends a cross-site `text/plain` or form post without a CORS preflight,
/// so a page the user merely visits could otherwise register clients behind the browser's
/// back. A JSON post needs the preflight, which `/register` answers for any origin on
/// purpose (browser-based MCP clients register from web pages); the per-address rate limit
/// and the registry's bound are what limit those (docs/security.md).
pub async fn register(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    if !is_json(&req) {
        return Err(Error::oauth(
            ErrorCode::InvalidClientMetadata,
            "Content-Type must be application/json",
        ));
    }
    let address = super::client_address(&req, &services.settings);
    let response = endpoints::register::register(&services, &body, address).await?;
    Ok(no_store_json(StatusCode::CREATED, &response))
}
