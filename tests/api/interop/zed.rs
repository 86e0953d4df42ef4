//! Zed (research §1.4): a document with a portless `http://127.0.0.1/callback` and, per its
//! design notes (not the published document), `scope: "mcp:*"`.

use super::*;

#[actix_web::test]
async fn zed_document() {
    let app = document_app().await;
    let host = DocumentHost::start().await;
    // `client_id` and `redirect_uris` are Zed's; the rest is its plan's "suggested
    // contents". Refused before issue 13 for the unknown scope.
    let client_id = publish(
        &host,
        "/oauth/client-metadata.json",
        json!({
            "client_name": "Zed",
            "client_uri": "https://zed.dev",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "mcp:*"
        }),
    );
    // An ephemeral port per flow; `resource` without the trailing slash.
    let (verifier, challenge) = pkce_pair();
    let redirect = "http://127.0.0.1:40123/callback";
    let resource = app.resource();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
        ("resource", resource.as_str()),
    ];
    let approved = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let code = approved.location_query()["code"].clone();
    let tokens = Reply::read(
        app.token_request(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", &code),
                ("code_verifier", &verifier),
                ("redirect_uri", redirect),
                ("resource", &resource),
            ],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let tokens = tokens.json();
    // The unknown `mcp:*` gave way to the default scopes.
    assert_eq!(tokens["scope"], ALL_SCOPES);
    // Only `authorization_code` in its grant types: no refresh token.
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    let who = whoami(&app, &str_field(&tokens, "access_token")).await;
    assert_eq!(who["client_id"], client_id);
}

#[actix_web::test]
async fn zed_document_with_refresh() {
    // The same document asking for refresh tokens runs the whole flow.
    let app = document_app().await;
    let host = DocumentHost::start().await;
    let client_id = publish(
        &host,
        "/oauth/client-metadata.json",
        json!({
            "client_name": "Zed",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "mcp:*"
        }),
    );
    let resource = app.resource();
    let flow = Flow {
        resource: Some(&resource),
        ..Flow::public(&client_id, "http://127.0.0.1:40124/callback")
    };
    run_flow(&app, &flow).await;
}
