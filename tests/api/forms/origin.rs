//! Where the decision post comes from: `Sec-Fetch-Site` (cross-site and same-site refused),
//! `Origin` (foreign and `null` refused, every loopback alias of our own accepted), and
//! `prompt=login` enforced when the form comes back.

use super::*;

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
