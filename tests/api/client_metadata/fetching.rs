//! Fetching and caching documents: caching as the headers say (and never stale when they
//! forbid it), one fetch for concurrent requests, failures remembered briefly, busy fetch
//! slots answered at once, a per-host share of the slots, and the last good copy standing in
//! while its host is down or no slot is free.

use super::*;

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
