//! Handlers of the authorization server endpoints. Each extracts, calls one flow in
//! [`crate::flows`], and renders; no state, no policy.

use actix_web::{
    cookie::{Cookie, SameSite},
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};
use subtle::ConstantTimeEq as _;

use crate::{
    actors::client_registry::ResolveLoginSession,
    app::Services,
    domain::secrets::random_token,
    error::{Error, ErrorCode},
    flows::{self, Decision, DecisionOutcome},
    oauth::{metadata, params::Params},
};

/// The CSRF cookie name; `__Host-` binds it to this exact origin when served over https.
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

fn issuer(req: &HttpRequest, services: &Services) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    services.settings.issuer_for_host(host)
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
    let issuer = issuer(&req, &services);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(metadata::authorization_server(&issuer, &services.settings))
}

/// Renders the login page for a valid request, reusing the browser's CSRF cookie if it
/// already has one so that two open tabs both work.
async fn show_login(
    req: &HttpRequest,
    services: &Services,
    params: Params,
) -> Result<HttpResponse, Error> {
    let issuer = issuer(req, services);
    let request = flows::authorize(services, &params, &issuer).await?;
    let name = csrf_cookie_name(services);
    let csrf = req
        .cookie(name)
        .map(|c| c.value().to_owned())
        .filter(|v| super::pages::is_csrf_token(v))
        .unwrap_or_else(random_token);
    let cookie = csrf_cookie(services, name, csrf.clone());
    // A browser that signed in recently only confirms consent, unless the client asked for
    // a fresh login (`prompt=login`, as in OpenID Connect) or the user chose another account.
    let session = req
        .cookie(session_cookie_name(services))
        .map(|c| c.value().to_owned());
    let signed_in = match session {
        Some(token) if params.get("prompt") != Some("login") => {
            services
                .ask(&services.registry, ResolveLoginSession { token })
                .await?
        }
        _ => None,
    };
    Ok(super::pages::login_page(
        StatusCode::OK,
        &request,
        &params,
        &csrf,
        cookie,
        signed_in.as_deref(),
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
    let body = form_body(&req, &body).map_err(|_| bad_form())?;
    let params = Params::parse(body);
    let name = csrf_cookie_name(&services);
    let cookie = req
        .cookie(name)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let field = params.get("csrf").unwrap_or_default();
    let csrf_ok = super::pages::is_csrf_token(&cookie)
        && bool::from(cookie.as_bytes().ct_eq(field.as_bytes()));
    if !csrf_ok || params.is_duplicated("csrf") || params.is_duplicated("action") {
        return Err(bad_form());
    }
    let session = req
        .cookie(session_cookie_name(&services))
        .map(|c| c.value().to_owned());
    let Some(decision) = Decision::from_form(&params, session) else {
        return Err(bad_form());
    };
    let issuer = issuer(&req, &services);
    let address = req.peer_addr().map(|a| a.ip());
    match flows::decide(&services, &params, decision, &issuer, address).await? {
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
        DecisionOutcome::Retry(request, message) => {
            let cookie_value = csrf_cookie(&services, name, cookie.clone());
            Ok(super::pages::login_page(
                StatusCode::BAD_REQUEST,
                &request,
                &params,
                &cookie,
                cookie_value,
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
    let response = flows::token(&services, authorization(&req), body).await?;
    Ok(no_store_json(StatusCode::OK, &response))
}

/// `POST /revoke` (RFC 7009).
pub async fn revoke(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
) -> Result<HttpResponse, Error> {
    let body = form_body(&req, &body)?;
    flows::revoke(&services, authorization(&req), body).await?;
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
    let issuer = issuer(&req, &services);
    let response = flows::introspect(&services, authorization(&req), body, &issuer).await?;
    Ok(no_store_json(StatusCode::OK, &response))
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
/// §3.1): a browser can send a cross-site `text/plain` or form post without a CORS
/// preflight, so a page the user merely visits could otherwise register clients.
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
    let address = req.peer_addr().map(|a| a.ip());
    let response = flows::register(&services, &body, address).await?;
    Ok(no_store_json(StatusCode::CREATED, &response))
}
