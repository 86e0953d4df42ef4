//! The authorization endpoint and the login/consent decision (OAuth 2.1 §4.1, RFC 9207,
//! RFC 8252 §7.3, RFC 8707): what is shown locally, what is redirected, and how the consent
//! page protects itself (CSRF, clickjacking, escaping, login throttling).

use crate::helpers::{
    assert_error_page, assert_redirect_error, attr, demo_authorize_params, find_tags,
    hidden_inputs, pkce_pair, remove_param, set_param, spawn_app, spawn_app_with, ConsentPage,
    Reply, DEMO_CLIENT_ID, DEMO_CLIENT_NAME, DEMO_PASSWORD, DEMO_REDIRECT_URI, DEMO_USER,
};

const STATE: &str = "af0ifjsldkj";

// ----- errors shown locally: client or redirect URI not trusted yet ----------------------------

#[actix_web::test]
async fn unknown_client_gets_an_error_page_not_a_redirect() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "client_id", "no_such_client");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn missing_client_id_gets_an_error_page() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    remove_param(&mut params, "client_id");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn unregistered_redirect_uris_get_an_error_page() {
    // Exact matching (OAuth 2.1 §2.3.1); only the loopback port is relaxed.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    for redirect_uri in [
        "https://evil.example/callback",
        "http://127.0.0.1:8765/other",
        "http://localhost:8765/callback/",
        "http://localhost:8765/callback?x=1",
    ] {
        let mut params = demo_authorize_params(&challenge, STATE);
        set_param(&mut params, "redirect_uri", redirect_uri);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_error_page(&reply);
    }
}

#[actix_web::test]
async fn omitted_redirect_uri_is_an_error_when_two_are_registered() {
    // OAuth 2.1 §2.3.2: redirect_uri may only be omitted when exactly one is registered;
    // demo_client has two.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    remove_param(&mut params, "redirect_uri");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn duplicated_client_id_or_redirect_uri_gets_an_error_page() {
    // OAuth 2.1 §3.1: parameters must not repeat; for these two we cannot even trust
    // where to redirect, so the error stays local.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    for duplicated in [
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", DEMO_REDIRECT_URI),
    ] {
        let mut params = demo_authorize_params(&challenge, STATE);
        params.push(duplicated);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_error_page(&reply);
    }
}

#[actix_web::test]
async fn loopback_redirect_accepts_any_port() {
    // RFC 8252 §7.3: native apps listen on an ephemeral port, so only the port may differ.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(
        &mut params,
        "redirect_uri",
        "http://127.0.0.1:45678/callback",
    );

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

// ----- errors redirected to the (now trusted) client ------------------------------------------

#[actix_web::test]
async fn response_type_token_is_unsupported() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "response_type", "token");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(
        &app,
        &reply,
        DEMO_REDIRECT_URI,
        "unsupported_response_type",
        STATE,
    );
}

#[actix_web::test]
async fn missing_code_challenge_is_rejected() {
    // PKCE is mandatory for every client (OAuth 2.1 §4.1.1, MCP authorization).
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    remove_param(&mut params, "code_challenge");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
}

#[actix_web::test]
async fn plain_or_missing_challenge_method_is_rejected() {
    // Only S256 is supported; an absent method means `plain` (RFC 7636 §4.3), which we refuse.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    let mut plain = demo_authorize_params(&challenge, STATE);
    set_param(&mut plain, "code_challenge_method", "plain");
    let mut missing = demo_authorize_params(&challenge, STATE);
    remove_param(&mut missing, "code_challenge_method");

    for params in [plain, missing] {
        let reply = Reply::read(app.get_authorize(&params).await).await;
        assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
    }
}

#[actix_web::test]
async fn malformed_code_challenge_is_rejected() {
    // code-challenge = 43*128 unreserved characters (RFC 7636 §4.2).
    let app = spawn_app().await;
    let too_short = "a".repeat(42);
    let too_long = "a".repeat(129);
    let bad_chars = "!".repeat(43);
    let standard_base64 = format!("{}+/", "a".repeat(41));

    for challenge in [&too_short, &too_long, &bad_chars, &standard_base64] {
        let params = demo_authorize_params(challenge, STATE);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
    }
}

#[actix_web::test]
async fn unknown_scope_is_invalid_scope() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "scope", "mcp:read mcp:admin");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_scope", STATE);
}

