//! Client ID metadata documents (MCP 2025-11-25; draft-ietf-oauth-client-id-metadata-
//! document): a URL as `client_id`, fetched from a local document host. The servers under
//! test run with the development settings (`client_metadata_allow_http`,
//! `client_metadata_allow_private`) unless a test checks what those settings guard.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{
    dev::ServerHandle,
    http::StatusCode,
    web::{self, Bytes},
    App, HttpRequest, HttpResponse, HttpServer,
};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

const NAME: &str = "Document Client";
const REDIRECT: &str = "http://127.0.0.1:3000/callback";

/// What the document host answers on one path.
#[derive(Clone)]
struct Route {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Duration,
    /// Send the body without `Content-Length` (chunked), so only counting can stop it.
    chunked: bool,
}

impl Route {
    fn json(doc: &Value) -> Self {
        Route {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: doc.to_string().into_bytes(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

#[derive(Default)]
struct HostState {
    routes: HashMap<String, Route>,
    hits: HashMap<String, usize>,
}

/// A local HTTP server standing in for the client's web site.
struct DocumentHost {
    port: u16,
    state: Arc<Mutex<HostState>>,
    handle: ServerHandle,
}

async fn serve(req: HttpRequest, state: web::Data<Arc<Mutex<HostState>>>) -> HttpResponse {
    let route = {
        let mut state = state.lock().unwrap();
        *state.hits.entry(req.path().to_owned()).or_default() += 1;
        state.routes.get(req.path()).cloned()
    };
    let Some(route) = route else {
        return HttpResponse::NotFound().finish();
    };
    actix_web::rt::time::sleep(route.delay).await;
    let mut response = HttpResponse::build(StatusCode::from_u16(route.status).unwrap());
    for (name, value) in &route.headers {
        response.append_header((*name, value.as_str()));
    }
    if route.chunked {
        let body = Bytes::from(route.body);
        response.streaming(futures_util::stream::once(async move {
            Ok::<_, actix_web::Error>(body)
        }))
    } else {
        response.body(route.body)
    }
}

impl DocumentHost {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(HostState::default()));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(serve))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        DocumentHost {
            port,
            state,
            handle,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn route(&self, path: &str, route: Route) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), route);
    }

