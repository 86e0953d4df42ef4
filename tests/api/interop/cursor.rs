//! Cursor (research §2.1): one registration with a private-use scheme, an https URI and a
//! loopback URI, `application_type: web`. Refused whole before issue 13.

use super::*;

const PRIVATE_USE: &str = "cursor://anysphere.cursor-mcp/oauth/callback";
const HTTPS: &str = "https://www.cursor.com/agents/mcp/oauth/callback";
const LOOPBACK: &str = "http://localhost:8787/callback";

async fn register_cursor(app: &TestApp) -> String {
    let registered = app
        .register_ok(&json!({
            "client_name": "Cursor",
            "redirect_uris": [PRIVATE_USE, HTTPS, LOOPBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "web"
        }))
        .await;
    assert_eq!(
        registered["redirect_uris"],
        json!([PRIVATE_USE, HTTPS, LOOPBACK])
    );
    // Recorded as sent; `web` refuses neither loopback nor the private-use scheme.
    assert_eq!(registered["application_type"], "web");
    str_field(&registered, "client_id")
}

#[actix_web::test]
async fn cursor_registration_with_a_private_use_scheme() {
    let app = spawn_app().await;
    let client_id = register_cursor(&app).await;

    let out = run_flow(&app, &Flow::public(&client_id, PRIVATE_USE)).await;
    assert!(
        out.location.starts_with(&format!("{PRIVATE_USE}?code=")),
        "{}",
        out.location
    );
    // The page names the application the code goes to, and warns that any application
    // may claim the scheme.
    assert!(
        out.page.contains("opens <strong>cursor</strong> links"),
        "{}",
        out.page
    );
    assert!(
        out.page
            .contains("<code>cursor://anysphere.cursor-mcp</code>"),
        "{}",
        out.page
    );

    // The other two work as well; loopback on another port too.
    run_flow(&app, &Flow::public(&client_id, HTTPS)).await;
    run_flow(
        &app,
        &Flow::public(&client_id, "http://localhost:8788/callback"),
    )
    .await;
}

#[actix_web::test]
async fn the_private_use_redirect_matches_exactly() {
    let app = spawn_app().await;
    let client_id = register_cursor(&app).await;
    let (_, challenge) = pkce_pair();
    for other in [
        "cursor://anysphere.cursor-mcp/oauth/callback/",
        "cursor://anysphere.cursor-mcp/oauth/callback?x=1",
        "cursor://anysphere.cursor-mcp/oauth/callback/more",
        "cursor://evil.extension/oauth/callback",
        "cursor://anysphere.cursor-mcp:1/oauth/callback",
        "Cursor://anysphere.cursor-mcp/oauth/callback",
    ] {
        let reply = Reply::read(
            app.get_authorize(&[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("redirect_uri", other),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .await,
        )
        .await;
        assert_error_page(&reply);
    }
    // PKCE as always: no challenge, no code (an error page for a registered client).
    let reply = Reply::read(
        app.get_authorize(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", PRIVATE_USE),
        ])
        .await,
    )
    .await;
    assert_error_page(&reply);
    assert!(reply.body.contains("code_challenge"), "{}", reply.body);
}

#[actix_web::test]
async fn each_cursor_redirect_alone_and_without_application_type() {
    // Older builds register the private-use URI alone, newer ones loopback alone; one
    // tester saw no application_type at all.
    let app = spawn_app().await;
    for uri in [PRIVATE_USE, HTTPS, LOOPBACK] {
        let registered = app
            .register_ok(&json!({
                "client_name": "Cursor",
                "redirect_uris": [uri],
                "token_endpoint_auth_method": "none"
            }))
            .await;
        assert!(registered.get("application_type").is_none());
        let client_id = str_field(&registered, "client_id");
        run_flow(&app, &Flow::public(&client_id, uri)).await;
    }
}
