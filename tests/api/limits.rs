//! Limits that keep hostile or broken clients from pinning the server: request-head and
//! keep-alive timeouts, header and body sizes, and actors that answer 503 instead of
//! letting requests hang.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::helpers::{spawn_app, spawn_app_with, Reply, DEMO_BASIC};

/// Reads until the server closes the connection or `limit` passes; answers what was read
/// and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into(), false),
        }
    }
}

#[actix_web::test]
async fn a_client_that_never_finishes_its_request_is_cut_off() {
    let app = spawn_app_with(|c| c.request_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stream
        .write_all(b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the connection stayed open; read {answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
}

#[actix_web::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_app_with(|c| c.keep_alive = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stream
        .write_all(
            b"GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        )
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[actix_web::test]
async fn oversized_headers_are_refused_and_the_server_carries_on() {
    let app = spawn_app().await;
    let big = "a".repeat(128 * 1024);
    let res = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("x-padding", big)
        .send()
        .await;
    match res {
        // actix-web answers 431, or drops the connection mid-request.
        Ok(res) => assert_eq!(res.status(), 431),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    let ok = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[actix_web::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let padding = "x".repeat(100 * 1024);
    let reply = Reply::read(
        app.token_request(
            &[("grant_type", "client_credentials"), ("padding", &padding)],
            Some(DEMO_BASIC),
        )
        .await,
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
}

#[actix_web::test]
async fn an_actor_that_does_not_answer_in_time_gives_503_not_a_hang() {
    use base64::Engine as _;
    use std::io::{Read as _, Write as _};
    // The actors run on this test's thread; HTTP workers have threads of their own. Block
    // this thread, and a token request must still be answered, with the standard "try later"
    // error, once the actor timeout passes.
    let app = spawn_app_with(|c| c.actor_timeout = Duration::from_millis(300)).await;
    // One request first, so the server's workers are surely running before this thread
    // (which also drives the server's start-up) is blocked.
    let warm = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let port = app.port;
    let client = std::thread::spawn(move || {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", DEMO_BASIC.0, DEMO_BASIC.1));
        let body = "grant_type=client_credentials";
        let request = format!(
            "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        (answer, started.elapsed())
    });
    std::thread::sleep(Duration::from_secs(2));
    let (answer, took) = client.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("temporarily_unavailable"), "{answer:?}");
    assert!(
        took < Duration::from_millis(1800),
        "answered after {took:?}"
    );
}
