//! The login and consent form against other sites and against guessing (issue 11, item 3):
//! CSRF values bound to the browser with the server key, fetch-metadata and `Origin`
//! checks, `prompt=login` on the way back, the login throttle under concurrency, the
//! password-check bound, and client addresses behind trusted proxies.

use reqwest::header;
use serde_json::json;

use crate::helpers::*;

const STATE: &str = "forms-state";

/// Posts `page`'s form (hidden fields, with `fields` replacing or adding) with `cookie`
/// and extra request `headers`.
async fn post(
    app: &TestApp,
    page: &ConsentPage,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Reply {
    let mut body: Vec<(String, String)> = page
        .hidden
        .iter()
        .filter(|(name, _)| !fields.iter().any(|(field, _)| field == name))
        .cloned()
        .collect();
    body.extend(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut request = app.client.post(&page.action_url).form(&body);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Reply::read(request.send().await.unwrap()).await
}

const APPROVE: &[(&str, &str)] = &[
    ("username", DEMO_USER),
    ("password", DEMO_PASSWORD),
    ("action", "approve"),
];

async fn demo_page(app: &TestApp) -> ConsentPage {
    let (_, challenge) = pkce_pair();
    let page = app
        .consent_page(&demo_authorize_params(&challenge, STATE))
        .await;
    assert_eq!(page.reply.status, 200, "{}", page.reply.body);
    page
}

/// A password post with a forged value: refused with the form-expired page, no code.
fn assert_refused_form(reply: &Reply) {
    assert_error_page(reply);
    assert!(
        reply.body.contains("expired or is invalid"),
        "{}",
        reply.body
    );
}

fn csrf_field(page: &ConsentPage) -> String {
    page.hidden
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, v)| v.clone())
        .unwrap()
}

#[actix_web::test]
async fn a_csrf_cookie_and_field_of_the_attackers_choosing_are_refused() {
    // A page on another localhost port can set our cookie (cookies are not port-isolated)
    // and put the same value in the field: the old double-submit check accepted that.
    let app = spawn_app().await;
    let page = demo_page(&app).await;
    let chosen = "A".repeat(43);
    let reply = post(
        &app,
        &page,
        Some(&format!("oauth_mcp_csrf={chosen}")),
        &[APPROVE, &[("csrf", chosen.as_str())]].concat(),
        &[],
    )
    .await;
    assert_refused_form(&reply);
    // The server's own value is not the cookie: the field cannot be read off the cookie.
    assert!(!page.cookie.as_deref().unwrap().contains(&csrf_field(&page)));
}

#[actix_web::test]
async fn a_csrf_value_from_another_browser_is_refused() {
    let app = spawn_app().await;
    let victim = demo_page(&app).await;
    let attacker = demo_page(&app).await;
    // The attacker's own valid pair works for the attacker...
    let own = post(&app, &attacker, attacker.cookie.as_deref(), APPROVE, &[]).await;
    assert_eq!(own.status, 303, "{}", own.body);
    // ...but his value does not go with the victim's cookie, nor hers with his.
    let (attacker_csrf, victim_csrf) = (csrf_field(&attacker), csrf_field(&victim));
    let fields = [APPROVE, &[("csrf", attacker_csrf.as_str())]].concat();
    let reply = post(&app, &victim, victim.cookie.as_deref(), &fields, &[]).await;
    assert_refused_form(&reply);
    let fields = [APPROVE, &[("csrf", victim_csrf.as_str())]].concat();
    let reply = post(&app, &victim, attacker.cookie.as_deref(), &fields, &[]).await;
    assert_refused_form(&reply);
}

/// Signs in with the password; answers the `oauth_mcp_session=...` cookie pair.
async fn sign_in(app: &TestApp) -> String {
    let page = demo_page(app).await;
    let resp = app
        .submit_consent(&page, page.cookie.as_deref(), APPROVE)
        .await;
    assert_eq!(resp.status(), 303);
    cookie_pairs(resp.headers())
        .into_iter()
        .find(|c| c.starts_with("oauth_mcp_session="))
        .expect("a sign-in session cookie")
}

#[actix_web::test]
async fn consent_without_a_password_needs_a_value_bound_to_the_sign_in_session() {
    // Zero-click consent: the victim is signed in; a page on another port posts an
    // approval without a password, with a CSRF pair it obtained for its own cookie.
    let app = spawn_app().await;
    let session = sign_in(&app).await;
    let attacker = demo_page(&app).await;
    let attacker_pre_login = attacker.cookie.clone().unwrap();
    let reply = post(
        &app,
        &attacker,
        Some(&format!("{session}; {attacker_pre_login}")),
        &[("action", "approve")],
        &[],
    )
    .await;
    assert_refused_form(&reply);

    // The victim's own signed-in page carries a value that works.
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, STATE);
    let resp = app
        .client
        .get(app.authorize_url(&params))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    let pre_login = cookie_pairs(resp.headers()).join("; ");
    let mut page = app.consent_page(&params).await;
    page.reply = Reply::read(resp).await;
    page.hidden = hidden_inputs(&page.reply.body);
    assert!(
        page.reply.body.contains("Signed in as"),
        "{}",
        page.reply.body
    );
    let cookies = format!("{session}; {pre_login}");
    let reply = post(&app, &page, Some(&cookies), &[("action", "approve")], &[]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    // Without the session cookie, that value is nothing.
    let reply = post(&app, &page, Some(&pre_login), &[("action", "deny")], &[]).await;
    assert_refused_form(&reply);
}

