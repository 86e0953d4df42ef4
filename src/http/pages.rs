//! Server-rendered HTML: the login and consent page, and error pages. Every dynamic value
//! is escaped with `html-escape`; pages forbid framing (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`, RFC 9700 §4.16), send no referrer, load nothing external and
//! are never cached.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, HttpResponseBuilder,
};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::oauth::{authorize::AuthorizationRequest, params::Params};

/// The authorization parameters carried from the page to the decision endpoint.
pub const CARRIED_PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "state",
    "resource",
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;margin:0;color:#1d2330}\
main{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.75rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
h1{font-size:1.3rem;margin:0 0 1rem}p{line-height:1.45}.muted{color:#5a6270;font-size:.9rem}\
ul{padding-left:1.2rem}code{background:#eef0f3;padding:.05rem .3rem;border-radius:.25rem;word-break:break-all}\
label{display:block;margin:.8rem 0 .25rem;font-weight:600}\
input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;border:1px solid #a9b0bb;border-radius:.4rem}\
input:focus,button:focus{outline:3px solid #7aa7ff;outline-offset:1px}\
.actions{display:flex;gap:.75rem;margin-top:1.25rem}button{flex:1;padding:.7rem;font-size:1rem;border-radius:.4rem;border:1px solid #2c5cc5;cursor:pointer}\
button.approve{background:#2c5cc5;color:#fff}button.deny{background:#fff;color:#2c5cc5}\
.error{background:#fdecea;color:#8a1c12;padding:.6rem .8rem;border-radius:.4rem}\
@media (max-width:30rem){main{margin:0;border-radius:0;min-height:100vh}}";

/// Adds the headers every page carries.
fn secure(builder: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        text(title)
    )
}

/// An error page; never a redirect.
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!(
        "<h1>Authorization failed</h1><p class=\"error\" role=\"alert\">{}</p>\
<p class=\"muted\">You can close this window and start again from the application.</p>",
        text(message)
    );
    secure(&mut HttpResponse::build(status)).body(document("Authorization failed", &body))
}

/// The login and consent page for a validated request.
pub fn login_page(
    status: StatusCode,
    request: &AuthorizationRequest,
    params: &Params,
    csrf: &str,
    cookie: actix_web::cookie::Cookie<'_>,
    signed_in: Option<&str>,
    error: Option<&str>,
) -> HttpResponse {
    let client_name = request
        .client
        .client_name
        .as_deref()
        .unwrap_or(&request.client.client_id);
    let redirect_host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", text(s)))
        .collect();
    let hidden: String = CARRIED_PARAMS
        .iter()
        .filter_map(|name| params.get(name).map(|v| (name, v)))
        .map(|(name, v)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                attr(v)
            )
        })
        .collect();
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", text(e)))
        .unwrap_or_default();
    let credentials = match signed_in {
        Some(user) => {
            // The same request again with prompt=login shows the password form.
            let mut again = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in params.pairs() {
                if CARRIED_PARAMS.contains(&name.as_str()) {
                    again.append_pair(name, value);
                }
            }
            again.append_pair("prompt", "login");
            format!(
                "<p>Signed in as <strong>{}</strong>. <a href=\"/authorize?{}\">Use another account</a></p>",
                text(user),
                attr(&again.finish())
            )
        }
        None => "<label for=\"username\">Username</label>\
<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" required autofocus>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>"
            .to_owned(),
    };
    let body = format!(
        "<h1>Sign in to authorize <span>{name}</span></h1>{error}\
<p><strong>{name}</strong> wants access to your account with these scopes:</p><ul>{scopes}</ul>\
<p class=\"muted\">After you approve, you will be sent to <strong>{host}</strong>.</p>\
<form method=\"post\" action=\"/authorize/decision\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{hidden}{credentials}\
<div class=\"actions\"><button class=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
<button class=\"deny\" type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button></div></form>",
        name = text(client_name),
        host = text(&redirect_host),
        csrf = attr(csrf),
    );
    secure(&mut HttpResponse::build(status))
        .cookie(cookie)
        .body(document("Authorize", &body))
}
