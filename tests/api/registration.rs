//! Dynamic client registration (RFC 7591) and the life of a registered client afterwards.

use reqwest::header;
use serde_json::{json, Value};

use std::time::Duration;

use crate::helpers::{
    assert_error_page, assert_no_store, assert_oauth_error, assert_redirect_error,
    demo_authorize_params, pkce_pair, remove_param, scope_set, set_param, spawn_app,
    spawn_app_with, str_field, Reply, TestApp, ALL_SCOPES, DEMO_PASSWORD, DEMO_REDIRECT_URI,
    DEMO_USER, FLOW_STATE, START_UNIX,
};

async fn register(app: &TestApp, body: &Value) -> Reply {
    Reply::read(app.register(body).await).await
}

#[actix_web::test]
async fn confidential_registration_returns_full_client_information() {
    let app = spawn_app().await;
    let request = json!({
        "redirect_uris": ["https://app.example/callback"],
        "client_name": "My App",
        // Clients do not choose their own credentials.
        "client_id": "chosen-by-client",
        "client_secret": "chosen-by-client",
    });

    let reply = register(&app, &request).await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    // The response carries a client secret (OAuth 2.1 §3.2.3).
    assert_no_store(&reply);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = reply.json();
    let client_id = str_field(&body, "client_id");
    let client_secret = str_field(&body, "client_secret");
    assert_ne!(client_id, "chosen-by-client");
    assert_ne!(client_secret, "chosen-by-client");
    assert!(
        client_secret.len() >= 32,
        "secret too short: {client_secret}"
    );
    assert_eq!(body["client_id_issued_at"], START_UNIX);
    // 0 = the secret never expires (RFC 7591 §3.2.1).
    assert_eq!(body["client_secret_expires_at"], 0);
    // RFC 7591 §2: the default method is client_secret_basic.
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        body["redirect_uris"],
        json!(["https://app.example/callback"])
    );
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["client_name"], "My App");
    assert_eq!(scope_set(&str_field(&body, "scope")), scope_set(ALL_SCOPES));
}

#[actix_web::test]
async fn client_ids_are_unique() {
    let app = spawn_app().await;
    let request = json!({ "redirect_uris": ["https://app.example/callback"] });

    let first = register(&app, &request).await.json();
    let second = register(&app, &request).await.json();

    assert_ne!(first["client_id"], second["client_id"]);
    assert_ne!(first["client_secret"], second["client_secret"]);
}

