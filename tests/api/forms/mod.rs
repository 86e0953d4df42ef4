//! The login and consent form against other sites and against guessing (issue 11, item 3),
//! one file per behaviour: `csrf` (CSRF values bound to the browser with the server key),
//! `origin` (fetch-metadata and `Origin` checks, `prompt=login` on the way back), `throttle`
//! (the login throttle under concurrency, the password-check bound) and `proxies` (client
//! addresses behind trusted proxies). This file holds the form helpers they share.

use reqwest::header;
use serde_json::json;

use crate::helpers::*;

mod csrf;
mod origin;
mod proxies;
mod throttle;

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
    let mut request = app
        .client
        .post(&page.action_url)
        .form(&page.form_body(fields));
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
