//! `oauth-mcp admin` on a sled directory a running server holds goes through the server's
//! admin socket (`<data-dir>/admin.sock`, mode 0600): changes take effect in the running
//! server at once; bad requests get an error answer and the server keeps serving; a stale
//! socket is replaced, a live one is not; the real binary serves the socket and removes it
//! when it stops.

use std::{
    io::{Read as _, Write as _},
    os::unix::{fs::PermissionsExt as _, net::UnixStream},
};

use oauth_mcp::admin::socket::{AdminSocket, MAX_REQUEST_BYTES, SOCKET_NAME};

use super::*;

/// Runs the admin CLI on `dir`; answers (success, stdout, stderr). On a blocking thread:
/// the server under test answers on this test's own thread.
async fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        admin_cli(&dir, &args, stdin.as_deref())
    })
    .await
    .unwrap();
    outcome(out)
}

/// Sends raw bytes on the socket and answers the raw answer.
fn raw(path: &Path, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(path).unwrap();
    // The server may answer (and close) before reading everything of an oversized request.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[actix_web::test]
async fn admin_changes_a_running_server_through_its_socket() {
    let app = spawn_sled_app().await;
    let dir = app.data_dir.path();
    let socket = AdminSocket::serve(app.services(), dir).unwrap();
    let path = dir.join(SOCKET_NAME);
    assert_eq!(socket.path(), path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let (ok, stdout, stderr) = run(
        dir,
        &[
            "client",
            "add",
            "--redirect-uri",
            "https://agent.example/cb",
            "--grant-type",
            "client_credentials",
        ],
        None,
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stderr.contains("in use by a running server") && stderr.contains(SOCKET_NAME));
    let (id, secret) = (
        field(&stdout, "client_id:"),
        field(&stdout, "client_secret:"),
    );
    // The running server knows the client at once.
    let reply = client_credentials(&app, &id, &secret).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let (ok, _, stderr) = run(dir, &["user", "add", "alice"], Some("alice pw\n")).await;
    assert!(ok, "{stderr}");
    let alice = tokens_of(&app, "alice", "alice pw").await;
    let (ok, stdout, _) = run(dir, &["user", "list"], None).await;
    assert!(
        ok && stdout.contains("alice\n") && stdout.contains("2 users"),
        "{stdout}"
    );
    let (ok, _, stderr) = run(dir, &["user", "add", "alice"], Some("other\n")).await;
    assert!(!ok && stderr.contains("exists already"), "{stderr}");

    let (ok, stdout, _) = run(dir, &["user", "remove", "alice"], None).await;
    assert!(ok && stdout.contains("revoked 1 grant"), "{stdout}");
    assert!(!app.is_active(&str_field(&alice, "access_token")).await);
    let (reply, _) = sign_in(&app, "alice", "alice pw").await;
    assert_refused(&reply);

    let (ok, stdout, stderr) = run(dir, &["client", "remove", &id], None).await;
    assert!(ok, "{stdout}{stderr}");
    let reply = client_credentials(&app, &id, &secret).await;
    assert_eq!(reply.status, 401, "{}", reply.body);

    drop(socket);
    assert!(!path.exists(), "the socket file goes with the listener");
    // Without the socket, admin says why it cannot go on.
    let (ok, _, stderr) = run(dir, &["user", "list"], None).await;
    assert!(!ok && stderr.contains("admin socket"), "{stderr}");
}

#[actix_web::test]
async fn bad_requests_get_an_error_answer_and_the_socket_keeps_serving() {
    let app = spawn_sled_app().await;
    let socket = AdminSocket::serve(app.services(), app.data_dir.path()).unwrap();
    let path = socket.path().to_owned();
    let path2 = path.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let garbage = raw(&path2, b"not json\n");
        let unknown = raw(&path2, b"{\"op\":\"format_disk\"}\n");
        // Exactly the bound, without a newline: read whole, then refused (longer requests
        // are cut off at the bound the same way, but the unread rest resets the connection
        // before this client could read the answer).
        let huge = raw(&path2, &vec![b'x'; MAX_REQUEST_BYTES]);
        let unterminated = raw(&path2, b"{\"op\":\"list_users\"}");
        let good = raw(&path2, b"{\"op\":\"list_users\"}\n");
        [garbage, unknown, huge, unterminated, good]
    })
    .await
    .unwrap();
    let [garbage, unknown, huge, unterminated, good] = answers;
    for answer in [&garbage, &unknown] {
        assert!(
            answer.starts_with("{\"failed\":\"unreadable request"),
            "{answer}"
        );
    }
    assert!(huge.contains("longer than"), "{huge}");
    assert!(unterminated.contains("without a newline"), "{unterminated}");
    assert!(
        good.starts_with("{\"done\":") && good.contains("demo_user"),
        "{good}"
    );
    drop(socket);
}

