//! An MCP client's whole journey with nothing but the server URL: discovery, dynamic client
//! registration, the login page, PKCE, the code exchange and tool calls.

use super::*;

/// What a real MCP client does, step by step, from nothing but the MCP URL.
#[actix_web::test]
async fn end_to_end_discovery_registration_login_and_tool_calls() {
    let app = spawn_app().await;
    let mcp_url = app.url("/mcp");

    // 1. The unauthenticated request points to the protected-resource metadata.
    let reply = Reply::read(
        app.client
            .post(&mcp_url)
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
    let c = challenge(&reply);
    let prm_url = c
        .split("resource_metadata=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    // 2. Protected-resource metadata → authorization server metadata.
    let prm = app.get_json(&prm_url).await;
    assert_eq!(prm["resource"], mcp_url);
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    let asm = app
        .get_json(&format!("{issuer}/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(asm["issuer"], issuer);
    assert!(asm["code_challenge_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("S256")));

    // 3. Dynamic registration of a public client with a loopback redirect.
    let redirect = "http://127.0.0.1:9999/callback";
    let registered: Value = app
        .client
        .post(asm["registration_endpoint"].as_str().unwrap())
        .json(&json!({"client_name": "E2E Agent", "redirect_uris": [redirect], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = str_field(&registered, "client_id");

    // 4. Login and consent through the HTML page, PKCE S256, resource indicator; the
    //    redirect may use another loopback port than the registered one.
    let (verifier, challenge_value) = pkce_pair();
    let callback = "http://127.0.0.1:45123/callback";
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", callback),
        ("code_challenge", challenge_value.as_str()),
        ("code_challenge_method", "S256"),
        ("scope", "mcp:read"),
        ("state", "e2e"),
        ("resource", mcp_url.as_str()),
    ];
    let approved = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let query = approved.location_query();
    assert_eq!(query["iss"], issuer);
    assert_eq!(query["state"], "e2e");

    // 5. Code exchange as a public client.
    let tokens = Reply::read(
        app.client
            .post(asm["token_endpoint"].as_str().unwrap())
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", query["code"].as_str()),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", callback),
                ("resource", mcp_url.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let access = str_field(&tokens.json(), "access_token");

    // 6. MCP session and tool calls with the token.
    let mut mcp = Mcp::new(&app, &access);
    mcp.initialize("2025-06-18").await;
    assert_eq!(
        tool_text(&mcp.call_tool("add", json!({"a": 20, "b": 22})).await),
        "42"
    );
    let who: Value =
        serde_json::from_str(&tool_text(&mcp.call_tool("whoami", json!({})).await)).unwrap();
    assert_eq!(who["client_id"], client_id);
    assert_eq!(who["subject"], DEMO_USER);

    // 7. Stepping up is needed for the write tool.
    assert_eq!(
        mcp.call_tool("sign_guestbook", json!({"message": "x"}))
            .await
            .status,
        403
    );

    // Resources and prompts are there too.
    let res = rpc_result(
        &mcp.request("resources/read", json!({"uri": "oauth-mcp://server/info"}))
            .await
            .body,
    );
    assert!(res["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("oauth-mcp"));
    let prompt = rpc_result(
        &mcp.request(
            "prompts/get",
            json!({"name": "greet", "arguments": {"name": "Ada"}}),
        )
        .await
        .body,
    );
    assert!(prompt["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .contains("Ada"));
}
