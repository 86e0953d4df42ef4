//! A browser meeting a different instance at every step (issue 14, "a browser sign-in on
//! one, consent on another"): the pre-login page drawn by one instance, the password posted
//! to another, the signed-in consent on a third and the code redeemed elsewhere; failed
//! logins spread over three instances locking the account out on all of them at the global
//! threshold; the per-address registration limit counted across instances. Three real
//! processes on one database with one server key ([`Cluster`]).

use reqwest::header;

use crate::helpers::*;

/// Three instances on one database. The demo seeding races at start: the instances that
/// lose it find the demo client through the registry's read-through (the change feed).
async fn cluster(test: &str, args: &[&str]) -> Option<Cluster> {
    Cluster::start(test, 3, args).await
}

/// The `oauth_mcp_session=…` pair a decision reply sets, if any.
fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    cookie_pairs(resp.headers())
        .into_iter()
        .find(|c| c.starts_with("oauth_mcp_session="))
}

/// Posts `page`'s form (its hidden fields plus `fields`) to `app`'s decision endpoint, as a
/// browser whose next request the balancer sent to `app`, with `cookie`.
async fn post_decision(
    app: &TestApp,
    page: &ConsentPage,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/authorize/decision"))
        .form(&page.form_body(fields));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.send().await.expect("POST /authorize/decision")
}

/// The code and state of a redirect back to the demo client.
fn code_of(resp: &reqwest::Response) -> (String, String) {
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a redirect back to the client");
    let url = url::Url::parse(location).expect("a URL");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    (query["code"].clone(), query["state"].clone())
}

