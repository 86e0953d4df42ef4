//! Token issuance and authenticated MCP calls, measured two ways:
//!
//! - `actor/*`: messages straight to the actors (`Addr::send`), with durable (flushed) and
//!   relaxed (no flush wait) storage;
//! - `http/*`: real HTTP against a server started in-process on port 0, at concurrency 1,
//!   16 and 64, each virtual user on its own keep-alive connection.
//!
//! Run with `cargo bench`; `cargo bench -- actor` or `-- http/refresh` selects. Codes and
//! refresh-token chains are prepared before each timed burst, outside the measurement.

// Bench set-up panics on failure, like a test; criterion's macros generate undocumented items.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::{
    net::TcpListener,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use oauth_mcp::{
    actors::{
        code_issuer::{IssueCode, RedeemCode},
        token_ledger::{IntrospectToken, IssueTokens, RefreshTokens},
    },
    clock::SystemClock,
    domain::{
        scope::Scopes,
        secrets::{PresentedToken, RefreshToken},
    },
    loadtest::client::Conn,
    storage::GrantId,
    Config, RunningServer,
};
use sha2::{Digest as _, Sha256};

struct Bench {
    server: RunningServer,
    _dir: tempfile::TempDir,
}

async fn start(durable: bool) -> Bench {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    config.durable = durable;
    // One owner (demo_client) opens a session per virtual user here.
    config.mcp_max_sessions_per_owner = 256;
    config.public_url = Some(
        format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        )
        .parse()
        .expect("url"),
    );
    let server = oauth_mcp::start(config, listener, Arc::new(SystemClock))
        .await
        .expect("server starts");
    Bench { server, _dir: dir }
}

fn issue(b: &Bench) -> IssueTokens {
    IssueTokens {
        grant_id: GrantId::generate(),
        client_id: "demo_client".into(),
        subject: Some("demo_user".into()),
        scopes: Scopes::parse("mcp:read mcp:write").expect("scopes"),
        resource: b.server.services().settings.resource.clone(),
        with_refresh: true,
    }
}

fn pkce() -> (String, String) {
    let verifier = oauth_mcp::domain::secrets::random_token();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn seed_code(b: &Bench) -> (String, String) {
    let (verifier, challenge) = pkce();
    let s = b.server.services();
    let code = s
        .codes
        .send(IssueCode {
            client_id: "demo_client".into(),
            redirect_uri: "http://127.0.0.1:8765/callback".into(),
            redirect_uri_explicit: true,
            code_challenge: challenge,
            scopes: Scopes::parse("mcp:read mcp:write").expect("scopes"),
            resource: s.settings.resource.clone(),
            subject: "demo_user".into(),
        })
        .await
        .expect("mailbox")
        .wait()
        .await
        .expect("code");
    (code.secret().to_owned(), verifier)
}

fn actor_benches(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let mut group = c.benchmark_group("actor");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for durable in [true, false] {
        let mode = if durable { "durable" } else { "relaxed" };
        let b = sys.block_on(start(durable));
        let ledger = b.server.services().ledger.clone();
        group.bench_function(BenchmarkId::new("issue_pair", mode), |bench| {
            bench.iter(|| {
                sys.block_on(async {
                    ledger
                        .send(issue(&b))
                        .await
                        .expect("mailbox")
                        .wait()
                        .await
                        .expect("issued")
                })
            })
        });
        let access = sys
            .block_on(async { ledger.send(issue(&b)).await.expect("mailbox").wait().await })
            .expect("issued")
            .access_token;
        group.bench_function(BenchmarkId::new("validate_access", mode), |bench| {
            bench.iter(|| {
                sys.block_on(async {
                    let t = PresentedToken::new(access.secret().to_owned());
                    ledger
                        .send(IntrospectToken { token: t })
                        .await
                        .expect("mailbox")
                        .expect("ok")
                })
            })
        });
        let mut rt: RefreshToken = sys
            .block_on(async { ledger.send(issue(&b)).await.expect("mailbox").wait().await })
            .expect("issued")
            .refresh_token
            .expect("refresh");
        group.bench_function(BenchmarkId::new("rotate_refresh", mode), |bench| {
            bench.iter(|| {
                let msg = RefreshTokens {
                    refresh_token: rt.clone(),
                    client_id: "demo_client".into(),
                    scopes: None,
                };
                let next =
                    sys.block_on(async { ledger.send(msg).await.expect("mailbox").wait().await });
                rt = next.expect("rotated").refresh_token.expect("refresh");
            })
        });
        let codes = b.server.services().codes.clone();
        group.bench_function(BenchmarkId::new("redeem_code", mode), |bench| {
            bench.iter_custom(|iters| {
                sys.block_on(async {
                    let mut prepared = Vec::new();
                    for _ in 0..iters {
                        prepared.push(seed_code(&b).await.0);
                    }
                    let t0 = Instant::now();
                    for code in prepared {
                        let msg = RedeemCode {
                            code: oauth_mcp::domain::secrets::AuthorizationCode::new(code),
                            client_id: "demo_client".into(),
                        };
                        codes.send(msg).await.expect("mailbox").expect("redeemed");
                    }
                    t0.elapsed()
                })
            })
        });
        sys.block_on(b.server.stop());
    }
    group.finish();
}

const BASIC: &str = "Basic ZGVtb19jbGllbnQ6ZGVtb19zZWNyZXQ="; // demo_client:demo_secret

async fn post_token(conn: &mut Conn, body: &[u8]) -> oauth_mcp::loadtest::client::Response {
    let r = conn
        .request(
            "POST",
            "/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", BASIC),
            ],
            body,
        )
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

