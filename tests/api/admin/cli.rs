//! `oauth-mcp admin` run as the binary: the command-line wiring (adding and listing clients,
//! the secret shown once) and its error messages.

use super::*;

#[actix_web::test]
async fn the_binary_adds_and_lists_clients_and_shows_the_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let added = admin_cli(
        dir.path(),
        &[
            "client",
            "add",
            "--name",
            "CLI agent",
            "--redirect-uri",
            "https://cli.example/cb",
            "--redirect-uri",
            "http://localhost:9000/cb",
            "--scope",
            "mcp:read",
        ],
        None,
    );
    let stdout = String::from_utf8(added.stdout).unwrap();
    assert!(
        added.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let id = field("client_id:");
    let secret = field("client_secret:");
    assert_eq!(secret.len(), 43, "{stdout}");
    assert_eq!(stdout.matches(secret.as_str()).count(), 1, "{stdout}");
    assert!(stdout.contains("will not be shown again"), "{stdout}");

    let listed = admin_cli(dir.path(), &["client", "list"], None);
    assert!(listed.status.success());
    let list = String::from_utf8(listed.stdout).unwrap();
    assert!(list.contains(&id) && list.contains("CLI agent"), "{list}");
    assert!(
        list.contains("https://cli.example/cb http://localhost:9000/cb"),
        "{list}"
    );
    assert!(
        !list.contains(&secret),
        "the secret is never shown again: {list}"
    );
    assert!(list.contains("1 client"), "{list}");
    assert!(list.contains("added by:      operator"), "{list}");

    // A password comes from standard input, never from an argument.
    let user = admin_cli(dir.path(), &["user", "add", "carol"], Some("carol's pw\n"));
    assert!(
        user.status.success(),
        "{}",
        String::from_utf8_lossy(&user.stderr)
    );
    let users = admin_cli(dir.path(), &["user", "list"], None);
    assert!(String::from_utf8_lossy(&users.stdout).contains("carol"));
    let bad = admin_cli(
        dir.path(),
        &["client", "add", "--redirect-uri", "http://evil.example/cb"],
        None,
    );
    assert!(!bad.status.success());
    assert_oauth_like(&String::from_utf8_lossy(&bad.stderr));

    // The server started on the directory honours what the binary wrote.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::default();
    config.public_url = Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    config.data_dir = dir.path().to_path_buf();
    let clock: Arc<dyn Clock> = ManualClock::new(START_UNIX);
    let server = oauth_mcp::start(config, listener, clock).await.unwrap();
    let app = attach(&format!("http://127.0.0.1:{port}"), port);
    let (reply, _) = sign_in(&app, "carol", "carol's pw").await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let page = app
        .consent_page(&[
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", "https://cli.example/cb"),
            ("code_challenge", pkce_pair().1.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", "mcp:read"),
        ])
        .await;
    assert_eq!(page.reply.status, 200, "{}", page.reply.body);
    server.stop().await;
}

/// The refusal names what is wrong with the redirect URI.
fn assert_oauth_like(stderr: &str) {
    assert!(
        stderr.starts_with("oauth-mcp admin: ") && stderr.contains("redirect URI"),
        "{stderr}"
    );
}