#[actix_web::test]
async fn a_browser_signs_in_on_one_instance_and_consents_on_another() {
    let Some(cluster) = cluster(module_path!(), &[]).await else {
        return;
    };
    let (a, b, c) = (cluster.app(0), cluster.app(1), cluster.app(2));

    // The page (pre-login cookie and CSRF value) from A, the password posted to B.
    let (verifier, challenge) = pkce_pair();
    let page = a
        .consent_page(&demo_authorize_params(&challenge, "one"))
        .await;
    assert_eq!(page.reply.status, 200, "{}", page.reply.body);
    let resp = post_decision(
        b,
        &page,
        page.cookie.as_deref(),
        &[
            ("username", DEMO_USER),
            ("password", DEMO_PASSWORD),
            ("action", "approve"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303, "B accepts A's form");
    let session = session_cookie(&resp).expect("a sign-in session cookie from B");
    let (code, state) = code_of(&resp);
    assert_eq!(state, "one");
    // The code B issued, redeemed on C.
    let tokens = c.exchange_demo_code(&code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);

    // The session B started, honoured by C (consent only) and then by A (the decision).
    let (verifier, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, "two");
    let resp = c
        .client
        .get(c.authorize_url(&params))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    let csrf_cookie = cookie_pairs(resp.headers())
        .into_iter()
        .find(|v| v.starts_with("oauth_mcp_csrf="))
        .expect("a pre-login cookie");
    let page = ConsentPage {
        cookie: None,
        action_url: c.url("/authorize/decision"),
        hidden: Vec::new(),
        reply: Reply::read(resp).await,
    };
    assert_eq!(page.reply.status, 200, "{}", page.reply.body);
    assert!(
        !page.reply.body.contains("type=\"password\""),
        "C knows the session B started: consent only\n{}",
        page.reply.body
    );
    let page = ConsentPage {
        hidden: hidden_inputs(&page.reply.body),
        ..page
    };
    let cookies = format!("{session}; {csrf_cookie}");
    let resp = post_decision(a, &page, Some(&cookies), &[("action", "approve")]).await;
    assert_eq!(
        resp.status(),
        303,
        "A accepts the consent C drew, as the session's user"
    );
    let (code, state) = code_of(&resp);
    assert_eq!(state, "two");
    let tokens = b.exchange_demo_code(&code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let access = str_field(&tokens.json(), "access_token");
    assert_eq!(c.introspect(&access).await["sub"], DEMO_USER);
    for instance in &cluster.instances {
        assert_eq!(instance.problems(), Vec::<String>::new());
    }
}

#[actix_web::test]
async fn failed_logins_on_three_instances_lock_the_account_out_on_all_at_the_global_limit() {
    let Some(cluster) = cluster(module_path!(), &[]).await else {
        return;
    };
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, "s");
    let wrong = [
        ("username", DEMO_USER),
        ("password", "wrong"),
        ("action", "approve"),
    ];
    // login_max_failures_per_user is 5: two on A, two on B, one on C.
    for i in [0, 1, 0, 1, 2] {
        let app = cluster.app(i);
        let page = app.consent_page(&params).await;
        assert_eq!(page.reply.status, 200, "{}", page.reply.body);
        let resp = post_decision(app, &page, page.cookie.as_deref(), &wrong).await;
        let reply = Reply::read(resp).await;
        assert_eq!(reply.status, 400, "instance {i}: {}", reply.body);
        assert!(
            reply.body.contains("username or password is incorrect"),
            "instance {i}: checked and refused\n{}",
            reply.body
        );
    }
    // Now locked out everywhere, even with the right password (each instance alone has
    // seen at most two failures).
    for i in 0..3 {
        let app = cluster.app(i);
        let page = app.consent_page(&params).await;
        assert_eq!(page.reply.status, 200, "{}", page.reply.body);
        let resp = post_decision(
            app,
            &page,
            page.cookie.as_deref(),
            &[
                ("username", DEMO_USER),
                ("password", DEMO_PASSWORD),
                ("action", "approve"),
            ],
        )
        .await;
        assert_eq!(resp.status(), 429, "instance {i}: locked out");
        assert!(resp.headers().contains_key(header::RETRY_AFTER));
    }
}

#[actix_web::test]
async fn the_per_address_registration_limit_counts_across_instances() {
    let Some(cluster) = Cluster::start(module_path!(), 3, &["--registrations-per-hour", "3"]).await
    else {
        return;
    };
    // Confidential clients: never answered as repeats, so each counts.
    for i in 0..3 {
        cluster
            .app(i)
            .register_confidential(&["https://app.example/cb"])
            .await;
    }
    for i in 0..3 {
        let resp = cluster
            .app(i)
            .register(&serde_json::json!({
                "redirect_uris": ["https://app.example/cb"],
                "token_endpoint_auth_method": "client_secret_basic"
            }))
            .await;
        assert_eq!(
            resp.status(),
            429,
            "instance {i}: the fourth from this address"
        );
    }
}

#[actix_web::test]
async fn an_identical_public_registration_on_another_instance_answers_the_same_client() {
    let Some(cluster) = cluster(module_path!(), &[]).await else {
        return;
    };
    let body = serde_json::json!({
        "redirect_uris": ["http://127.0.0.1:7777/cb"],
        "token_endpoint_auth_method": "none",
        "client_name": "Hosted"
    });
    let first = cluster.app(0).register_ok(&body).await;
    // B finds A's client by reading through; the fingerprint it answers from is shared.
    let again = cluster.app(1).register_ok(&body).await;
    assert_eq!(
        str_field(&again, "client_id"),
        str_field(&first, "client_id"),
        "the repeat on B answers the client A registered"
    );
}

#[actix_web::test]
async fn concurrent_wrong_passwords_on_three_instances_never_pass_the_global_limit() {
    // Room for every post at once on every instance, so only the throttle decides.
    let Some(cluster) = cluster(module_path!(), &["--password-hash-concurrency", "64"]).await
    else {
        return;
    };
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, "s");
    let mut pages = Vec::new();
    for i in 0..3 {
        let page = cluster.app(i).consent_page(&params).await;
        assert_eq!(page.reply.status, 200, "{}", page.reply.body);
        pages.push(page);
    }
    let wrong = [
        ("username", DEMO_USER),
        ("password", "wrong"),
        ("action", "approve"),
    ];
    let posts = (0..18).map(|n| {
        let (app, page) = (cluster.app(n % 3), &pages[n % 3]);
        async move {
            post_decision(app, page, page.cookie.as_deref(), &wrong)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    let checked = statuses.iter().filter(|s| **s == 400).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    // login_max_failures_per_user is 5 in all, not 5 per instance.
    assert_eq!((checked, throttled), (5, 13), "{statuses:?}");
}