fn field(body: &[u8], name: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    v[name].as_str().expect("field").to_owned()
}

/// Runs one virtual user per entry of `per_user`, each on its own connection, and times
/// them all; `work(conn, state)` is what one user does. The users run on a thread of their
/// own, so the client does not share the actors' thread.
async fn burst<F, Fut>(addr: &str, conc: usize, per_user: Vec<Vec<Vec<u8>>>, work: F) -> Duration
where
    F: Fn(Conn, Vec<Vec<u8>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let addr = addr.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let elapsed = rt.block_on(async move {
            let conns: Vec<Conn> = (0..conc).map(|_| Conn::new(&addr, &addr)).collect();
            let t0 = Instant::now();
            let tasks: Vec<_> = conns
                .into_iter()
                .zip(per_user)
                .map(|(c, w)| tokio::spawn(work(c, w)))
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            t0.elapsed()
        });
        let _ = tx.send(elapsed);
    });
    rx.await.expect("burst thread")
}

fn http_benches(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let b = sys.block_on(start(true));
    let addr = b.server.local_addr().to_string();
    let mut group = c.benchmark_group("http");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for conc in [1usize, 16, 64] {
        group.bench_function(BenchmarkId::new("code_exchange", conc), |bench| {
            bench.iter_custom(|iters| {
                sys.block_on(async {
                    let mut per_user = vec![Vec::new(); conc];
                    for i in 0..iters {
                        let (code, verifier) = seed_code(&b).await;
                        let body = format!(
                            "grant_type=authorization_code&code={code}&code_verifier={verifier}"
                        );
                        per_user[(i as usize) % conc].push(body.into_bytes());
                    }
                    burst(&addr, conc, per_user, |mut conn, bodies| async move {
                        for body in bodies {
                            post_token(&mut conn, &body).await;
                        }
                    })
                    .await
                })
            })
        });
        group.bench_function(BenchmarkId::new("refresh_rotation", conc), |bench| {
            bench.iter_custom(|iters| {
                sys.block_on(async {
                    // One chain per virtual user, each rotating its own refresh token.
                    let mut per_user = Vec::new();
                    for u in 0..conc {
                        let n = iters as usize / conc + usize::from(u < iters as usize % conc);
                        let rt = b
                            .server
                            .services()
                            .ledger
                            .send(issue(&b))
                            .await
                            .expect("mailbox")
                            .wait()
                            .await
                            .expect("issued")
                            .refresh_token
                            .expect("rt");
                        per_user.push(vec![
                            rt.secret().as_bytes().to_vec(),
                            n.to_string().into_bytes(),
                        ]);
                    }
                    burst(&addr, conc, per_user, |mut conn, state| async move {
                        let mut rt = String::from_utf8(state[0].clone()).expect("utf8");
                        let n: usize = String::from_utf8(state[1].clone())
                            .expect("utf8")
                            .parse()
                            .expect("n");
                        for _ in 0..n {
                            let r = post_token(
                                &mut conn,
                                format!("grant_type=refresh_token&refresh_token={rt}").as_bytes(),
                            )
                            .await;
                            rt = field(&r.body, "refresh_token");
                        }
                    })
                    .await
                })
            })
        });
        group.bench_function(BenchmarkId::new("client_credentials", conc), |bench| {
            bench.iter_custom(|iters| {
                sys.block_on(async {
                    let per_user: Vec<Vec<Vec<u8>>> = (0..conc)
                        .map(|u| {
                            vec![
                                b"grant_type=client_credentials".to_vec();
                                iters as usize / conc + usize::from(u < iters as usize % conc)
                            ]
                        })
                        .collect();
                    burst(&addr, conc, per_user, |mut conn, bodies| async move {
                        for body in bodies {
                            post_token(&mut conn, &body).await;
                        }
                    })
                    .await
                })
            })
        });
        group.bench_function(BenchmarkId::new("tools_call", conc), |bench| {
            bench.iter_custom(|iters| {
                sys.block_on(async {
                    let mut setup = Conn::new(&addr, &addr);
                    let token = field(&post_token(&mut setup, b"grant_type=client_credentials").await.body, "access_token");
                    let mut per_user = Vec::new();
                    for u in 0..conc {
                        let n = iters as usize / conc + usize::from(u < iters as usize % conc);
                        per_user.push(vec![token.clone().into_bytes(), n.to_string().into_bytes()]);
                    }
                    burst(&addr, conc, per_user, |mut conn, state| async move {
                        let bearer = format!("Bearer {}", String::from_utf8(state[0].clone()).expect("utf8"));
                        let n: usize = String::from_utf8(state[1].clone()).expect("utf8").parse().expect("n");
                        let h = [("authorization", bearer.as_str()), ("content-type", "application/json"), ("accept", "application/json, text/event-stream")];
                        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
                        let r = conn.request("POST", "/mcp", &h, init).await.expect("init");
                        let session = r.header("mcp-session-id").expect("session").to_owned();
                        let mut hs = h.to_vec();
                        hs.push(("mcp-session-id", &session));
                        hs.push(("mcp-protocol-version", "2025-11-25"));
                        conn.request("POST", "/mcp", &hs, br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await.expect("initialized");
                        let call = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}"#;
                        for _ in 0..n {
                            let r = conn.request("POST", "/mcp", &hs, call).await.expect("call");
                            assert_eq!(r.status, 200);
                        }
                    })
                    .await
                })
            })
        });
    }
    group.finish();
    sys.block_on(b.server.stop());
}

criterion_group!(benches, actor_benches, http_benches);
criterion_main!(benches);
