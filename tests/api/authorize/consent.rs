//! The login and consent page and its decision: the hardened page (`GET` and `POST
//! /authorize`), escaping of request values, approval (`code`, `state`, `iss`) and denial
//! redirects, unique codes, a narrower scope, and a tampered redirect URI in the form.

use super::*;

#[actix_web::test]
async fn valid_request_renders_a_hardened_consent_page() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    // The user must see who asks, where the answer goes, and for what.
    assert!(reply.body.contains(DEMO_CLIENT_NAME), "client name missing");
    assert!(reply.body.contains("localhost"), "redirect host missing");
    assert!(reply.body.contains("mcp:read") && reply.body.contains("mcp:write"));
    // Clickjacking and leakage protections (RFC 9700 §4.16, §4.2.4).
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    let csp = reply.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "CSP: {csp:?}");
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    let cache_control = reply.header("cache-control").unwrap_or_default();
    assert!(cache_control.contains("no-store"), "{cache_control:?}");
    // Double-submit CSRF cookie, not readable by scripts, not sent on cross-site POSTs.
    let csrf_cookie = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("oauth_mcp_csrf="))
        .unwrap_or_else(|| panic!("no oauth_mcp_csrf cookie in {:?}", reply.headers))
        .to_ascii_lowercase();
    assert!(csrf_cookie.contains("httponly"), "{csrf_cookie}");
    assert!(csrf_cookie.contains("samesite=lax"), "{csrf_cookie}");
    // The page posts somewhere: there is a form with a password field.
    let inputs = find_tags(&reply.body, "input");
    assert!(
        inputs.iter().any(|tag| tag
            .iter()
            .any(|(name, value)| name == "type" && value == "password")),
        "no password field on the login page"
    );
}

#[actix_web::test]
async fn post_authorize_renders_the_same_page() {
    // OAuth 2.1 §3.1: the authorization endpoint MAY support POST with a form body.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    let reply = Reply::read(app.post_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains(DEMO_CLIENT_NAME));
}

#[actix_web::test]
async fn request_values_are_html_escaped() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let state = "\"><script>alert(1)</script>";
    let params = demo_authorize_params(&challenge, state);

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        !reply.body.contains("<script>alert(1)</script>"),
        "state was reflected unescaped"
    );
}

#[actix_web::test]
async fn approval_redirects_with_code_state_and_iss() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    // 303, not 307: the browser must not re-POST the password to the client (RFC 9700 §4.12).
    assert_eq!(reply.status, 303, "{}", reply.body);
    let location = reply.location();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{DEMO_REDIRECT_URI}?")),
        "{location}"
    );
    let query = reply.location_query();
    assert_eq!(query.get("state").map(String::as_str), Some(STATE));
    assert_eq!(query.get("iss").map(String::as_str), Some(app.issuer()));
    assert!(!query.contains_key("error"), "{location}");
    // >= 128 bits (RFC 6749 §10.10): even at 6 bits per character that is >= 22 characters.
    let code = query.get("code").cloned().unwrap_or_default();
    assert!(
        code.len() >= 22,
        "code {code:?} looks too short to carry 128 bits"
    );
}

#[actix_web::test]
async fn approval_redirects_to_the_loopback_port_actually_requested() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let redirect_uri = "http://127.0.0.1:45678/callback";
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "redirect_uri", redirect_uri);

    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(
        reply
            .location()
            .as_str()
            .starts_with(&format!("{redirect_uri}?")),
        "{}",
        reply.location()
    );
    assert!(reply.location_query().contains_key("code"));
}

#[actix_web::test]
async fn codes_are_unique() {
    let app = spawn_app().await;

    let (first, _, _) = app.obtain_code().await;
    let (second, _, _) = app.obtain_code().await;

    assert_ne!(first, second);
}

#[actix_web::test]
async fn denial_redirects_with_access_denied() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, false)
            .await,
    )
    .await;

    assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "access_denied", STATE);
}

#[actix_web::test]
async fn tampered_redirect_uri_in_the_form_never_reaches_another_host() {
    // The decision must rely on the validated request, not on whatever the form posts back.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let page = app
        .consent_page(&demo_authorize_params(&challenge, STATE))
        .await;

    let reply = Reply::read(
        app.submit_consent(
            &page,
            page.cookie.as_deref(),
            &[
                ("username", DEMO_USER),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
                ("redirect_uri", "https://evil.example/callback"),
            ],
        )
        .await,
    )
    .await;

    let location = reply.header("location").unwrap_or_default();
    assert!(
        !location.contains("evil.example"),
        "decision redirected to the tampered URI: {location}"
    );
}

#[actix_web::test]
async fn narrower_scope_request_is_granted_as_requested() {
    let app = spawn_app().await;

    let (code, verifier) = app
        .obtain_code_for(DEMO_CLIENT_ID, DEMO_REDIRECT_URI, "mcp:read")
        .await;
    let reply = app.exchange_demo_code(&code, &verifier).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "mcp:read");
}
