//! The demo client and user (published secret and password) exist only on a server
//! reachable on loopback alone: seeded there, not seeded elsewhere, and a server reachable
//! beyond loopback refuses to start while its data holds them, unless `keep_demo`. Checked
//! at start-up, with real listeners (a wildcard bind is the network-facing case).

use std::{net::TcpListener, sync::Arc, time::Duration};

use oauth_mcp::{
    admin::Admin,
    clock::{Clock, ManualClock},
    storage::StorageError,
    Config, RunningServer, StartError,
};
use tempfile::TempDir;
use url::Url;

use crate::helpers::{attach, Reply, DEMO_BASIC, DEMO_PASSWORD, DEMO_USER, START_UNIX};

/// Starts a server on `bind` (port 0) over `dir`, with `configure` applied; the public URL
/// is the loopback address of the port unless `configure` sets another. Retries while a
/// closed admin session still holds the directory.
async fn start(
    dir: &TempDir,
    bind: &str,
    configure: impl Fn(&mut Config),
) -> Result<RunningServer, StartError> {
    for _ in 0..50 {
        let listener = TcpListener::bind(bind).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = Config::default();
        config.public_url = Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
        config.data_dir = dir.path().to_path_buf();
        configure(&mut config);
        let clock: Arc<dyn Clock> = ManualClock::new(START_UNIX);
        match oauth_mcp::start(config, listener, clock).await {
            Err(StartError::Storage(StorageError::InUse(_))) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    panic!("the data directory stayed in use");
}

/// A `client_credentials` request with the demo secret: the status.
async fn demo_client_credentials(server: &RunningServer) -> u16 {
    let port = server.local_addr().port();
    let app = attach(&format!("http://127.0.0.1:{port}"), port);
    let form = [("grant_type", "client_credentials")];
    Reply::read(app.token_request(&form, Some(DEMO_BASIC)).await)
        .await
        .status
}

/// A data directory holding the demo records (seeded by a loopback-only server).
async fn dir_with_demo_records() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, "127.0.0.1:0", |_| {}).await.unwrap();
    assert_eq!(demo_client_credentials(&server).await, 200, "seeded");
    server.stop().await;
    dir
}

#[actix_web::test]
async fn a_server_reachable_beyond_loopback_does_not_seed_the_demo_records() {
    for (bind, public_url) in [
        ("0.0.0.0:0", None),
        ("127.0.0.1:0", Some("https://auth.example.com")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(&dir, bind, |c| {
            if let Some(url) = public_url {
                c.public_url = Some(Url::parse(url).unwrap());
            }
        })
        .await
        .unwrap();
        // The guessable demo secret gets nothing from the network.
        assert_eq!(demo_client_credentials(&server).await, 401, "{bind}");
        server.stop().await;
        // Nothing was written: the same directory later starts anywhere.
        let again = start(&dir, bind, |_| {}).await.unwrap();
        again.stop().await;
    }
}

#[actix_web::test]
async fn demo_records_stop_a_server_reachable_beyond_loopback_with_the_way_out() {
    let dir = dir_with_demo_records().await;
    for (bind, public_url) in [
        ("0.0.0.0:0", None),
        ("127.0.0.1:0", Some("https://auth.example.com")),
    ] {
        let err = start(&dir, bind, |c| {
            if let Some(url) = public_url {
                c.public_url = Some(Url::parse(url).unwrap());
            }
        })
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StartError::DemoReachable(_)), "{message}");
        for hint in [
            "oauth-mcp admin",
            "client remove demo_client",
            "user remove demo_user",
            "--keep-demo",
        ] {
            assert!(message.contains(hint), "{hint:?} missing from: {message}");
        }
    }
    // Knowingly kept: the server starts and the demo client works.
    let kept = start(&dir, "0.0.0.0:0", |c| c.keep_demo = true)
        .await
        .unwrap();
    assert_eq!(demo_client_credentials(&kept).await, 200);
    kept.stop().await;
    // A loopback-only server starts on the same data as before.
    let local = start(&dir, "127.0.0.1:0", |_| {}).await.unwrap();
    local.stop().await;
}

#[actix_web::test]
async fn removing_the_demo_records_as_the_message_says_lets_the_server_start() {
    let dir = dir_with_demo_records().await;
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    let clock: Arc<dyn Clock> = ManualClock::new(START_UNIX);
    let admin = loop {
        match Admin::open(config.clone(), Arc::clone(&clock)).await {
            Ok(admin) => break admin,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    admin.remove_client("demo_client").await.unwrap();
    admin.remove_user(DEMO_USER).await.unwrap();
    admin.close().await.unwrap();
    let server = start(&dir, "0.0.0.0:0", |_| {}).await.unwrap();
    assert_eq!(demo_client_credentials(&server).await, 401);
    assert_ne!(
        DEMO_PASSWORD, "",
        "the demo password is public, hence all this"
    );
    server.stop().await;
}
