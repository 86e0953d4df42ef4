//! A client identified by its metadata document through the whole flow: advertised in the
//! server metadata, signing in, exchanging, refreshing and calling MCP; redirect URIs only from
//! the document; a document gone bad stops it at the token endpoint; early errors are shown,
//! not redirected.

use super::*;

#[actix_web::test]
async fn metadata_advertises_documents_unless_turned_off() {
    let app = spawn_app().await;
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);

    let host = DocumentHost::start().await;
    let client_id = host.publish("/client.json", &[]);
    let off = spawn_app_with(|c| {
        c.client_metadata_documents = false;
        c.client_metadata_allow_http = true;
        c.client_metadata_allow_private = true;
    })
    .await;
    let meta = off
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["client_id_metadata_document_supported"], false);
    // Turned off, a URL is just an unknown client id: nothing is fetched.
    assert_refused(&off, &client_id, "not registered").await;
    assert_eq!(host.hits("/client.json"), 0);
}

#[actix_web::test]
async fn a_document_client_signs_in_exchanges_refreshes_and_calls_mcp() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let client_id = host.publish("/oauth/client.json", &[]);

    // The consent page names the client, the document's host, and warns that the code
    // goes to this computer.
    let (_, challenge) = pkce_pair();
    let page = app
        .consent_page(&authorize_params(&client_id, &challenge))
        .await;
    assert_eq!(page.reply.status, 200, "{}", page.reply.body);
    assert!(page.reply.body.contains(NAME), "{}", page.reply.body);
    assert!(
        page.reply
            .body
            .contains("published at <strong>127.0.0.1</strong>"),
        "{}",
        page.reply.body
    );
    assert!(
        page.reply.body.contains("class=\"notice\""),
        "{}",
        page.reply.body
    );

    let (code, verifier) = app.obtain_code_for(&client_id, REDIRECT, ALL_SCOPES).await;
    let reply = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    let access = str_field(&tokens, "access_token");
    let refresh = str_field(&tokens, "refresh_token");

    let mcp = app.mcp_initialize(&access).await;
    assert_eq!(mcp.status(), 200);

    let reply = refresh_as(&app, &client_id, &refresh).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rotated = str_field(&reply.json(), "refresh_token");

    // Document clients are public: a secret is refused, not ignored.
    let reply = Reply::read(
        app.token_request(
            &[("grant_type", "refresh_token"), ("refresh_token", &rotated)],
            Some((&client_id, "guess")),
        )
        .await,
    )
    .await;
    assert_basic_challenge(&reply);

    // And they may revoke their own tokens.
    let revoked = app
        .client
        .post(app.url("/revoke"))
        .form(&[("token", rotated.as_str()), ("client_id", &client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let reply = refresh_as(&app, &client_id, &rotated).await;
    assert_token_error(&reply, 400, "invalid_grant");
    // Everything after the first fetch came from the cache (no cache headers: 5 minutes).
    assert_eq!(host.hits("/oauth/client.json"), 1);
}

#[actix_web::test]
async fn the_redirect_uri_must_be_one_the_document_lists() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let client_id = host.publish("/client.json", &[]);
    let (_, challenge) = pkce_pair();
    let mut params = authorize_params(&client_id, &challenge);
    set_param(&mut params, "redirect_uri", "https://attacker.example/cb");
    let reply = Reply::read(app.get_authorize(&params).await).await;
    assert_error_page(&reply);
    assert!(reply.body.contains("not registered for this application"));
}

#[actix_web::test]
async fn a_document_gone_bad_stops_the_client_at_the_token_endpoint() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let client_id = host.publish("/client.json", &[("cache-control", "max-age=30")]);
    let (code, verifier) = app.obtain_code_for(&client_id, REDIRECT, ALL_SCOPES).await;

    // The client's site now serves something else; once the cached copy is stale the
    // client can no longer authenticate.
    host.route(
        "/client.json",
        Route::json(&host.document("/other.json", json!({}))),
    );
    app.clock.advance(Duration::from_secs(31));
    let reply = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_token_error(&reply, 401, "invalid_client");
    assert!(
        reply.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("does not equal the URL"),
        "{}",
        reply.body
    );
}

#[actix_web::test]
async fn early_errors_for_a_document_client_are_shown_not_redirected() {
    // Anyone can publish a document naming any redirect URI (RFC 9700 §4.11.2).
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let client_id = host.publish("/client.json", &[]);
    let (_, challenge) = pkce_pair();
    for (key, value) in [
        ("response_type", "token"),
        ("scope", "admin"),
        ("code_challenge_method", "plain"),
    ] {
        let mut params = authorize_params(&client_id, &challenge);
        set_param(&mut params, key, value);
        let reply = Reply::read(app.get_authorize(&params).await).await;
        assert_error_page(&reply);
    }
}