#[actix_web::test]
async fn public_registration_gets_no_secret() {
    let app = spawn_app().await;

    let reply = register(
        &app,
        &json!({
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body["client_id"].is_string());
    assert!(
        body.get("client_secret").is_none(),
        "public client got a secret: {body}"
    );
}

#[actix_web::test]
async fn allowed_redirect_uris_are_https_or_loopback() {
    let app = spawn_app().await;

    for uri in [
        "https://app.example/callback",
        "https://app.example:8443/oauth/cb?tenant=1",
        "http://localhost/callback",
        "http://localhost:33418/callback",
        "http://127.0.0.1:9/cb",
        "http://[::1]:1234/cb",
    ] {
        let reply = register(&app, &json!({ "redirect_uris": [uri] })).await;
        assert_eq!(reply.status, 201, "{uri} refused: {}", reply.body);
    }
}

#[actix_web::test]
async fn other_redirect_uris_are_invalid_redirect_uri() {
    // MCP authorization: redirect URIs MUST be localhost or HTTPS; no fragments (OAuth 2.1 §2.3).
    let app = spawn_app().await;

    for uri in [
        "http://evil.example/cb",
        "myapp://cb",
        "javascript:alert(1)",
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
    // Implicit and password are gone in OAuth 2.1; client_credentials needs a secret.
    let app = spawn_app().await;

    for request in [
        json!({ "redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code", "implicit"] }),
        json!({ "redirect_uris": ["https://app.example/cb"], "grant_types": ["password"] }),
        json!({
            "redirect_uris": ["https://app.example/cb"],
            "grant_types": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_method": "none",
        }),
    ] {
        let reply = register(&app, &request).await;
        assert_oauth_error(&reply, 400, "invalid_client_metadata");
    }
}

#[actix_web::test]
async fn client_credentials_for_registered_clients_only_when_enabled() {
    // With open registration, client_credentials would hand anyone an MCP token with no
    // user behind it; it is an operator's choice.
    let request = json!({
        "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["authorization_code", "client_credentials"],
    });
    let app = spawn_app().await;
    let reply = register(&app, &request).await;
    assert_oauth_error(&reply, 400, "invalid_client_metadata");
    assert!(reply.body.contains("client_credentials"), "{}", reply.body);

    let app = spawn_app_with(|c| c.registered_client_credentials = true).await;
    let client = app.register_ok(&request).await;
    let (id, secret) = (
        str_field(&client, "client_id"),
        str_field(&client, "client_secret"),
    );
    let reply = Reply::read(
        app.token_request(
            &[("grant_type", "client_credentials")],
            Some((id.as_str(), secret.as_str())),
        )
        .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn unsupported_auth_method_is_invalid_client_metadata() {
    let app = spawn_app().await;
    let request = json!({
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
    });

    assert_oauth_error(
        &register(&app, &request).await,
        400,
        "invalid_client_metadata",
    );
}

#[actix_web::test]
async fn unknown_scope_is_invalid_client_metadata() {
    let app = spawn_app().await;
    let request = json!({
        "redirect_uris": ["https://app.example/cb"],
        "scope": "mcp:read mcp:admin",
    });

    assert_oauth_error(
        &register(&app, &request).await,
        400,
        "invalid_client_metadata",
    );
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
async fn oversized_body_is_rejected_with_413() {
    let app = spawn_app().await;
    let request = json!({
        "redirect_uris": ["https://app.example/cb"],
        "client_name": "x".repeat(70 * 1024),
    });

    let reply = register(&app, &request).await;

    assert_eq!(reply.status, 413, "{}", reply.body);
}

#[actix_web::test]
async fn registration_is_rate_limited_per_address() {
    let app = spawn_app_with(|config| config.registrations_per_hour = 2).await;
    let request = json!({ "redirect_uris": ["https://app.example/cb"] });

    assert_eq!(register(&app, &request).await.status, 201);
    assert_eq!(register(&app, &request).await.status, 201);
    let third = register(&app, &request).await;

    assert_eq!(third.status, 429, "{}", third.body);
}

#[actix_web::test]
async fn consent_page_escapes_the_registered_client_name() {
    // Client names are attacker-chosen and shown to the user.
    let app = spawn_app().await;
    let redirect_uri = "http://127.0.0.1:9100/cb";
    let client = app
        .register_ok(&json!({
            "redirect_uris": [redirect_uri],
            "client_name": "<img src=x onerror=alert(1)>Evil",
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = str_field(&client, "client_id");
    let (_, challenge) = pkce_pair();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
    ];

    let reply = Reply::read(app.get_authorize(&params).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        !reply.body.contains("<img src=x"),
        "client name rendered unescaped"
    );
    assert!(reply.body.contains("Evil"));
}

#[actix_web::test]
async fn public_client_completes_the_whole_flow() {
    // The path an MCP client such as Claude Code takes: register with `none`, then
    // authorization code + PKCE, then refresh, all without a secret.
    let app = spawn_app().await;
    let redirect_uri = "http://127.0.0.1:33418/callback";
    let client_id = app.register_public(&[redirect_uri]).await;

    let (code, verifier) = app
        .obtain_code_for(&client_id, redirect_uri, ALL_SCOPES)
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri),
    ];
    let reply = Reply::read(app.token_request(&form, None).await).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    let access_token = str_field(&tokens, "access_token");
    assert_eq!(tokens["token_type"], "Bearer");
    // The token opens an MCP session (a public client cannot introspect).
    let init = app.mcp_initialize(&access_token).await;
    assert_eq!(init.status(), 200);
    assert!(init.headers().contains_key("mcp-session-id"));

    // Public clients refresh with client_id only, and get a rotated refresh token.
    let refresh_token = str_field(&tokens, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let refreshed = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_ne!(str_field(&refreshed.json(), "refresh_token"), refresh_token);
}

#[actix_web::test]
async fn public_client_may_omit_its_single_redirect_uri() {
    // OAuth 2.1 §2.3.2: with exactly one registered URI, redirect_uri may be omitted.
    let app = spawn_app().await;
    let redirect_uri = "http://127.0.0.1:33419/callback";
    let client_id = app.register_public(&[redirect_uri]).await;
    let (_, challenge) = pkce_pair();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
    ];

    let reply = Reply::read(
        app.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
            .await,
    )
    .await;

    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(
        reply
            .location()
            .as_str()
            .starts_with(&format!("{redirect_uri}?")),
        "{}",
        reply.location()
    );
}

#[actix_web::test]
async fn confidential_client_completes_the_flow_with_its_secret() {
    let app = spawn_app().await;
    let redirect_uri = "https://app.example/callback";
    let (client_id, client_secret) = app.register_confidential(&[redirect_uri]).await;
    let (code, verifier) = app
        .obtain_code_for(&client_id, redirect_uri, "mcp:read")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];

    // Wrong secret first: refused, and the code is not burned by it.
    let wrong = Reply::read(
        app.token_request(&form, Some((client_id.as_str(), "wrong")))
            .await,
    )
    .await;
    assert_oauth_error(&wrong, 401, "invalid_client");

    let reply = Reply::read(
        app.token_request(&form, Some((client_id.as_str(), client_secret.as_str())))
            .await,
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "mcp:read");
}

// ----- round 2: redirect URI syntax, content type, bounds, lifetime of unused clients -----

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

/// The authorization request of the public client `client_id` for `redirect_uri`.
fn public_params<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
    ]
}

#[actix_web::test]
async fn early_errors_for_a_registered_client_are_shown_not_redirected() {
    // RFC 9700 §4.11.2: anyone can register a redirect URI, so a bad request for such a
    // client must not bounce the browser there before a person has seen the consent page.
    let app = spawn_app().await;
    let redirect_uri = "https://app.example/cb";
    let client_id = app.register_public(&[redirect_uri]).await;
    let (_, challenge) = pkce_pair();
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("response_type", Some("token"), "unsupported_response_type"),
        ("response_type", None, "response_type is required"),
        ("code_challenge", None, "code_challenge is required"),
        (
            "code_challenge_method",
            Some("plain"),
            "transform algorithm",
        ),
        ("scope", Some("admin"), "invalid_scope"),
        (
            "resource",
            Some("https://other.example/mcp"),
            "invalid_target",
        ),
    ];
    for (key, value, why) in cases {
        let mut params = public_params(&client_id, redirect_uri, &challenge);
        match value {
            Some(v) => set_param(&mut params, key, v),
            None => remove_param(&mut params, key),
        }
        let reply = Reply::read(app.get_authorize(&params).await).await;
        assert_error_page(&reply);
        assert!(reply.body.contains(why), "{key}: {}", reply.body);
    }
    // The demo client, added by the operator, keeps the redirect (OAuth 2.1 §4.1.2.1).
    let mut params = demo_authorize_params(&challenge, FLOW_STATE);
    set_param(&mut params, "response_type", "token");
    let reply = Reply::read(app.get_authorize(&params).await).await;
    assert_redirect_error(
        &app,
        &reply,
        DEMO_REDIRECT_URI,
        "unsupported_response_type",
        FLOW_STATE,
    );
    // After the user has interacted, a denial still goes back to the registered client.
    let params = public_params(&client_id, redirect_uri, &challenge);
    let denied = app
        .login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, false)
        .await;
    let reply = Reply::read(denied).await;
    assert_redirect_error(&app, &reply, redirect_uri, "access_denied", FLOW_STATE);
}

