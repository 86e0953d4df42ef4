//! Documents and URLs that are refused, each with an error page and never a redirect: bad
//! documents, bad fetches (size, redirects, timeouts), plain http and private addresses unless
//! allowed (never contacted), failed TLS handshakes, hosts outside the trust list, control
//! characters or userinfo in redirect URIs.

use super::*;

#[actix_web::test]
async fn unusable_documents_get_an_error_page_never_a_redirect() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let big = json!({ "client_uri": "x".repeat(6 * 1024) });
    let cases: Vec<(&str, Route, &str)> = vec![
        (
            "/mismatch.json",
            Route::json(&host.document("/other.json", json!({}))),
            "does not equal the URL",
        ),
        (
            "/not-json.json",
            Route {
                body: b"<html>hello</html>".to_vec(),
                ..Route::json(&json!({}))
            },
            "not a JSON object",
        ),
        (
            "/secret.json",
            Route::json(&host.document("/secret.json", json!({ "client_secret": "s" }))),
            "client_secret",
        ),
        (
            "/basic.json",
            Route::json(&host.document(
                "/basic.json",
                json!({ "token_endpoint_auth_method": "client_secret_basic" }),
            )),
            "token_endpoint_auth_method must be none",
        ),
        (
            "/nameless.json",
            Route::json(&host.document("/nameless.json", json!({ "client_name": null }))),
            "client_name is required",
        ),
        (
            "/large.json",
            Route::json(&host.document("/large.json", big.clone())),
            "larger than 5120 bytes",
        ),
        (
            "/large-chunked.json",
            Route {
                chunked: true,
                ..Route::json(&host.document("/large-chunked.json", big))
            },
            "larger than 5120 bytes",
        ),
        (
            "/gone.json",
            Route {
                status: 404,
                ..Route::json(&json!({}))
            },
            "answered 404",
        ),
        (
            "/moved.json",
            Route {
                status: 302,
                ..Route::json(&json!({}))
            }
            .header("location", &host.url("/target.json")),
            "redirects are not followed",
        ),
        (
            "/slow.json",
            Route {
                delay: Duration::from_secs(10),
                ..Route::json(&host.document("/slow.json", json!({})))
            },
            "no answer within 2 s",
        ),
    ];
    for (path, route, why) in cases {
        host.route(path, route);
        let started = Instant::now();
        assert_refused(&app, &host.url(path), why).await;
        // The slow document is given up on at the time limit, not waited for.
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
    }
    host.publish("/target.json", &[]);
    assert_eq!(host.hits("/target.json"), 0, "a redirect was followed");
    // Bad URLs are refused before anything is fetched.
    assert_refused(
        &app,
        &host.url("/client.json#f"),
        "must not contain a fragment",
    )
    .await;
    assert_refused(&app, &host.url("/a/../client.json"), "path segments").await;
    assert_refused(&app, &host.url(""), "must contain a path").await;
    assert_eq!(host.hits("/client.json"), 0);
}

#[actix_web::test]
async fn plain_http_and_private_addresses_are_refused_unless_allowed() {
    let host = DocumentHost::start().await;
    host.publish("/client.json", &[]);
    let local_name = format!("http://localhost:{}/client.json", host.port);
    let local_ip = host.url("/client.json");

    let strict = spawn_app().await;
    assert_refused(&strict, &local_ip, "must use https").await;

    // http allowed, private addresses not: neither the IP literal nor a name that resolves
    // to loopback is contacted.
    let http_only = spawn_app_with(|c| c.client_metadata_allow_http = true).await;
    assert_refused(&http_only, &local_ip, "not a public address").await;
    assert_refused(&http_only, &local_name, "not a public address").await;
    assert_eq!(host.hits("/client.json"), 0);
    let blocked = sample(
        &scrape(&http_only).await,
        "oauth_mcp_client_metadata_fetches_total{result=\"blocked\"}",
    );
    assert_eq!(blocked, 2.0);

    // With both development settings the same document is usable.
    let dev = dev_app().await;
    let reply = authorize(&dev, &local_ip).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(host.hits("/client.json"), 1);
}

#[actix_web::test]
async fn https_documents_need_a_tls_handshake_that_succeeds() {
    // https only (no development http setting), loopback allowed so the test can listen.
    let app = spawn_app_with(|c| c.client_metadata_allow_private = true).await;
    // A peer that answers the TLS ClientHello with plain HTTP, as a misconfigured port would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = actix_web::rt::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let client_id = format!("https://127.0.0.1:{port}/client.json");
    assert_refused(&app, &client_id, "the TLS handshake failed").await;
    peer.abort();
}

#[actix_web::test]
async fn a_trust_list_limits_the_hosts_documents_come_from() {
    let host = DocumentHost::start().await;
    let client_id = host.publish("/client.json", &[]);
    let trusting = |hosts: &'static [&'static str]| {
        spawn_app_with(move |c| {
            c.client_metadata_allow_http = true;
            c.client_metadata_allow_private = true;
            c.client_metadata_trusted_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        })
    };
    let protected = trusting(&["app.example", "*.vendor.example"]).await;
    assert_refused(
        &protected,
        &client_id,
        "does not accept client metadata documents from",
    )
    .await;
    assert_eq!(
        host.hits("/client.json"),
        0,
        "an untrusted host is not even fetched"
    );
    let listed = trusting(&["127.0.0.1"]).await;
    assert_eq!(authorize(&listed, &client_id).await.status, 200);
    assert_eq!(host.hits("/client.json"), 1);
}

#[actix_web::test]
async fn documents_with_control_characters_or_userinfo_in_redirect_uris_are_refused() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    for (i, uri) in [
        "http://127.0.0.1:3000/callback\u{0}",
        "http://127.0.0.1:3000/call back",
        "http://user@127.0.0.1:3000/callback",
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/bad-{i}.json");
        host.route(
            &path,
            Route::json(&host.document(&path, json!({ "redirect_uris": [uri] }))),
        );
        let reply = authorize(&app, &host.url(&path)).await;
        assert_error_page(&reply);
        assert!(
            reply.body.contains("redirect URI"),
            "{uri:?}: {}",
            reply.body
        );
    }
}
