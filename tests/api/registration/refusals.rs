//! Registrations refused with the RFC 7591 §3.2.2 error codes: bad or missing redirect URIs
//! (`invalid_redirect_uri`: not https, loopback http or a private-use scheme; dangerous
//! schemes), grant types that leave nothing usable, malformed scopes, bodies that are not
//! JSON or not sent as JSON, and metadata fields over their bounds
//! (`invalid_client_metadata`). Unsupported values beside supported ones are replaced, not
//! refused (`answers`).

use super::*;

#[actix_web::test]
async fn other_redirect_uris_are_invalid_redirect_uri() {
    // MCP authorization: redirect URIs MUST be localhost or HTTPS; no fragments (OAuth 2.1 §2.3).
    let app = spawn_app().await;

    for uri in [
        "http://evil.example/cb",
        "myapp:cb",
        "javascript:alert(1)",
        "javascript://x/%0aalert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "ws://app.example/cb",
        "ftp://app.example/cb",
        "about:blank",
        "chrome-extension://abc/cb",
        "intent://x/y",
        "https://app.example/cb#fragment",
        "http://localhost:8765/cb#x",
        "not a url",
    ] {
        let reply = register(&app, &json!({ "redirect_uris": [uri] })).await;
        assert_oauth_error(&reply, 400, "invalid_redirect_uri");
    }
    // One bad URI spoils the whole registration.
    let mixed = json!({ "redirect_uris": ["https://app.example/cb", "http://evil.example/cb"] });
    assert_oauth_error(&register(&app, &mixed).await, 400, "invalid_redirect_uri");
}

#[actix_web::test]
async fn redirect_uris_are_required() {
    let app = spawn_app().await;

    for request in [
        json!({ "client_name": "No Redirects" }),
        json!({ "redirect_uris": [] }),
    ] {
        let reply = register(&app, &request).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        // RFC 7591 allows either code here; both describe the problem.
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error == "invalid_redirect_uri" || error == "invalid_client_metadata",
            "unexpected error {error:?}"
        );
    }
}

#[actix_web::test]
async fn forbidden_grant_types_are_invalid_client_metadata() {
    // Implicit and password are gone in OAuth 2.1; client_credentials needs a secret. When
    // nothing supported is left, or what is left conflicts, the registration is refused
    // (unsupported grant types beside supported ones are dropped: see `answers`).
    let app = spawn_app().await;

    for request in [
        json!({ "redirect_uris": ["https://app.example/cb"], "grant_types": ["implicit"] }),
        json!({ "redirect_uris": ["https://app.example/cb"], "grant_types": ["password"] }),
        json!({
            "redirect_uris": ["https://app.example/cb"],
            "grant_types": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_method": "none",
        }),
        json!({ "redirect_uris": ["https://app.example/cb"], "response_types": ["token"] }),
    ] {
        let reply = register(&app, &request).await;
        assert_oauth_error(&reply, 400, "invalid_client_metadata");
    }
}

#[actix_web::test]
async fn malformed_scope_is_invalid_client_metadata() {
    // Unknown scopes are dropped (see `answers`); a scope that is not scope syntax is not.
    let app = spawn_app().await;
    for scope in [json!("mcp:read \"x\""), json!(7)] {
        let request = json!({ "redirect_uris": ["https://app.example/cb"], "scope": scope });
        assert_oauth_error(
            &register(&app, &request).await,
            400,
            "invalid_client_metadata",
        );
    }
}

#[actix_web::test]
async fn non_json_body_is_invalid_client_metadata() {
    let app = spawn_app().await;

    let reply = Reply::read(
        app.client
            .post(app.url("/register"))
            .header(header::CONTENT_TYPE, "application/json")
            .body("{ this is not json")
            .send()
            .await
            .expect("POST /register"),
    )
    .await;

    assert_oauth_error(&reply, 400, "invalid_client_metadata");
}