#[actix_web::test]
async fn control_characters_and_userinfo_in_the_requested_redirect_uri_get_an_error_page() {
    let app = spawn_app().await;
    let (_, challenge) = pkce_pair();
    for uri in [
        "http://localhost:8765/callback\u{0}",
        "http://localhost:8765/callback\r\nx",
        "http://demo@localhost:8765/callback",
    ] {
        let mut params = demo_authorize_params(&challenge, FLOW_STATE);
        set_param(&mut params, "redirect_uri", uri);
        let reply = Reply::read(app.get_authorize(&params).await).await;
        assert_error_page(&reply);
    }
}

#[actix_web::test]
async fn a_registered_client_never_issued_a_token_is_removed_after_the_ttl() {
    let app = spawn_app_with(|c| c.unused_client_ttl = Duration::from_secs(3600)).await;
    let redirect = "http://127.0.0.1:3000/cb";
    let unused = app.register_public(&[redirect]).await;
    let used = app.register_public(&[redirect]).await;
    let (code, verifier) = app.obtain_code_for(&used, redirect, ALL_SCOPES).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", used.as_str()),
        ("redirect_uri", redirect),
    ];
    let reply = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refresh_token = str_field(&reply.json(), "refresh_token");

    // Within the TTL nothing goes; a sweep after it removes only the client never used.
    app.clock.advance(Duration::from_secs(3599));
    assert_eq!(app.sweep_clients().await, 0);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.sweep_clients().await, 1);
    assert_eq!(app.sweep_clients().await, 0);
    let (_, challenge) = pkce_pair();
    let reply = Reply::read(
        app.get_authorize(&public_params(&unused, redirect, &challenge))
            .await,
    )
    .await;
    assert_error_page(&reply);
    assert!(reply.body.contains("unknown client_id"), "{}", reply.body);
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", used.as_str()),
    ];
    let refreshed = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    // The mark survives a restart; the removal too.
    let mut app = app;
    app.restart().await;
    app.clock.advance(Duration::from_secs(10 * 3600));
    assert_eq!(app.sweep_clients().await, 0);
    let reply = Reply::read(
        app.get_authorize(&public_params(&used, redirect, &challenge))
            .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn a_full_registry_answers_503_temporarily_unavailable() {
    let app = spawn_app_with(|c| {
        c.max_registered_clients = 2;
        c.unused_client_ttl = Duration::from_secs(60);
    })
    .await;
    let request = json!({ "redirect_uris": ["https://app.example/cb"] });
    assert_eq!(register(&app, &request).await.status, 201);
    assert_eq!(register(&app, &request).await.status, 201);
    let full = register(&app, &request).await;
    assert_oauth_error(&full, 503, "temporarily_unavailable");
    // The demo client (added by the operator) does not count, and room is made again as
    // unused registrations expire.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.sweep_clients().await, 2);
    assert_eq!(register(&app, &request).await.status, 201);
}