#[actix_web::test]
async fn foreign_resource_is_invalid_target() {
    // RFC 8707: we only issue tokens for our own MCP endpoint.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let bare_issuer = app.issuer().to_owned();

    for resource in ["https://other.example/mcp", bare_issuer.as_str()] {
        let mut params = demo_authorize_params(&challenge, STATE);
        set_param(&mut params, "resource", resource);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_target", STATE);
    }
}

#[actix_web::test]
async fn our_own_resource_is_accepted() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let resource = app.resource();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "resource", &resource);

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn duplicated_scope_is_invalid_request() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    params.push(("scope", "mcp:read"));

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(&app, &reply, DEMO_REDIRECT_URI, "invalid_request", STATE);
}

#[actix_web::test]
async fn state_is_echoed_exactly() {
    // The client compares state byte for byte; reserved and non-ASCII characters must survive.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let state = "a b&c=d/é+%20?#";
    let mut params = demo_authorize_params(&challenge, state);
    set_param(&mut params, "response_type", "token");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_redirect_error(
        &app,
        &reply,
        DEMO_REDIRECT_URI,
        "unsupported_response_type",
        state,
    );
}

// ----- the login + consent page ---------------------------------------------------------------

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
async fn decision_without_csrf_cookie_is_rejected() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let page = app
        .consent_page(&demo_authorize_params(&challenge, STATE))
        .await;

    let reply = Reply::read(
        app.submit_consent(
            &page,
            None,
            &[
                ("username", DEMO_USER),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
            ],
        )
        .await,
    )
    .await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn decision_with_another_pages_csrf_cookie_is_rejected() {
    // The cookie must match the token embedded in *this* form, not just be present.
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);
    let page = app.consent_page(&params).await;
    let other_page = app.consent_page(&params).await;
    assert_ne!(
        page.cookie, other_page.cookie,
        "each page load gets a fresh CSRF cookie"
    );

    let reply = Reply::read(
        app.submit_consent(
            &page,
            other_page.cookie.as_deref(),
            &[
                ("username", DEMO_USER),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
            ],
        )
        .await,
    )
    .await;

    assert_error_page(&reply);
}

#[actix_web::test]
async fn wrong_password_shows_an_error_and_issues_no_code() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    for (username, password) in [(DEMO_USER, "not-the-password"), ("nobody", DEMO_PASSWORD)] {
        let reply = Reply::read(
            app.login_and_consent(&params, username, password, true)
                .await,
        )
        .await;

        assert_error_page(&reply);
    }
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
async fn repeated_wrong_passwords_lock_the_user_out() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    // login_max_failures_per_user defaults to 5.
    for attempt in 1..=5 {
        let reply = Reply::read(
            app.login_and_consent(&params, DEMO_USER, "wrong", true)
                .await,
        )
        .await;
        assert_eq!(reply.status, 400, "attempt {attempt}: {}", reply.body);
    }
    // Locked out: even the right password is refused, without a code.
    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(
        reply.header("retry-after").is_some(),
        "429 without Retry-After"
    );
    assert!(reply.header("location").is_none());
}

#[actix_web::test]
async fn lockout_ends_after_the_lockout_period() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);
    for _ in 0..5 {
        app.login_and_consent(&params, DEMO_USER, "wrong", true)
            .await;
    }

    // login_lockout defaults to 15 minutes; the server reads time from the injected clock.
    app.clock
        .advance(std::time::Duration::from_secs(15 * 60 + 1));
    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(reply.location_query().contains_key("code"));
}

#[actix_web::test]
async fn failures_across_usernames_lock_out_the_address() {
    // Password spraying: many usernames from one address trips the per-address limit.
    let app = spawn_app_with(|config| config.login_max_failures_per_address = 3).await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);

    for username in ["alice", "bob", "carol"] {
        let reply = Reply::read(
            app.login_and_consent(&params, username, "wrong", true)
                .await,
        )
        .await;
        assert_eq!(reply.status, 400, "{username}: {}", reply.body);
    }
    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.header("retry-after").is_some());
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

// ----- the page in a browser: what can be checked over HTTP ----------------------------------
// (Layout, focus outlines and the keyboard flow need a browser: tools/browser-check.sh.)

/// The `<input>` with this `id`, as its attributes.
fn input_by_id(body: &str, id: &str) -> Vec<(String, String)> {
    find_tags(body, "input")
        .into_iter()
        .find(|tag| attr(tag, "id") == Some(id))
        .unwrap_or_else(|| panic!("no <input id={id:?}> in {body}"))
}

