//! The one mapping of the crate [`Error`] to HTTP responses (actix-web's `ResponseError`):
//! status codes, the RFC 6749 §5.2 JSON body with `Cache-Control: no-store`, the Basic and
//! Bearer (RFC 6750 §3, RFC 9728) challenges, `Retry-After`, the HTML error page and the
//! `303` back to the client. What each component's error becomes is decided in
//! [`crate::error`]; how it is written on the wire, only here.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, ResponseError,
};

use crate::{
    error::{Error, ErrorCode, ErrorLabel},
    oauth::error::sanitize,
};

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth(e) => match (e.retry_after, e.code) {
                _ if e.unavailable => StatusCode::SERVICE_UNAVAILABLE,
                (Some(_), _) => StatusCode::TOO_MANY_REQUESTS,
                (None, ErrorCode::InvalidClient) => StatusCode::UNAUTHORIZED,
                (None, ErrorCode::TemporarilyUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
                (None, ErrorCode::ServerError) => StatusCode::INTERNAL_SERVER_ERROR,
                (None, _) => StatusCode::BAD_REQUEST,
            },
            Self::Page(p) => p.status,
            Self::Redirect(_) => StatusCode::SEE_OTHER,
            Self::Challenge(c) => c.status,
            Self::Transport { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = self.render();
        // For the metrics middleware: the error code without parsing the body back.
        if let Some(code) = self.code_label() {
            res.extensions_mut().insert(ErrorLabel(code));
        }
        res
    }
}

impl Error {
    /// The error code a response carries, if it has one.
    fn code_label(&self) -> Option<&'static str> {
        match self {
            Self::OAuth(e) => Some(e.code.as_str()),
            Self::Challenge(c) => Some(c.error.unwrap_or("invalid_token")),
            Self::Page(_) | Self::Redirect(_) | Self::Transport { .. } => None,
        }
    }

    fn render(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::OAuth(e) => {
                let mut resp = HttpResponse::build(status);
                resp.insert_header((header::CACHE_CONTROL, "no-store"))
                    .insert_header((header::PRAGMA, "no-cache"));
                if e.basic_challenge {
                    resp.insert_header((
                        header::WWW_AUTHENTICATE,
                        r#"Basic realm="oauth-mcp", charset="UTF-8""#,
                    ));
                }
                if let Some(secs) = e.retry_after {
                    resp.insert_header((header::RETRY_AFTER, secs.to_string()));
                }
                resp.json(serde_json::json!({
                    "error": e.code.as_str(),
                    "error_description": e.description,
                }))
            }
            Self::Page(p) => {
                let mut resp = crate::http::pages::error_page(status, &p.message);
                if let Some(secs) = p.retry_after {
                    if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                        resp.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
                resp
            }
            Self::Challenge(c) => {
                let description = sanitize(c.description.clone());
                let mut value = String::from("Bearer ");
                if let Some(error) = c.error {
                    value.push_str(&format!(
                        "error=\"{error}\", error_description=\"{description}\", "
                    ));
                }
                value.push_str(&format!(
                    "resource_metadata=\"{}\", scope=\"{}\"",
                    c.resource_metadata, c.scope
                ));
                HttpResponse::build(status)
                    .insert_header((header::WWW_AUTHENTICATE, value))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .json(serde_json::json!({
                        "error": c.error.unwrap_or("invalid_token"),
                        "error_description": description,
                    }))
            }
            Self::Transport { message, .. } => {
                HttpResponse::build(status).json(serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": { "code": -32600, "message": message },
                }))
            }
            Self::Redirect(url) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, url.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish(),
        }
    }
}
