//! CSRF values bound to the browser with the server key: a cookie and field of the attacker's
//! choosing, another browser's value, and consent without a password, which needs the value
//! bound to the sign-in session.

use super::*;

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
