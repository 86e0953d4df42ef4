//! Browser sign-in sessions: after one password login, later authorization requests from the
//! same browser ask only for consent; `prompt=login`, expiry and the cookie's attributes.

use reqwest::header;

use crate::helpers::*;

fn session_cookie(resp: &reqwest::Response) -> Option<(String, String)> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("oauth_mcp_session="))
        .map(|v| {
            (
                v.split(';').next().unwrap_or_default().to_owned(),
                v.to_owned(),
            )
        })
}

/// Logs in once with the password; answers the session cookie pair.
async fn sign_in(app: &TestApp) -> String {
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, FLOW_STATE);
    let resp = app
        .login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
        .await;
    assert_eq!(resp.status(), 303);
    let (pair, full) =
        session_cookie(&resp).expect("a sign-in session cookie after a password login");
    assert!(full.contains("HttpOnly"), "{full}");
    assert!(full.contains("SameSite=Lax"), "{full}");
    assert!(full.contains("Max-Age="), "{full}");
    pair
}

async fn page_with_cookie(app: &TestApp, params: &[(&str, &str)], cookie: &str) -> (Reply, String) {
    let resp = app
        .client
        .get(app.authorize_url(params))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let csrf_cookie = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("oauth_mcp_csrf="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    (Reply::read(resp).await, csrf_cookie)
}

/// The value of the page's hidden input `name`.
fn hidden(body: &str, name: &str) -> String {
    hidden_inputs(body)
        .into_iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no hidden input {name:?} in {body}"))
}

#[actix_web::test]
async fn a_signed_in_browser_only_confirms_consent() {
    let app = spawn_app().await;
    let session = sign_in(&app).await;
    let (verifier, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, "second");
    let (page, csrf) = page_with_cookie(&app, &params, &session).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Signed in as <strong>demo_user</strong>"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("type=\"password\""),
        "no password field when signed in"
    );

    // Approve without a password: the session cookie vouches for the user.
    let mut form: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    form.push(("csrf", hidden(&page.body, "csrf")));
    form.push(("action", "approve".into()));
    let resp = app
        .client
        .post(app.url("/authorize/decision"))
        .header(header::COOKIE, format!("{session}; {csrf}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let reply = Reply::read(resp).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let query = reply.location_query();
    assert_eq!(query["state"], "second");
    let tokens = app.exchange_demo_code(&query["code"], &verifier).await;
    assert_eq!(tokens.status, 200);
    assert_eq!(
        app.introspect(&str_field(&tokens.json(), "access_token"))
            .await["sub"],
        DEMO_USER
    );
}

#[actix_web::test]
async fn prompt_login_and_expiry_bring_the_password_form_back() {
    let app = spawn_app().await;
    let session = sign_in(&app).await;
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, "s");
    params.push(("prompt", "login"));
    let (page, _) = page_with_cookie(&app, &params, &session).await;
    assert!(
        page.body.contains("type=\"password\""),
        "prompt=login asks for the password"
    );

    // After the session expires, approving without a password is refused with the form.
    params.pop();
    let (page, csrf) = page_with_cookie(&app, &params, &session).await;
    assert!(!page.body.contains("type=\"password\""));
    app.clock
        .advance(std::time::Duration::from_secs(8 * 3600 + 1));
    let mut form: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    form.push(("csrf", hidden(&page.body, "csrf")));
    form.push(("action", "approve".into()));
    let reply = Reply::read(
        app.client
            .post(app.url("/authorize/decision"))
            .header(header::COOKIE, format!("{session}; {csrf}"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());
    assert!(reply.body.contains("expired"), "{}", reply.body);
    assert!(reply.body.contains("type=\"password\""));
}

#[actix_web::test]
async fn a_forged_session_cookie_signs_nobody_in() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, "s");
    let (page, _) = page_with_cookie(&app, &params, "oauth_mcp_session=forged").await;
    assert!(page.body.contains("type=\"password\""));
}

/// On PostgreSQL (`--database-url`) the session lives in the `shared_state` table, under
/// the cookie's digest only; it ends when it expires, and the registry's sweep deletes it
/// together with the ended throttle window of a failed login.
#[actix_web::test]
async fn on_postgres_a_session_is_stored_as_a_digest_expires_and_is_swept() {
    let Some(db) = test_database(module_path!()).await else {
        return;
    };
    let url = db.url.clone();
    let app = spawn_app_with(move |c| c.database_url = Some(url.clone().into())).await;
    let session = sign_in(&app).await;
    let (_, challenge) = pkce_pair();
    let wrong = app
        .login_and_consent(
            &demo_authorize_params(&challenge, "s"),
            DEMO_USER,
            "wrong",
            true,
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let cookie = session.trim_start_matches("oauth_mcp_session=");
    let stored = format!(
        "SELECT count(*) FROM shared_state WHERE namespace = 'sign_in' \
         AND key = sha256(convert_to('{cookie}', 'UTF8'))"
    );
    assert_eq!(db.count(&stored).await, 1, "the cookie's digest is the key");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM shared_state WHERE position(convert_to('{cookie}', 'UTF8') \
             IN key || value) > 0"
        ))
        .await,
        0,
        "the cookie itself is nowhere"
    );
    let (page, _) = page_with_cookie(&app, &demo_authorize_params(&challenge, "s"), &session).await;
    assert!(!page.body.contains("type=\"password\""), "signed in");
    app.clock
        .advance(std::time::Duration::from_secs(8 * 3600 + 1));
    let (page, _) = page_with_cookie(&app, &demo_authorize_params(&challenge, "s"), &session).await;
    assert!(page.body.contains("type=\"password\""), "expired");
    assert!(db.count("SELECT count(*) FROM shared_state").await >= 2);
    app.sweep_clients().await;
    assert_eq!(
        db.count("SELECT count(*) FROM shared_state").await,
        0,
        "swept"
    );
}