#[actix_web::test]
async fn redirect_uris_with_control_characters_whitespace_or_userinfo_are_refused() {
    // A NUL or a line break can cut or split the URI in whatever logs or parses it later,
    // and userinfo (`https://trusted.example@evil.example/`) makes a URI read as one host
    // and lead to another.
    let app = spawn_app().await;
    for uri in [
        "https://app.example/cb\u{0}",
        "https://app.example/c\u{0}b",
        "http://localhost:3000/cb\u{7f}",
        "https://app.example/cb\r\nSet-Cookie: x=1",
        "https://app.example/c b",
        "https://app.example/cb\t",
        " https://app.example/cb",
        "https://app.example/cb\u{a0}",
        "https://user@app.example/cb",
        "https://user:pw@app.example/cb",
        "https://@app.example/cb",
        "http://localhost:3000@evil.example/cb",
    ] {
        let reply = register(&app, &json!({ "redirect_uris": [uri] })).await;
        assert_oauth_error(&reply, 400, "invalid_redirect_uri");
    }
}

#[actix_web::test]
async fn registration_requires_a_json_content_type() {
    // A page on any site can make the browser post `text/plain` (or a form) without a CORS
    // preflight; only a declared JSON body registers a client.
    let app = spawn_app().await;
    let body = json!({ "redirect_uris": ["https://app.example/cb"] }).to_string();
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = app.client.post(app.url("/register")).body(body.clone());
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let reply = Reply::read(request.send().await.expect("POST /register")).await;
        assert_oauth_error(&reply, 400, "invalid_client_metadata");
        assert!(
            reply.body.contains("Content-Type must be application/json"),
            "{content_type:?}: {}",
            reply.body
        );
    }
    let reply = Reply::read(
        app.client
            .post(app.url("/register"))
            .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
            .body(body)
            .send()
            .await
            .expect("POST /register"),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[actix_web::test]
async fn metadata_fields_are_bounded() {
    let app = spawn_app().await;
    let base = || json!({ "redirect_uris": ["https://app.example/cb"] });
    let with = |key: &str, value: Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    let ok = [
        with("contacts", json!(vec!["ops@app.example"; 10])),
        with("client_name", json!("n".repeat(200))),
        with(
            "client_uri",
            json!(format!("https://app.example/{}", "a".repeat(1900))),
        ),
        with(
            "redirect_uris",
            json!((0..20)
                .map(|i| format!("https://app.example/cb{i}"))
                .collect::<Vec<_>>()),
        ),
    ];
    for body in ok {
        assert_eq!(register(&app, &body).await.status, 201, "{body}");
    }
    let refused = [
        with("contacts", json!(vec!["ops@app.example"; 11])),
        with("contacts", json!(["x".repeat(321)])),
        with("contacts", json!(["ops@app.example\n"])),
        with("contacts", json!([1])),
        with("client_name", json!("n".repeat(201))),
        with("client_name", json!("My\u{0}App")),
        with(
            "client_uri",
            json!(format!("https://app.example/{}", "a".repeat(2000))),
        ),
        with("logo_uri", json!("https://app.example/\u{1b}[31m")),
        with("grant_types", json!(vec!["authorization_code"; 11])),
        with("response_types", json!(vec!["code"; 11])),
    ];
    for body in refused {
        assert_oauth_error(&register(&app, &body).await, 400, "invalid_client_metadata");
    }
    let too_many = with(
        "redirect_uris",
        json!((0..21)
            .map(|i| format!("https://app.example/cb{i}"))
            .collect::<Vec<_>>()),
    );
    assert_oauth_error(
        &register(&app, &too_many).await,
        400,
        "invalid_redirect_uri",
    );
    let too_long = with(
        "redirect_uris",
        json!([format!("https://app.example/{}", "a".repeat(2000))]),
    );
    assert_oauth_error(
        &register(&app, &too_long).await,
        400,
        "invalid_redirect_uri",
    );
}