#[actix_web::test]
async fn posts_marked_cross_site_or_same_site_are_refused() {
    let app = spawn_app().await;
    let page = demo_page(&app).await;
    for site in ["cross-site", "same-site"] {
        let reply = post(
            &app,
            &page,
            page.cookie.as_deref(),
            APPROVE,
            &[("sec-fetch-site", site)],
        )
        .await;
        assert_eq!(reply.status, 403, "{site}: {}", reply.body);
        assert!(reply.header("location").is_none(), "never a redirect");
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
    }
}

#[actix_web::test]
async fn posts_from_a_foreign_origin_are_refused() {
    let app = spawn_app().await;
    let page = demo_page(&app).await;
    let port = app.port;
    let other = if port == 65_535 { 1 } else { port + 1 };
    for origin in [
        format!("http://localhost:{other}"),
        format!("http://127.0.0.1:{other}"),
        format!("https://127.0.0.1:{port}"),
        "http://evil.example".to_owned(),
    ] {
        let reply = post(
            &app,
            &page,
            page.cookie.as_deref(),
            APPROVE,
            &[("origin", &origin)],
        )
        .await;
        assert_eq!(reply.status, 403, "{origin}: {}", reply.body);
        assert!(reply.header("location").is_none());
    }
}

#[actix_web::test]
async fn our_own_form_posts_pass_from_every_loopback_alias() {
    let app = spawn_app().await;
    let page = demo_page(&app).await;
    let port = app.port;
    let own = [
        // What a browser sends for our page (Referrer-Policy: no-referrer).
        vec![
            ("sec-fetch-site", "same-origin".to_owned()),
            ("origin", "null".to_owned()),
        ],
        // curl, the examples, the load generator.
        vec![],
        vec![("sec-fetch-site", "none".to_owned())],
        vec![("origin", format!("http://localhost:{port}"))],
        vec![("origin", format!("http://127.0.0.1:{port}"))],
        vec![("origin", format!("http://[::1]:{port}"))],
    ];
    for headers in own {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = post(&app, &page, page.cookie.as_deref(), APPROVE, &headers).await;
        assert_eq!(reply.status, 303, "{headers:?}: {}", reply.body);
        assert!(reply.location_query().contains_key("code"));
    }
}

