//! Graceful shutdown of the real binary: SIGTERM and SIGINT stop it cleanly (exit code 0),
//! the listener closes, and what was acknowledged before the signal is on disk.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::helpers::{DEMO_BASIC, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

/// The binary serving `data_dir` on an ephemeral port, with the port it reported.
fn start_binary(data_dir: &std::path::Path) -> (Child, u16) {
    let (child, port, _) = start_binary_logging(data_dir, "info");
    (child, port)
}

/// Log lines a running binary has written so far.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Like [`start_binary`], with `RUST_LOG=rust_log`, collecting its JSON log lines.
pub fn start_binary_logging(data_dir: &std::path::Path, rust_log: &str) -> (Child, u16, Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-mcp"))
        .args(["--bind", "127.0.0.1:0", "--log-json", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let log: Log = Arc::default();
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the server logs before it exits")
            .expect("log line");
        log.lock().unwrap().push(line.clone());
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(addr) = event["fields"]["local_addr"].as_str() {
            break addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (child, port, log)
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits for the process to exit, at most `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not stop in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn client_credentials_token(port: u16) -> String {
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/token"))
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST /token");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn is_active(port: u16, token: &str) -> bool {
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/introspect"))
        .basic_auth(DEMO_BASIC.0, Some(DEMO_BASIC.1))
        .form(&[("token", token)])
        .send()
        .await
        .expect("POST /introspect")
        .json()
        .await
        .expect("JSON");
    body["active"] == true
}

#[actix_web::test]
async fn sigterm_and_sigint_stop_the_server_cleanly_and_keep_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tokens = Vec::new();
    for name in ["TERM", "INT"] {
        let (mut child, port) = start_binary(dir.path());
        tokens.push(client_credentials_token(port).await);
        signal(&child, name);
        let status = wait_exit(&mut child, Duration::from_secs(15));
        assert!(status.success(), "SIG{name}: {status}");
        // The listener is gone.
        let refused = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{port}/.well-known/oauth-authorization-server"
            ))
            .send()
            .await;
        assert!(refused.is_err(), "still answering after SIG{name}");
    }
    // Restarted on the same directory (which the stopped server released): every token
    // acknowledged before a signal is still valid.
    let (mut child, port) = start_binary(dir.path());
    for token in &tokens {
        assert!(is_active(port, token).await);
    }
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}
