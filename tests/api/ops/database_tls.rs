//! TLS to the database (issue 14): a PostgreSQL with `ssl = on` and a certificate from a CA
//! made by the test (openssl CLI). `sslmode=verify-full` with that CA given as
//! `--database-ca-file` connects (and the server's sessions are encrypted); without the CA
//! file, or reached by a name the certificate does not have, the server does not start and
//! says why. `verify-ca` checks the chain only, so the other name is accepted there.

use std::{net::TcpListener, path::Path, process::Command, sync::Arc};

use oauth_mcp::{clock::SystemClock, Config, StartError};

use crate::helpers::{spawn_app_with, PrivateCluster};

/// Runs openssl with `args` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.crt`) and a server certificate for IP address 127.0.0.1 only (`server.crt`,
/// `server.key`) in `dir`. ECDSA P-256: quick to make.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
    ];
    ca.extend(ec);
    ca.extend([
        "-subj",
        "/CN=oauth-mcp test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-keyout", "server.key", "-out", "server.csr"];
    csr.extend(ec);
    csr.extend(["-subj", "/CN=127.0.0.1"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write the extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// The server's start-up error on `url` with `ca_file`.
async fn start_error(url: &str, ca_file: Option<&Path>) -> StartError {
    let dir = tempfile::tempdir().expect("a data dir");
    let mut config = Config::default();
    config.data_dir = dir.path().to_owned();
    config.database_url = Some(url.into());
    config.database_ca_file = ca_file.map(Path::to_owned);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    match oauth_mcp::start(config, listener, Arc::new(SystemClock)).await {
        Ok(_) => panic!("the server started on {url} (CA file: {ca_file:?})"),
        Err(e) => e,
    }
}

/// Whether the openssl CLI runs; without it the test is skipped, except under `CI=true`.
fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the openssl CLI is missing, but CI=true: the TLS test must run in CI"
        );
        eprintln!("skipped the database TLS test: no openssl CLI to make its certificates");
    }
    found
}

#[actix_web::test]
async fn verify_full_connects_with_the_ca_file_and_refuses_without_it_or_for_another_name() {
    if !have_openssl() {
        return;
    }
    let Some(pg) = PrivateCluster::init(module_path!()) else {
        return;
    };
    let certs = tempfile::tempdir().expect("a directory for the certificates");
    make_certificates(certs.path());
    let read = |name: &str| std::fs::read(certs.path().join(name)).expect("read a certificate");
    pg.write_file("server.crt", &read("server.crt"), 0o644);
    pg.write_file("server.key", &read("server.key"), 0o600);
    pg.configure(&[
        "ssl = on".to_owned(),
        "ssl_cert_file = 'server.crt'".to_owned(),
        "ssl_key_file = 'server.key'".to_owned(),
    ]);
    pg.start();
    let ca_file = certs.path().join("ca.crt");
    let port = pg.port;
    let by_ip = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full");
    // The certificate names 127.0.0.1 only; "localhost" reaches the same server.
    let by_other_name =
        format!("postgres://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&sslmode=");

    // Without the CA: the issuer is unknown. A clear start error, no plain-text fallback.
    let err = start_error(&by_ip, None).await.to_string();
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    // With the CA, by a name the certificate does not have.
    let err = start_error(&format!("{by_other_name}verify-full"), Some(&ca_file))
        .await
        .to_string();
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    // A CA file that holds no certificate stops the start too.
    let empty = certs.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = start_error(&by_ip, Some(&empty)).await.to_string();
    assert!(err.contains("database CA file"), "{err}");

    // verify-ca checks the chain only: the other name is accepted.
    let other = format!("{by_other_name}verify-ca");
    let ca = ca_file.clone();
    let app = spawn_app_with(move |c| {
        c.database_url = Some(other.clone().into());
        c.database_ca_file = Some(ca.clone());
    })
    .await;
    app.exchange_code_demo().await;
    drop(app);

    // `oauth-mcp admin` on the same database takes the same flag (export reads through it).
    let admin = |ca: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-mcp"));
        cmd.args(["admin", "--database-url", &by_ip]);
        if let Some(ca) = ca {
            cmd.arg("--database-ca-file").arg(ca);
        }
        cmd.args(["client", "list"])
            .env_remove("OAUTH_MCP_DATABASE_CA_FILE")
            .output()
            .expect("run oauth-mcp admin")
    };
    let listed = admin(Some(&ca_file));
    assert!(
        listed.status.success(),
        "admin with the CA file: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("demo_client"));
    let refused = admin(None);
    assert!(
        !refused.status.success(),
        "admin without the CA file connected"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("UnknownIssuer"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // verify-full with the CA: the server runs, over TLS only.
    let (url, ca) = (by_ip.clone(), ca_file.clone());
    let app = spawn_app_with(move |c| {
        c.database_url = Some(url.clone().into());
        c.database_ca_file = Some(ca.clone());
    })
    .await;
    app.exchange_code_demo().await;
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the private cluster");
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
               FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("read pg_stat_ssl");
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(encrypted > 0, "the server holds TLS connections");
    assert_eq!(plain, 0, "no connection of the server is in plain text");
    // The change feed listens on a connection of its own, outside the pool: over TLS too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let feed: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                  WHERE a.application_name = 'oauth-mcp-change-feed' AND s.ssl",
                &[],
            )
            .await
            .expect("read pg_stat_ssl")
            .get(0);
        if feed >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change feed's connection is not there over TLS"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(app);
}
