//! Server-rendered HTML: the login and consent page, and error pages. Every dynamic value
//! is escaped with `html-escape`; pages forbid framing (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`, RFC 9700 §4.16), run no script, send no referrer, load nothing
//! external and are never cached. The login form may only be submitted to this server, and
//! the redirect that answers it may only go to the client's redirect URI (CSP `form-action`).
//!
//! The page works without JavaScript, by keyboard alone and at phone widths (320 px and up);
//! `tools/browser-check.sh` checks that in headless Chromium.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, HttpResponseBuilder,
};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::{
    domain::{
        client::Client,
        redirect::{is_loopback_host, is_private_use},
        scope::OFFLINE_ACCESS,
    },
    oauth::{authorize::AuthorizationRequest, client_document, params::Params},
};

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
    // Carried so that `prompt=login` is enforced when the form comes back, too.
    "prompt",
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;margin:0;color:#1d2330}\
main{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.75rem;box-shadow:0 1px 4px rgba(0,0,0,.12);overflow-wrap:anywhere}\
h1{font-size:1.3rem;margin:0 0 1rem}p{line-height:1.45}.muted{color:#5a6270;font-size:.9rem}a{color:#2c5cc5}\
ul{padding-left:1.2rem}code{background:#eef0f3;padding:.05rem .3rem;border-radius:.25rem;word-break:break-all}\
label{display:block;margin:.8rem 0 .25rem;font-weight:600}input,button{font-family:inherit}\
input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;border:1px solid #6b7280;border-radius:.4rem}\
input[aria-invalid=true]{border-color:#b3261e}\
input:focus,button:focus,a:focus{outline:3px solid #1d4ed8;outline-offset:2px}\
.actions{display:flex;gap:.75rem;margin-top:1.25rem}button{flex:1;padding:.7rem;font-size:1rem;border-radius:.4rem;border:1px solid #2c5cc5;cursor:pointer}\
button.approve{background:#2c5cc5;color:#fff}button.deny{background:#fff;color:#2c5cc5}\
.error{background:#fdecea;color:#8a1c12;padding:.6rem .8rem;border-radius:.4rem}\
.notice{background:#fff7e0;color:#5c4300;padding:.6rem .8rem;border-radius:.4rem}\
@media (max-width:30rem){main{margin:0;border-radius:0;min-height:100vh;box-sizing:border-box;padding:1.25rem 1rem}}";

/// The CSP of pages without a form.
const CSP_NO_FORM: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; \
frame-ancestors 'none'; base-uri 'none'";

/// Adds the headers every page carries, with this Content-Security-Policy.
fn secure<'b>(builder: &'b mut HttpResponseBuilder, csp: &str) -> &'b mut HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// The login page's CSP. Browsers apply `form-action` to the redirects that follow a form
/// submission too, so the client's redirect URI origin is allowed next to `'self'`. A
/// redirect URI whose origin a CSP source cannot name (an IPv6 literal, a private-use
/// scheme, a host with characters outside letters, digits, `-` and `.`, which could also
/// smuggle directives into the header) leaves `form-action` out rather than break the flow.
fn login_csp(redirect_uri: &str) -> String {
    let target = url::Url::parse(redirect_uri).ok().and_then(|u| {
        let nameable = matches!(u.scheme(), "http" | "https")
            && match u.host() {
                Some(url::Host::Domain(d)) => d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
                Some(url::Host::Ipv4(_)) => true,
                _ => false,
            };
        nameable.then(|| u.origin().ascii_serialization())
    });
    let form_action = target
        .map(|origin| format!("form-action 'self' {origin}; "))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; {form_action}frame-ancestors 'none'; base-uri 'none'"
    )
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
    secure(&mut HttpResponse::build(status), CSP_NO_FORM)
        .body(document("Authorization failed", &body))
}

/// Whether `v` has the shape of the cookie and CSRF values this server issues (256 random
/// bits or a 256-bit MAC, base64url: 43 characters of `[A-Za-z0-9_-]`). Anything else is never echoed into a page
/// or a `Set-Cookie` header: a control character there made the response unbuildable (a
/// 500; found by the `login_form` fuzz target).
pub fn is_csrf_token(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
    let redirect = url::Url::parse(&request.redirect_uri).ok();
    let destination = destination(redirect.as_ref());
    // A client known only by its metadata document: say where that document lives (draft
    // §6.4), and when the code goes to this computer, that any local program could have
    // started the request in its name (MCP 2025-11-25, "Localhost Redirect URI Risks").
    let identity = match client_document::document_host(&request.client) {
        None => String::new(),
        Some(host) => {
            let mut html = format!(
                "<p class=\"muted\">This application is identified by a document published at <strong>{}</strong>; this server has no other registration for it.</p>",
                text(&host)
            );
            if is_loopback_host(redirect.as_ref().and_then(|u| u.host())) {
                html.push_str(
                    "<p class=\"notice\">The approval goes to a program on this computer (localhost), which any program here could claim to be. Approve only if you started this sign-in yourself, from this application.</p>",
                );
            }
            html
        }
    };
    let home_page = home_page_host(&request.client)
        .map(|host| {
            format!(
                "<p class=\"muted\">Home page given by the application: <strong>{}</strong> (not verified by this server).</p>",
                text(&host)
            )
        })
        .unwrap_or_default();
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| {
            // Not a permission at the MCP server: the person should know what it means.
            let note = if s == OFFLINE_ACCESS {
                " (stay connected: the application may renew its access without asking again)"
            } else {
                ""
            };
            format!("<li><code>{}</code>{note}</li>", text(s))
        })
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
    // The error is announced (role=alert), named in the title and tied to the fields it is
    // about (aria-describedby), so screen-reader users hear why the form came back.
    let error_html = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"form-error\" role=\"alert\">{}</p>",
                text(e)
            )
        })
        .unwrap_or_default();
    let credentials = match signed_in {
        Some(user) => {
            // The same request again with prompt=login shows the password form.
            let mut again = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in params.pairs() {
                if name != "prompt" && CARRIED_PARAMS.contains(&name.as_str()) {
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
        None => {
            // After a failed attempt the username typed is kept (never the password), and the
            // cursor waits in the password field.
            let username = error.and(params.get("username")).filter(|u| !u.is_empty());
            let (username_focus, password_focus) = if username.is_some() {
                ("", " autofocus")
            } else {
                (" autofocus", "")
            };
            let invalid = match (error, username) {
                (Some(_), Some(_)) => " aria-invalid=\"true\" aria-describedby=\"form-error\"",
                (Some(_), None) => " aria-describedby=\"form-error\"",
                (None, _) => "",
            };
            format!(
                "<label for=\"username\">Username</label>\
<input type=\"text\" id=\"username\" name=\"username\" value=\"{value}\" autocomplete=\"username\" \
autocapitalize=\"none\" spellcheck=\"false\" required{username_focus}{invalid}>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" \
required{password_focus}{invalid}>",
                value = attr(username.unwrap_or_default()),
            )
        }
    };
    let (heading, title) = if signed_in.is_some() {
        ("Authorize", format!("Authorize {client_name}"))
    } else {
        (
            "Sign in to authorize",
            format!("Sign in to authorize {client_name}"),
        )
    };
    let title = if error.is_some() {
        format!("Error: {title}")
    } else {
        title
    };
    let body = format!(
        "<h1>{heading} <span>{name}</span></h1>{error_html}\
<p><strong>{name}</strong> wants access to your account with these scopes:</p><ul>{scopes}</ul>\
{destination}{home_page}{identity}\
<form method=\"post\" action=\"/authorize/decision\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{hidden}{credentials}\
<div class=\"actions\"><button class=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
<button class=\"deny\" type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button></div></form>",
        name = text(client_name),
        csrf = attr(csrf),
    );
    secure(
        &mut HttpResponse::build(status),
        &login_csp(&request.redirect_uri),
    )
    .cookie(cookie)
    .body(document(&title, &body))
}

/// Where the code goes, as a paragraph: the redirect URI's host, or for a private-use
/// scheme (RFC 8252 §7.1) the application on this computer that handles that scheme, with
/// a warning: any application can register a scheme (RFC 8252 §8.1), so only the person
/// who started the sign-in knows whether it is the one they meant.
fn destination(redirect: Option<&url::Url>) -> String {
    match redirect {
        Some(u) if is_private_use(u) => {
            let scheme = u.scheme();
            let name = match u.host_str() {
                Some(host) if !host.is_empty() => format!("{scheme}://{host}"),
                _ => format!("{scheme}:"),
            };
            format!(
                "<p class=\"muted\">After you approve, the approval goes to the application on this computer that opens <strong>{}</strong> links (<code>{}</code>).</p>\
<p class=\"notice\">Any application on this computer can register to open <code>{}:</code> links. Approve only if you started this sign-in yourself, from this application.</p>",
                text(scheme),
                text(&name),
                text(scheme),
            )
        }
        _ => format!(
            "<p class=\"muted\">After you approve, you will be sent to <strong>{}</strong>.</p>",
            text(redirect.and_then(|u| u.host_str()).unwrap_or_default())
        ),
    }
}

/// The host of the client's `client_uri` (RFC 7591 §2 home page), when it is an http(s)
/// URL: shown as text, never fetched or linked; nor is `logo_uri` ever loaded (the page
/// loads nothing from elsewhere, and a remote image would tell its host who is signing in).
fn home_page_host(client: &Client) -> Option<String> {
    let uri = client.extra.get("client_uri")?.as_str()?;
    let url = url::Url::parse(uri).ok()?;
    matches!(url.scheme(), "https" | "http")
        .then(|| url.host_str().map(str::to_owned))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_names_the_application_of_a_private_use_scheme() {
        let parse = |s: &str| url::Url::parse(s).unwrap();
        let cursor = destination(Some(&parse("cursor://anysphere.cursor-mcp/oauth/callback")));
        assert!(
            cursor.contains("opens <strong>cursor</strong> links"),
            "{cursor}"
        );
        assert!(
            cursor.contains("<code>cursor://anysphere.cursor-mcp</code>"),
            "{cursor}"
        );
        assert!(cursor.contains("class=\"notice\""), "{cursor}");
        let app = destination(Some(&parse("com.example.app:/oauth2redirect")));
        assert!(app.contains("<code>com.example.app:</code>"), "{app}");
        let web = destination(Some(&parse("https://claude.ai/api/mcp/auth_callback")));
        assert!(web.contains("sent to <strong>claude.ai</strong>") && !web.contains("notice"));
    }

    #[test]
    fn the_home_page_host_comes_from_an_http_client_uri_only() {
        let mut client: Client = serde_json::from_value(serde_json::json!({
            "client_id": "c", "secret_digest": null, "auth_method": "none", "client_name": null,
            "redirect_uris": [], "grant_types": [], "scopes": [], "issued_at": 0
        }))
        .unwrap();
        assert_eq!(home_page_host(&client), None);
        client
            .extra
            .insert("client_uri".into(), "https://claude.ai".into());
        assert_eq!(home_page_host(&client).as_deref(), Some("claude.ai"));
        client
            .extra
            .insert("client_uri".into(), "javascript:alert(1)".into());
        assert_eq!(home_page_host(&client), None);
    }

    #[test]
    fn only_well_formed_csrf_tokens_are_accepted() {
        assert!(is_csrf_token(&crate::domain::secrets::random_token()));
        // The fuzz finding: a control character in the echoed CSRF value.
        let mut bad = "a".repeat(42);
        bad.push('\u{1d}');
        for v in [
            bad.as_str(),
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert!(!is_csrf_token(v), "{v:?}");
        }
    }

    fn form_action(redirect_uri: &str) -> Option<String> {
        login_csp(redirect_uri)
            .split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix("form-action ").map(str::to_owned))
    }

    #[test]
    fn form_action_names_the_redirect_origin() {
        assert_eq!(
            form_action("http://localhost:8765/callback").as_deref(),
            Some("'self' http://localhost:8765")
        );
        assert_eq!(
            form_action("http://127.0.0.1:45678/cb?x=1").as_deref(),
            Some("'self' http://127.0.0.1:45678")
        );
        // The default port is implied, as in the origin.
        assert_eq!(
            form_action("https://App.Example:443/oauth/callback").as_deref(),
            Some("'self' https://app.example")
        );
    }

    #[test]
    fn unnameable_redirect_origins_leave_form_action_out() {
        for uri in [
            "http://[::1]:8765/callback",
            "com.example.app:/callback",
            "https://a;script-src-elem%20*.example/cb",
            "https://a,b.example/cb",
            "https://a'b.example/cb",
            "not a url",
        ] {
            let csp = login_csp(uri);
            assert_eq!(form_action(uri), None, "{uri}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
            assert_eq!(csp.matches(';').count(), 3, "{uri}: {csp}");
        }
    }
}
