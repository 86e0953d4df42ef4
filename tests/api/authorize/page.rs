//! The page in a browser, as far as HTTP can check it: labels, `autocomplete` and the viewport
//! for people, password managers and phones; the CSP (no script, no framing, no foreign form
//! target); IPv6 loopback; no form on the error page; the username kept and escaped after a
//! wrong password. Layout, focus outlines and the keyboard flow need a browser:
//! `tools/browser-check.sh`.

use super::*;

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
