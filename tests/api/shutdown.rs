//! Graceful shutdown of the real binary: SIGTERM and SIGINT stop it cleanly (exit code 0),
//! the listener closes, and what was acknowledged before the signal is on disk.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
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

/// What makes a run unclean in `log`: error-level events and anything on standard error.
pub fn log_problems(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|line| line.starts_with("stderr: ") || line.contains("\"level\":\"ERROR\""))
        .cloned()
        .collect()
}

/// Like [`start_binary`], with `RUST_LOG=rust_log`, collecting its JSON log lines.
pub fn start_binary_logging(data_dir: &std::path::Path, rust_log: &str) -> (Child, u16, Log) {
    start_binary_with(data_dir, rust_log, "127.0.0.1:0", &[])
        .unwrap_or_else(|error| panic!("the binary did not start: {error}"))
}

/// Starts the binary on `data_dir` listening on `bind`, with `RUST_LOG=rust_log` and the
/// extra command-line `args`; returns it with the port it reported and its JSON log lines
/// (stdout; standard error lines are added to the log prefixed with `stderr: `).
/// `Err(everything it wrote)` if it exits, or stays silent for 20 s, before it reports its
/// address; the process is then gone.
pub fn start_binary_with(
    data_dir: &std::path::Path,
    rust_log: &str,
    bind: &str,
    args: &[&str],
) -> Result<(Child, u16, Log), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-mcp"))
        .args(["--bind", bind, "--log-json", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let log: Log = Arc::default();
    let (port_tx, port_rx) = mpsc::channel();
    // Keep draining both streams so the server never blocks on a full pipe.
    let sink = Arc::clone(&log);
    let stdout_reader = std::thread::spawn(move || {
        let mut port_tx = Some(port_tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let port = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|event| {
                    let addr = event["fields"]["local_addr"].as_str()?.to_owned();
                    addr.rsplit(':').next()?.parse::<u16>().ok()
                });
            sink.lock().unwrap().push(line);
            if let (Some(port), Some(tx)) = (port, port_tx.as_ref()) {
                let _ = tx.send(port);
                port_tx = None;
            }
        }
    });
    let sink = Arc::clone(&log);
    let stderr_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(format!("stderr: {line}"));
        }
    });
    match port_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(port) => Ok((child, port, log)),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = stdout_reader.join();
            let _ = stderr_reader.join();
            let lines = log.lock().unwrap().join("\n");
            Err(format!("no address reported ({error}); output:\n{lines}"))
        }
    }
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
