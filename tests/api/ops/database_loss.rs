//! Loss of the database (issue 14): while PostgreSQL is down every request that needs it
//! fails fast with 503 (`temporarily_unavailable` and `Retry-After` on the OAuth endpoints,
//! a JSON-RPC error on `/mcp`, `/readyz` not ready), no credential is handed out, and
//! service resumes by itself when the database returns, without restarting the server.

use std::time::{Duration, Instant};

use crate::helpers::{spawn_app_with, str_field, PrivateCluster, Reply, TestApp, DEMO_BASIC};

/// "Fast": the pool gives up after 2 s; a little slack for a loaded machine.
const FAST: Duration = Duration::from_secs(4);

/// A stateless (2026-07-28) `tools/call` of `whoami` with `token`.
async fn whoami(app: &TestApp, token: &str) -> Reply {
    app.mcp_stateless_call(token, "whoami").await
}

/// Runs `request`, failing if it takes longer than [`FAST`] (a hang is a failure, not a
/// wait for the test runner's timeout).
async fn fast<F: std::future::Future<Output = Reply>>(what: &str, request: F) -> Reply {
    let started = Instant::now();
    let reply = tokio::time::timeout(FAST * 2, request)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {:?}", FAST * 2));
    assert!(
        started.elapsed() < FAST,
        "{what}: answered after {:?}",
        started.elapsed()
    );
    reply
}

/// An OAuth endpoint's answer while the database is down: 503, `temporarily_unavailable`,
/// `Retry-After`, and no token in it.
fn assert_unavailable(what: &str, reply: &Reply) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    assert_eq!(
        reply.json()["error"],
        "temporarily_unavailable",
        "{what}: {}",
        reply.body
    );
    assert!(
        reply.header("retry-after").is_some(),
        "{what}: no Retry-After"
    );
    assert!(
        !reply.body.contains("access_token"),
        "{what}: {}",
        reply.body
    );
}

async fn get(app: &TestApp, path: &str) -> Reply {
    Reply::read(app.client.get(app.url(path)).send().await.expect("GET")).await
}

async fn token_count(url: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the private cluster");
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT count(*) FROM tokens", &[])
        .await
        .expect("count tokens");
    row.get(0)
}

#[actix_web::test]
async fn requests_fail_fast_while_the_database_is_down_and_service_resumes_by_itself() {
    let Some(pg) = PrivateCluster::start_new(module_path!()) else {
        return;
    };
    let url = pg.url();
    let app = spawn_app_with(move |c| c.database_url = Some(url.clone().into())).await;

    // Before: a grant with its tokens, and a code not yet redeemed.
    let tokens = app.exchange_code_demo().await;
    let access = str_field(&tokens, "access_token");
    let refresh = str_field(&tokens, "refresh_token");
    let (code, verifier, _) = app.obtain_code().await;
    assert_eq!(whoami(&app, &access).await.status, 200);
    let committed = token_count(&pg.url()).await;

    pg.stop();

    // Every intent needing the database: 503 temporarily_unavailable, fast, no token.
    for round in 0..3 {
        let reply = fast("code exchange", app.exchange_demo_code(&code, &verifier)).await;
        assert_unavailable(&format!("code exchange {round}"), &reply);
        let reply = fast("refresh", app.refresh(&refresh, None)).await;
        assert_unavailable(&format!("refresh {round}"), &reply);
        let form = [("grant_type", "client_credentials")];
        let reply = fast("client_credentials", async {
            Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await).await
        })
        .await;
        assert!(
            reply.status == 503 || reply.status == 400,
            "client_credentials {round}: {}",
            reply.body
        );
        assert!(!reply.body.contains("access_token"), "{}", reply.body);
    }
    // /mcp with a token the server has not seen: it cannot be checked, so 503 with a
    // JSON-RPC error, not a 401 that would send the client to re-authorize.
    let reply = fast("/mcp", whoami(&app, "not-a-token-the-server-has-seen")).await;
    assert_eq!(reply.status, 503, "/mcp: {}", reply.body);
    assert!(reply.header("retry-after").is_some());
    assert_eq!(reply.json()["jsonrpc"], "2.0", "{}", reply.body);
    assert!(reply.json()["error"]["code"].is_i64(), "{}", reply.body);
    // The probes: alive, not ready.
    assert_eq!(fast("/readyz", get(&app, "/readyz")).await.status, 503);
    assert_eq!(get(&app, "/healthz").await.status, 200);

    pg.start();

    // Service resumes by itself: /readyz first, then every intent, same server process.
    let started = Instant::now();
    while get(&app, "/readyz").await.status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "/readyz did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing was committed while the database was down (and so nothing handed out).
    assert_eq!(token_count(&pg.url()).await, committed);
    // The code was not burned by the failed exchanges: it redeems now.
    let reply = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(reply.status, 200, "code exchange after: {}", reply.body);
    let reply = app.refresh(&refresh, None).await;
    assert_eq!(reply.status, 200, "refresh after: {}", reply.body);
    let fresh = str_field(&reply.json(), "access_token");
    assert_eq!(whoami(&app, &fresh).await.status, 200);
    assert!(app.is_active(&access).await);
    drop(app);
}