/// The decoded text of `<title>`.
fn title(body: &str) -> String {
    let start = body.find("<title>").expect("a <title>") + "<title>".len();
    let end = start + body[start..].find("</title>").expect("</title>");
    html_escape::decode_html_entities(&body[start..end]).into_owned()
}

/// The CSP as directive name -> sources.
fn csp_directives(reply: &Reply) -> std::collections::HashMap<String, String> {
    reply
        .header("content-security-policy")
        .unwrap_or_default()
        .split(';')
        .filter_map(|d| d.trim().split_once(' '))
        .map(|(name, sources)| (name.to_owned(), sources.to_owned()))
        .collect()
}

#[actix_web::test]
async fn login_page_is_labelled_for_people_password_managers_and_phones() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    let reply = Reply::read(
        app.get_authorize(&demo_authorize_params(&challenge, STATE))
            .await,
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let html = find_tags(&reply.body, "html");
    assert_eq!(html.first().and_then(|tag| attr(tag, "lang")), Some("en"));
    let viewport = find_tags(&reply.body, "meta")
        .into_iter()
        .find(|tag| attr(tag, "name") == Some("viewport"))
        .expect("a viewport meta tag, or phones render the page zoomed out");
    assert!(
        attr(&viewport, "content").is_some_and(|c| c.contains("width=device-width")),
        "{viewport:?}"
    );
    assert_eq!(
        title(&reply.body),
        format!("Sign in to authorize {DEMO_CLIENT_NAME}")
    );
    // Every visible field has a <label for> and says what it holds.
    let labels: Vec<String> = find_tags(&reply.body, "label")
        .iter()
        .filter_map(|tag| attr(tag, "for").map(str::to_owned))
        .collect();
    let visible: Vec<_> = find_tags(&reply.body, "input")
        .into_iter()
        .filter(|tag| attr(tag, "type") != Some("hidden"))
        .collect();
    assert_eq!(visible.len(), 2, "{visible:?}");
    for tag in &visible {
        let id = attr(tag, "id").unwrap_or_default();
        assert!(labels.iter().any(|l| l == id), "no label for {tag:?}");
    }
    for (id, kind, autocomplete) in [
        ("username", "text", "username"),
        ("password", "password", "current-password"),
    ] {
        let input = input_by_id(&reply.body, id);
        assert_eq!(attr(&input, "name"), Some(id));
        assert_eq!(attr(&input, "type"), Some(kind));
        assert_eq!(attr(&input, "autocomplete"), Some(autocomplete));
        assert!(attr(&input, "required").is_some(), "{input:?}");
    }
    assert!(attr(&input_by_id(&reply.body, "username"), "autofocus").is_some());
    assert!(attr(&input_by_id(&reply.body, "password"), "value").is_none());
    // Deny needs no credentials: the browser must not block it on the required fields.
    let deny = find_tags(&reply.body, "button")
        .into_iter()
        .find(|tag| attr(tag, "value") == Some("deny"))
        .expect("a Deny button");
    assert!(attr(&deny, "formnovalidate").is_some(), "{deny:?}");
    // Self-contained: no script and nothing fetched from anywhere.
    for tag in ["script", "link", "img", "iframe", "object", "embed"] {
        assert!(
            find_tags(&reply.body, tag).is_empty(),
            "<{tag}> on the page"
        );
    }
}

#[actix_web::test]
async fn login_page_csp_allows_no_script_no_framing_and_no_foreign_form_target() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();

    for (redirect_uri, origin) in [
        (DEMO_REDIRECT_URI, "http://localhost:8765"),
        // The loopback port actually requested (RFC 8252 §7.3) is where the 303 goes.
        ("http://127.0.0.1:45678/callback", "http://127.0.0.1:45678"),
    ] {
        let mut params = demo_authorize_params(&challenge, STATE);
        set_param(&mut params, "redirect_uri", redirect_uri);

        let reply = Reply::read(app.get_authorize(&params).await).await;

        assert_eq!(reply.status, 200, "{}", reply.body);
        let csp = csp_directives(&reply);
        assert_eq!(csp.get("default-src").map(String::as_str), Some("'none'"));
        assert!(!csp.contains_key("script-src"), "{csp:?}");
        assert_eq!(
            csp.get("frame-ancestors").map(String::as_str),
            Some("'none'")
        );
        assert_eq!(csp.get("base-uri").map(String::as_str), Some("'none'"));
        // Browsers check form-action on the redirect after the POST as well, so the
        // client's origin must be listed, and nothing else.
        assert_eq!(
            csp.get("form-action").cloned(),
            Some(format!("'self' {origin}"))
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
}

#[actix_web::test]
async fn ipv6_loopback_redirect_uri_still_gets_a_working_page() {
    // `[::1]` cannot be written as a CSP source: the page then leaves form-action out
    // instead of blocking its own redirect.
    let app = spawn_app().await;
    let redirect_uri = "http://[::1]:9999/callback";
    let client_id = app.register_public(&[redirect_uri]).await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "client_id", &client_id);
    set_param(&mut params, "redirect_uri", redirect_uri);

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let csp = csp_directives(&reply);
    assert!(!csp.contains_key("form-action"), "{csp:?}");
    assert_eq!(
        csp.get("frame-ancestors").map(String::as_str),
        Some("'none'")
    );
}

