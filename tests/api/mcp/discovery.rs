//! What a client without a usable token learns: the 401 challenge with
//! `resource_metadata` (RFC 6750 §3, RFC 9728 §5.1), `invalid_token` for bad or misplaced
//! tokens, the protected resource metadata (RFC 9728 §3), and CORS so that browser clients
//! can preflight and read the challenge.

use super::*;

#[actix_web::test]
async fn requests_without_a_token_get_a_discoverable_challenge() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let reply = Reply::read(
            app.client
                .request(method.clone(), app.url("/mcp"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 401, "{method}");
        let c = challenge(&reply);
        assert!(c.starts_with("Bearer "), "{c}");
        let prm = format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            app.address
        );
        assert!(c.contains(&prm), "{c}");
        assert!(c.contains("scope=\"mcp:read\""), "{c}");
        assert!(
            !c.contains("error="),
            "no error code without a token (RFC 6750 §3.1): {c}"
        );
    }
}

#[actix_web::test]
async fn a_bad_or_misplaced_token_is_invalid_token() {
    let app = spawn_app().await;
    let reply = Reply::read(
        app.client
            .post(app.url("/mcp"))
            .bearer_auth("not-a-token")
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
    let c = challenge(&reply);
    assert!(c.contains("error=\"invalid_token\""), "{c}");
    assert!(c.contains("resource_metadata="), "{c}");
    assert_eq!(reply.json()["error"], "invalid_token");

    // A token in the query string is never accepted.
    let token = user_token(&app, ALL_SCOPES).await;
    let reply = Reply::read(
        app.client
            .post(format!("{}?access_token={token}", app.url("/mcp")))
            .header(header::ACCEPT, ACCEPT_BOTH)
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(!challenge(&reply).contains("error="));

    // A refresh token is not an access token.
    let tokens = app.exchange_code_demo().await;
    let reply = Reply::read(
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(str_field(&tokens, "refresh_token"))
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
}

#[actix_web::test]
async fn protected_resource_metadata_points_to_the_authorization_server() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let reply = Reply::read(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(reply.status, 200, "{path}");
        let doc = reply.json();
        assert_eq!(doc["resource"], format!("{}/mcp", app.address));
        assert_eq!(doc["authorization_servers"], json!([app.address]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:read", "mcp:write"]));
    }
    // The resource is the URL exactly as the client reached it.
    let reply = Reply::read(
        app.client
            .get(app.url("/.well-known/oauth-protected-resource/mcp"))
            .header(header::HOST, format!("localhost:{}", app.port))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply.json()["resource"],
        format!("http://localhost:{}/mcp", app.port)
    );
    assert_eq!(
        reply.json()["authorization_servers"],
        json!([format!("http://localhost:{}", app.port)])
    );
}

#[actix_web::test]
async fn browser_clients_can_preflight_and_read_the_challenge() {
    let app = spawn_app().await;
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/mcp"))
        .header(header::ORIGIN, "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // The 401 carries CORS headers too, or a browser client could not read the challenge.
    let r = app
        .client
        .post(app.url("/mcp"))
        .header(header::ORIGIN, "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("access-control-allow-origin"));
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("www-authenticate"));
}