#[actix_web::test]
async fn a_stale_socket_is_replaced_and_a_live_one_is_not() {
    let app = spawn_sled_app().await;
    let dir = app.data_dir.path();
    let path = dir.join(SOCKET_NAME);
    // A crashed server's socket: the file is there, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let socket = AdminSocket::serve(app.services(), dir).unwrap();
    let err = AdminSocket::serve(app.services(), dir).unwrap_err();
    assert!(err.to_string().contains("answers"), "{err}");
    // The refused second listener did not take the file away.
    let (ok, stdout, stderr) = run(dir, &["user", "list"], None).await;
    assert!(ok && stdout.contains("demo_user"), "{stdout}{stderr}");
    // Something that is not a socket is never replaced.
    drop(socket);
    std::fs::write(&path, b"not a socket").unwrap();
    let err = AdminSocket::serve(app.services(), dir).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    // No temporary directory is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".admin"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[actix_web::test]
async fn the_binary_serves_the_socket_and_removes_it_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_oauth-mcp"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = dir.path().join(SOCKET_NAME);
    for _ in 0..300 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(path.exists(), "the server serves its admin socket");
    let (ok, stdout, stderr) = run(dir.path(), &["user", "list"], None).await;
    assert!(ok && stdout.contains("demo_user"), "{stdout}{stderr}");
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.wait().unwrap().success());
    assert!(!path.exists(), "the socket is removed at shutdown");
    // Stopped: admin opens the directory itself again.
    let (ok, stdout, stderr) = run(dir.path(), &["user", "list"], None).await;
    assert!(ok && stdout.contains("demo_user"), "{stdout}{stderr}");
    assert!(!stderr.contains("admin socket"), "{stderr}");
}

#[actix_web::test]
async fn the_binary_serves_without_a_socket_it_cannot_create() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_NAME);
    std::fs::write(&path, b"not a socket").unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_oauth-mcp"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        // The log goes to standard output.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read the log until the server says what became of the socket (after it started, so
    // it holds the directory then).
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.contains("admin socket") && std::time::Instant::now() < deadline {
        match lines_rx.try_recv() {
            Ok(line) => log.push_str(&(line + "\n")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(log.contains("oauth-mcp listening"), "{log}");
    assert!(log.contains("admin socket not served"), "{log}");
    let (ok, _, stderr) = run(dir.path(), &["user", "list"], None).await;
    assert!(!ok && stderr.contains("admin socket"), "{stderr}");
    assert!(server.try_wait().unwrap().is_none(), "the server runs on");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
}

/// A socket owned by someone other than the data's owner is never sent a request (it may
/// carry a password). Needs to change a file's owner: skipped where that is not allowed.
#[actix_web::test]
async fn admin_sends_nothing_to_a_socket_of_another_owner() {
    let app = spawn_sled_app().await;
    let dir = app.data_dir.path();
    let socket = AdminSocket::serve(app.services(), dir).unwrap();
    if let Err(e) = std::os::unix::fs::lchown(socket.path(), Some(65534), None) {
        eprintln!("skipped: cannot change the socket's owner ({e})");
        return;
    }
    let (ok, _, stderr) = run(dir, &["user", "add", "mallory"], Some("pw\n")).await;
    assert!(!ok && stderr.contains("belongs to uid 65534"), "{stderr}");
    let (ok, _, stderr) = run(dir, &["user", "list"], None).await;
    assert!(!ok, "{stderr}");
    drop(socket);
}