#[actix_web::test]
async fn error_page_allows_no_form_at_all() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);
    set_param(&mut params, "client_id", "no_such_client");

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_error_page(&reply);
    let csp = csp_directives(&reply);
    assert_eq!(csp.get("form-action").map(String::as_str), Some("'none'"));
    assert_eq!(
        csp.get("frame-ancestors").map(String::as_str),
        Some("'none'")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(title(&reply.body), "Authorization failed");
}

#[actix_web::test]
async fn wrong_password_keeps_the_username_explains_and_the_form_still_works() {
    let app = spawn_app().await;
    let (verifier, challenge) = pkce_pair();
    let page = app
        .consent_page(&demo_authorize_params(&challenge, STATE))
        .await;

    let reply = Reply::read(
        app.submit_consent(
            &page,
            page.cookie.as_deref(),
            &[
                ("username", DEMO_USER),
                ("password", "not-the-password"),
                ("action", "approve"),
            ],
        )
        .await,
    )
    .await;

    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.header("location").is_none());
    assert_eq!(
        title(&reply.body),
        format!("Error: Sign in to authorize {DEMO_CLIENT_NAME}")
    );
    // The message is announced and the fields point at it.
    let alert = find_tags(&reply.body, "p")
        .into_iter()
        .find(|tag| attr(tag, "role") == Some("alert"))
        .expect("an error with role=alert");
    assert_eq!(attr(&alert, "id"), Some("form-error"));
    assert!(reply
        .body
        .contains("The username or password is incorrect."));
    // The username stays, the password never comes back, and the cursor waits in it.
    let username = input_by_id(&reply.body, "username");
    let password = input_by_id(&reply.body, "password");
    assert_eq!(attr(&username, "value"), Some(DEMO_USER));
    assert!(attr(&username, "autofocus").is_none());
    assert!(attr(&password, "autofocus").is_some());
    assert!(attr(&password, "value").is_none());
    assert!(!reply.body.contains("not-the-password"));
    for input in [&username, &password] {
        assert_eq!(attr(input, "aria-invalid"), Some("true"));
        assert_eq!(attr(input, "aria-describedby"), Some("form-error"));
    }
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        csp_directives(&reply)
            .get("form-action")
            .map(String::as_str),
        Some("'self' http://localhost:8765")
    );

    // The page that came back is a working form: with the username it shows (which a
    // browser submits as is) and the right password, the user is signed in.
    let kept_username = attr(&username, "value").unwrap_or_default().to_owned();
    let retry = ConsentPage {
        hidden: hidden_inputs(&reply.body),
        cookie: page.cookie.clone(),
        action_url: page.action_url.clone(),
        reply,
    };
    let approved = Reply::read(
        app.submit_consent(
            &retry,
            retry.cookie.as_deref(),
            &[
                ("username", kept_username.as_str()),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let query = approved.location_query();
    assert_eq!(query.get("state").map(String::as_str), Some(STATE));
    let code = query.get("code").cloned().unwrap_or_default();
    let tokens = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
}

#[actix_web::test]
async fn username_is_prefilled_only_after_an_attempt_and_escaped() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let hostile = "\"><script>alert(1)</script>";
    // A username in the authorization request itself is ignored.
    let mut params = demo_authorize_params(&challenge, STATE);
    params.push(("username", "admin"));
    let first = Reply::read(app.get_authorize(&params).await).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        attr(&input_by_id(&first.body, "username"), "value").unwrap_or_default(),
        ""
    );

    let params = demo_authorize_params(&challenge, STATE);
    let reply = Reply::read(app.login_and_consent(&params, hostile, "x", true).await).await;

    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        !reply.body.contains("<script>alert(1)</script>"),
        "username reflected unescaped"
    );
    assert_eq!(
        attr(&input_by_id(&reply.body, "username"), "value"),
        Some(hostile)
    );
}