#[actix_web::test]
async fn prompt_login_is_enforced_when_the_form_comes_back() {
    let app = spawn_app().await;
    let session = sign_in(&app).await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, STATE);

    // A signed-in page (no prompt) gives a value bound to the session...
    let resp = app
        .client
        .get(app.authorize_url(&params))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    let pre_login = cookie_pairs(resp.headers()).join("; ");
    let body = Reply::read(resp).await.body;
    let csrf = hidden_inputs(&body)
        .into_iter()
        .find(|(n, _)| n == "csrf")
        .unwrap()
        .1;

    // ...which must not approve a prompt=login request without the password.
    params.push(("prompt", "login"));
    let mut form: Vec<(&str, &str)> = params.clone();
    form.extend([("csrf", csrf.as_str()), ("action", "approve")]);
    let reply = Reply::read(
        app.client
            .post(app.url("/authorize/decision"))
            .header(header::COOKIE, format!("{session}; {pre_login}"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.header("location").is_none());
    assert!(reply.body.contains("type=\"password\""), "{}", reply.body);
    assert!(reply.body.contains("sign in again"), "{}", reply.body);

    // The prompt=login page carries prompt, and its password post works.
    let page = app.consent_page(&params).await;
    assert!(page
        .hidden
        .iter()
        .any(|(n, v)| n == "prompt" && v == "login"));
    let cookies = format!("{session}; {}", page.cookie.as_deref().unwrap());
    let reply = post(&app, &page, Some(&cookies), &[("action", "approve")], &[]).await;
    assert_refused_form(&reply);
    let reply = post(&app, &page, Some(&cookies), APPROVE, &[]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
}

#[actix_web::test]
async fn concurrent_wrong_passwords_never_pass_the_limit() {
    // Room for every post at once, so only the throttle decides.
    let app = spawn_app_with(|c| c.password_hash_concurrency = 64).await;
    let page = demo_page(&app).await;
    let wrong = [
        ("username", DEMO_USER),
        ("password", "wrong"),
        ("action", "approve"),
    ];
    let replies = futures_util::future::join_all(
        (0..16).map(|_| post(&app, &page, page.cookie.as_deref(), &wrong, &[])),
    )
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    let checked = statuses.iter().filter(|s| **s == 400).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    // login_max_failures_per_user is 5: five passwords were checked, no more.
    assert_eq!((checked, throttled), (5, 11), "{statuses:?}");
    assert_eq!(
        sample(&scrape(&app).await, "oauth_mcp_login_failures_total"),
        5.0
    );
    let reply = post(&app, &page, page.cookie.as_deref(), APPROVE, &[]).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
}

#[actix_web::test]
async fn an_unknown_users_lockout_looks_like_a_known_users() {
    let app = spawn_app().await;
    let page = demo_page(&app).await;
    let mut lockouts = Vec::new();
    for user in [DEMO_USER, "no-such-user"] {
        for attempt in 1..=5 {
            let fields = [
                ("username", user),
                ("password", "wrong"),
                ("action", "approve"),
            ];
            let reply = post(&app, &page, page.cookie.as_deref(), &fields, &[]).await;
            assert_eq!(
                reply.status, 400,
                "{user} attempt {attempt}: {}",
                reply.body
            );
        }
        let fields = [("username", user), ("password", "x"), ("action", "approve")];
        lockouts.push(post(&app, &page, page.cookie.as_deref(), &fields, &[]).await);
    }
    let [known, unknown] = &lockouts[..] else {
        unreachable!()
    };
    assert_eq!(known.status, 429, "{}", known.body);
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body);
    for name in ["retry-after", "content-type", "cache-control", "set-cookie"] {
        assert_eq!(known.header(name), unknown.header(name), "{name}");
    }
}

#[actix_web::test]
async fn a_full_password_check_bound_answers_503_with_retry_after() {
    let app = spawn_app_with(|c| c.password_hash_concurrency = 1).await;
    let page = demo_page(&app).await;
    let held = app
        .services()
        .password_checks
        .clone()
        .try_acquire_owned()
        .unwrap();
    let reply = post(&app, &page, page.cookie.as_deref(), APPROVE, &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.header("location").is_none());
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    drop(held);
    let reply = post(&app, &page, page.cookie.as_deref(), APPROVE, &[]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
}

/// A wrong-password post for `user` as if forwarded for `client` (`X-Forwarded-For`).
async fn guess_via(app: &TestApp, page: &ConsentPage, user: &str, client: &str) -> u16 {
    let fields = [
        ("username", user),
        ("password", "wrong"),
        ("action", "approve"),
    ];
    post(
        app,
        page,
        page.cookie.as_deref(),
        &fields,
        &[("x-forwarded-for", client)],
    )
    .await
    .status
}

#[actix_web::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(|c| c.login_max_failures_per_address = 2).await;
    let page = demo_page(&app).await;
    assert_eq!(guess_via(&app, &page, "u1", "198.51.100.1").await, 400);
    assert_eq!(guess_via(&app, &page, "u2", "198.51.100.1").await, 400);
    // Another claimed address changes nothing: the peer is locked out.
    assert_eq!(guess_via(&app, &page, "u3", "198.51.100.2").await, 429);
    let forwarded = [("forwarded", "for=198.51.100.3")];
    let fields = [("username", "u4"), ("password", "x"), ("action", "approve")];
    let reply = post(&app, &page, page.cookie.as_deref(), &fields, &forwarded).await;
    assert_eq!(reply.status, 429);
}

#[actix_web::test]
async fn forwarded_for_from_a_trusted_proxy_keys_the_login_throttle() {
    let app = spawn_app_with(|c| {
        c.login_max_failures_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let page = demo_page(&app).await;
    assert_eq!(guess_via(&app, &page, "u1", "198.51.100.1").await, 400);
    // A client-supplied entry left of the proxy's is not believed.
    assert_eq!(
        guess_via(&app, &page, "u2", "203.0.113.9, 198.51.100.1").await,
        400
    );
    assert_eq!(guess_via(&app, &page, "u3", "198.51.100.1").await, 429);
    // Another client behind the same proxy is not locked out.
    assert_eq!(guess_via(&app, &page, "u4", "198.51.100.2").await, 400);
    let reply = post(
        &app,
        &page,
        page.cookie.as_deref(),
        APPROVE,
        &[("forwarded", "for=\"[2001:db8::1]:4711\"")],
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
}

async fn register_via(app: &TestApp, client: &str) -> u16 {
    let body = json!({ "redirect_uris": ["https://app.example/cb"], "client_name": "x" });
    app.client
        .post(app.url("/register"))
        .header("x-forwarded-for", client)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_web::test]
async fn the_registration_limit_uses_the_forwarded_client_only_from_trusted_proxies() {
    let trusted = spawn_app_with(|c| {
        c.registrations_per_hour = 1;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    assert_eq!(register_via(&trusted, "198.51.100.1").await, 201);
    assert_eq!(register_via(&trusted, "198.51.100.1").await, 429);
    assert_eq!(register_via(&trusted, "198.51.100.2").await, 201);

    let untrusted = spawn_app_with(|c| c.registrations_per_hour = 1).await;
    assert_eq!(register_via(&untrusted, "198.51.100.1").await, 201);
    assert_eq!(register_via(&untrusted, "198.51.100.2").await, 429);
}