    /// A valid document for `path` (its `client_id` is its own URL) with `extra` fields.
    fn document(&self, path: &str, extra: Value) -> Value {
        let mut doc = json!({
            "client_id": self.url(path),
            "client_name": NAME,
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc
    }

    /// Serves a valid document at `path`; returns its URL, the `client_id`.
    fn publish(&self, path: &str, headers: &[(&'static str, &str)]) -> String {
        let mut route = Route::json(&self.document(path, json!({})));
        for (name, value) in headers {
            route = route.header(name, value);
        }
        self.route(path, route);
        self.url(path)
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A server that may fetch from the document host (plain http on loopback).
async fn dev_app() -> TestApp {
    spawn_app_with(|c| {
        c.client_metadata_allow_http = true;
        c.client_metadata_allow_private = true;
        c.client_metadata_timeout = Duration::from_secs(2);
    })
    .await
}

fn authorize_params<'a>(client_id: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", ALL_SCOPES),
        ("state", FLOW_STATE),
    ]
}

/// GET /authorize for `client_id`, read to the end.
async fn authorize(app: &TestApp, client_id: &str) -> Reply {
    let (_, challenge) = pkce_pair();
    Reply::read(
        app.get_authorize(&authorize_params(client_id, &challenge))
            .await,
    )
    .await
}

/// The error page for `client_id`, which must mention `why`.
async fn assert_refused(app: &TestApp, client_id: &str, why: &str) {
    let reply = authorize(app, client_id).await;
    assert_error_page(&reply);
    assert!(
        reply.body.contains(why),
        "{client_id}: the page should say {why:?}: {}",
        reply.body
    );
}

async fn token(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    Reply::read(app.token_request(form, None).await).await
}

/// A refresh by the public client `client_id`.
async fn refresh_as(app: &TestApp, client_id: &str, refresh_token: &str) -> Reply {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    token(app, &form).await
}

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
async fn documents_are_cached_as_their_headers_say() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let cached = host.publish("/cached.json", &[("cache-control", "public, max-age=60")]);
    let uncached = host.publish("/uncached.json", &[("cache-control", "no-store")]);
    let default = host.publish("/default.json", &[]);

    for client_id in [&cached, &uncached, &default, &cached, &uncached, &default] {
        assert_eq!(authorize(&app, client_id).await.status, 200);
    }
    assert_eq!(host.hits("/cached.json"), 1);
    assert_eq!(host.hits("/uncached.json"), 2);
    assert_eq!(host.hits("/default.json"), 1);
    let metrics = scrape(&app).await;
    let fetches = |result: &str| {
        sample(
            &metrics,
            &format!("oauth_mcp_client_metadata_fetches_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(fetches("accepted"), 4.0, "cache hits are not fetches");
    assert_eq!(
        fetches("failed") + fetches("invalid") + fetches("blocked"),
        0.0
    );

    // max-age=60 is over after a minute; the five-minute default is not.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(authorize(&app, &cached).await.status, 200);
    assert_eq!(authorize(&app, &default).await.status, 200);
    assert_eq!(host.hits("/cached.json"), 2);
    assert_eq!(host.hits("/default.json"), 1);
    app.clock.advance(Duration::from_secs(300));
    assert_eq!(authorize(&app, &default).await.status, 200);
    assert_eq!(host.hits("/default.json"), 2);
}

#[actix_web::test]
async fn concurrent_requests_share_one_fetch_and_failures_are_remembered_briefly() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let path = "/popular.json";
    let client_id = host.url(path);
    host.route(
        path,
        Route {
            // Long enough that all eight requests arrive while the one fetch is running.
            delay: Duration::from_secs(1),
            ..Route::json(&host.document(path, json!({})))
        }
        .header("cache-control", "no-store"),
    );
    let replies = join_all((0..8).map(|_| authorize(&app, &client_id))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(host.hits(path), 1);

    // A broken document's failure is remembered for 30 s: requests meanwhile get the same
    // answer without a fetch; once fixed, it works after that.
    host.route(
        path,
        Route::json(&host.document("/elsewhere.json", json!({}))),
    );
    assert_refused(&app, &client_id, "does not equal the URL").await;
    host.publish(path, &[]);
    assert_refused(&app, &client_id, "does not equal the URL").await;
    assert_eq!(host.hits(path), 2);
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(authorize(&app, &client_id).await.status, 200);
    assert_eq!(host.hits(path), 3);
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
async fn too_many_fetches_at_once_are_answered_busy_not_queued() {
    let app = spawn_app_with(|c| {
        c.client_metadata_allow_http = true;
        c.client_metadata_allow_private = true;
        // One host here; the per-host limit has its own test.
        c.client_metadata_max_fetches_per_host = 16;
    })
    .await;
    let host = DocumentHost::start().await;
    let paths: Vec<String> = (0..24).map(|i| format!("/slow-{i}.json")).collect();
    for path in &paths {
        host.route(
            path,
            Route {
                // Long enough that all 24 requests arrive while the first 16 still wait.
                delay: Duration::from_secs(3),
                ..Route::json(&host.document(path, json!({})))
            },
        );
    }
    let urls: Vec<String> = paths.iter().map(|p| host.url(p)).collect();
    let replies = join_all(urls.iter().map(|url| authorize(&app, url))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let busy: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok + busy.len(), urls.len(), "only 200 or 503");
    // 16 fetch slots: the rest are refused at once rather than waiting.
    assert!(ok <= 16, "{ok} fetches ran at once");
    assert!(!busy.is_empty());
    assert!(busy.iter().all(|r| r.body.contains("try again shortly")));
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

// ----- round 2: per-host fetch limit, last good copy, early errors, redirect URI syntax ----

/// A valid document for `client_id` (any URL naming the document host).
fn document_for(client_id: &str, extra: Value) -> Value {
    let mut doc = json!({
        "client_id": client_id,
        "client_name": NAME,
        "redirect_uris": [REDIRECT],
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    doc
}

#[actix_web::test]
async fn one_host_cannot_take_every_fetch_slot() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let paths: Vec<String> = (0..8).map(|i| format!("/held-{i}.json")).collect();
    for path in &paths {
        host.route(
            path,
            Route {
                // Long enough that all eight requests arrive while the first four wait.
                delay: Duration::from_secs(1),
                ..Route::json(&host.document(path, json!({})))
            },
        );
    }
    // The same server under another name is another host: it still gets a slot.
    let other = format!("http://localhost:{}/other.json", host.port);
    host.route("/other.json", Route::json(&document_for(&other, json!({}))));
    let urls: Vec<String> = paths.iter().map(|p| host.url(p)).collect();
    let held = join_all(urls.iter().map(|url| authorize(&app, url)));
    let (replies, other_reply) = futures_util::join!(held, async {
        // Sent once the first host's four slots are taken.
        while (0..8)
            .map(|i| host.hits(&format!("/held-{i}.json")))
            .sum::<usize>()
            < 4
        {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        authorize(&app, &other).await
    });
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let busy = replies.iter().filter(|r| r.status == 503).count();
    assert_eq!(ok + busy, 8, "only 200 or 503");
    assert!(ok <= 4, "{ok} fetches from one host ran at once");
    assert!(busy >= 4);
    assert_eq!(other_reply.status, 200, "{}", other_reply.body);
}

#[actix_web::test]
async fn the_last_good_document_stands_in_while_its_host_is_down() {
    let app = dev_app().await;
    let host = DocumentHost::start().await;
    let down = |status: u16| Route {
        status,
        ..Route::json(&json!({}))
    };
    let client_id = host.publish("/client.json", &[("cache-control", "max-age=60")]);
    assert_eq!(authorize(&app, &client_id).await.status, 200);

    // Expired, and the host answers 503: the last good copy is used, and the failure is
    // remembered (no fetch for each request).
    host.route("/client.json", down(503));
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(authorize(&app, &client_id).await.status, 200);
    assert_eq!(authorize(&app, &client_id).await.status, 200);
    assert_eq!(host.hits("/client.json"), 2);
    // 404 during an outage counts as transient too; the whole flow works on the copy.
    host.route("/client.json", down(404));
    app.clock.advance(Duration::from_secs(31));
    let (code, verifier) = app.obtain_code_for(&client_id, REDIRECT, ALL_SCOPES).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    assert_eq!(token(&app, &form).await.status, 200);
    // For an hour past expiry at most (the default), then the failure is shown.
    app.clock.advance(Duration::from_secs(3600));
    assert_refused(&app, &client_id, "answered 404").await;

    // A deliberate answer ends the copy at once: 410, or a document that is now invalid.
    for (path, gone) in [
        ("/withdrawn.json", down(410)),
        (
            "/changed.json",
            Route::json(&host.document("/other.json", json!({}))),
        ),
    ] {
        let client_id = host.publish(path, &[("cache-control", "max-age=60")]);
        assert_eq!(authorize(&app, &client_id).await.status, 200);
        host.route(path, gone);
        app.clock.advance(Duration::from_secs(61));
        assert_eq!(authorize(&app, &client_id).await.status, 400, "{path}");
        // Still gone when the remembered failure has expired and the host is down.
        host.route(path, down(503));
        app.clock.advance(Duration::from_secs(31));
        assert_eq!(authorize(&app, &client_id).await.status, 400, "{path}");
    }
}

#[actix_web::test]
async fn a_document_is_never_used_stale_when_its_cache_control_forbids_it() {
    let app = spawn_app_with(|c| {
        c.client_metadata_allow_http = true;
        c.client_metadata_allow_private = true;
        c.client_metadata_stale_if_error = Duration::from_secs(600);
    })
    .await;
    let host = DocumentHost::start().await;
    let cases = [
        ("/no-store.json", "max-age=60, no-store", 0),
        ("/revalidate.json", "max-age=60, must-revalidate", 0),
        ("/no-cache.json", "no-cache", 0),
        ("/shared.json", "s-maxage=60", 0),
        // stale-if-error (RFC 5861) grants 120 s of the 600 the server would allow.
        ("/short.json", "max-age=60, stale-if-error=120", 120),
        ("/silent.json", "max-age=60", 600),
    ];
    for (path, cache_control, _) in cases {
        let client_id = host.publish(path, &[("cache-control", cache_control)]);
        assert_eq!(authorize(&app, &client_id).await.status, 200, "{path}");
        host.route(
            path,
            Route {
                status: 503,
                ..Route::json(&json!({}))
            },
        );
    }
    app.clock.advance(Duration::from_secs(61));
    for (path, _, stale) in cases {
        let expected = if stale > 0 { 200 } else { 400 };
        assert_eq!(
            authorize(&app, &host.url(path)).await.status,
            expected,
            "{path}"
        );
    }
    app.clock.advance(Duration::from_secs(120));
    for (path, _, stale) in cases {
        let expected = if stale > 120 { 200 } else { 400 };
        assert_eq!(
            authorize(&app, &host.url(path)).await.status,
            expected,
            "{path}"
        );
    }
    app.clock.advance(Duration::from_secs(600));
    assert_eq!(authorize(&app, &host.url("/silent.json")).await.status, 400);
}

#[actix_web::test]
async fn the_last_good_document_stands_in_when_no_fetch_slot_is_free() {
    let app = spawn_app_with(|c| {
        c.client_metadata_allow_http = true;
        c.client_metadata_allow_private = true;
        c.client_metadata_max_fetches_per_host = 1;
    })
    .await;
    let host = DocumentHost::start().await;
    let client_id = host.publish("/client.json", &[("cache-control", "max-age=60")]);
    assert_eq!(authorize(&app, &client_id).await.status, 200);
    host.route(
        "/slow.json",
        Route {
            delay: Duration::from_secs(2),
            ..Route::json(&host.document("/slow.json", json!({})))
        },
    );
    app.clock.advance(Duration::from_secs(61));
    let slow = host.url("/slow.json");
    let (slow_reply, reply) = futures_util::join!(authorize(&app, &slow), async {
        // Sent while the slow fetch holds the host's only slot.
        while host.hits("/slow.json") == 0 {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        authorize(&app, &client_id).await
    });
    assert_eq!(slow_reply.status, 200);
    assert_eq!(reply.status, 200, "the copy stands in: {}", reply.body);
    assert_eq!(host.hits("/client.json"), 1, "no slot, no fetch");
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
