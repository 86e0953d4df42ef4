//! `oauth-mcp admin --database-url` on a live PostgreSQL deployment: it runs while a server
//! does, reads and changes the same database through the store intents, and creates no key
//! file; its changes reach a running server, and every instance of a cluster of real
//! processes, within two seconds (through the change feed and the registry's read-through).

use super::*;
use futures_util::StreamExt as _;

use crate::helpers::{spawn_app_with, test_database, Cluster, DEMO_CLIENT_ID};

/// Runs `oauth-mcp admin --database-url URL ARGS...` (the data directory `dir` unused).
fn pg_admin(dir: &Path, url: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    let out = admin_cli(dir, &all, stdin);
    outcome(out)
}

/// Polls `check` for up to two seconds.
async fn within_two_seconds(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..40 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[actix_web::test]
async fn admin_works_on_a_postgres_database_while_a_server_runs_on_it() {
    let Some(db) = test_database(module_path!()).await else {
        return;
    };
    let url = db.url.clone();
    let running = spawn_app_with(move |c| c.database_url = Some(url.clone().into())).await;
    let unused = tempfile::tempdir().unwrap();
    let dir = unused.path();

    // It reads what the running server wrote (the demo records it seeded).
    let (ok, stdout, stderr) = pg_admin(dir, &db.url, &["user", "list"], None);
    assert!(ok && stdout.contains("demo_user"), "{stdout}{stderr}");
    let (ok, stdout, stderr) = pg_admin(
        dir,
        &db.url,
        &[
            "client",
            "add",
            "--redirect-uri",
            "https://a.example/cb",
            "--grant-type",
            "client_credentials",
        ],
        None,
    );
    assert!(ok, "{stdout}{stderr}");
    let (id, secret) = (
        field(&stdout, "client_id:"),
        field(&stdout, "client_secret:"),
    );
    let (ok, _, stderr) = pg_admin(dir, &db.url, &["user", "add", "alice"], Some("alice pw\n"));
    assert!(ok, "{stderr}");
    assert_eq!(db.count("SELECT count(*) FROM users").await, 2);
    assert!(
        std::fs::read_dir(dir).unwrap().next().is_none(),
        "admin on PostgreSQL writes nothing in a data directory (no key file, no sled)"
    );

    // A server starting on the database now uses them.
    let url = db.url.clone();
    let second = spawn_app_with(move |c| c.database_url = Some(url.clone().into())).await;
    let reply = client_credentials(&second, &id, &secret).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let alice = tokens_of(&second, "alice", "alice pw").await;
    // A revocation through admin is in the database: a server started after refuses them.
    let (ok, stdout, _) = pg_admin(dir, &db.url, &["revoke", "--user", "alice"], None);
    assert!(ok && stdout.contains("revoked 1 grant"), "{stdout}");
    let url = db.url.clone();
    let third = spawn_app_with(move |c| c.database_url = Some(url.clone().into())).await;
    assert!(!third.is_active(&str_field(&alice, "access_token")).await);
    assert_token_error(
        &third
            .refresh(&str_field(&alice, "refresh_token"), None)
            .await,
        400,
        "invalid_grant",
    );
    // The password is read from PostgreSQL's URL only to connect: never shown.
    let (ok, _, stderr) = pg_admin(
        dir,
        "postgres://app:s3cret@127.0.0.1:1/none",
        &["user", "list"],
        None,
    );
    assert!(
        !ok && stderr.contains("PostgreSQL database") && !stderr.contains("s3cret"),
        "{stderr}"
    );
    drop(running);
}

#[actix_web::test]
async fn admin_changes_reach_a_running_server_at_once() {
    let Some(db) = test_database(module_path!()).await else {
        return;
    };
    let url = db.url.clone();
    let app = spawn_app_with(move |c| c.database_url = Some(url.clone().into())).await;
    let unused = tempfile::tempdir().unwrap();
    let dir = unused.path();
    let (ok, stdout, _) = pg_admin(
        dir,
        &db.url,
        &[
            "client",
            "add",
            "--redirect-uri",
            "https://a.example/cb",
            "--grant-type",
            "client_credentials",
        ],
        None,
    );
    assert!(ok);
    let (id, secret) = (
        field(&stdout, "client_id:"),
        field(&stdout, "client_secret:"),
    );
    // Added: the running server issues it a token at once.
    let reply = client_credentials(&app, &id, &secret).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let (ok, _, _) = pg_admin(dir, &db.url, &["user", "add", "alice"], Some("one\n"));
    assert!(ok);
    let alice = tokens_of(&app, "alice", "one").await;
    // A password change: the old password is refused within two seconds.
    let (ok, _, _) = pg_admin(dir, &db.url, &["user", "passwd", "alice"], Some("two\n"));
    assert!(ok);
    assert!(
        within_two_seconds(async || sign_in(&app, "alice", "one").await.0.status != 303).await,
        "the old password still signs in"
    );
    // Revoked grants: refused within two seconds (token cache included).
    assert_eq!(
        mcp_status(&app, &str_field(&alice, "access_token")).await,
        200
    );
    let (ok, _, _) = pg_admin(dir, &db.url, &["revoke", "--user", "alice"], None);
    assert!(ok);
    let access = str_field(&alice, "access_token");
    assert!(
        within_two_seconds(async || mcp_status(&app, &access).await == 401).await,
        "the revoked token still works at /mcp"
    );
    // Removed: refused within two seconds.
    let (ok, stdout, stderr) = pg_admin(dir, &db.url, &["client", "remove", &id], None);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        within_two_seconds(async || client_credentials(&app, &id, &secret).await.status == 401)
            .await,
        "the removed client still gets tokens"
    );
}

#[actix_web::test]
async fn admin_changes_reach_every_instance_of_a_cluster() {
    let Some(cluster) = Cluster::start(module_path!(), 2, &[]).await else {
        return;
    };
    let url = cluster.db.url.clone();
    let unused = tempfile::tempdir().unwrap();
    let dir = unused.path();
    let (ok, stdout, stderr) = pg_admin(
        dir,
        &url,
        &[
            "client",
            "add",
            "--redirect-uri",
            "https://a.example/cb",
            "--grant-type",
            "client_credentials",
        ],
        None,
    );
    assert!(ok, "{stdout}{stderr}");
    let (id, secret) = (
        field(&stdout, "client_id:"),
        field(&stdout, "client_secret:"),
    );
    for i in 0..2 {
        let reply = client_credentials(cluster.app(i), &id, &secret).await;
        assert_eq!(reply.status, 200, "instance {i}: {}", reply.body);
    }
    // A user's grants revoked by admin: refused at /mcp by every instance (each checks the
    // token it issued, which sits in its token cache; the instances have different
    // addresses, so a token's audience is its own instance's).
    let mut tokens = Vec::new();
    for i in 0..2 {
        let demo = cluster.app(i).exchange_code_demo().await;
        let access = str_field(&demo, "access_token");
        assert_eq!(mcp_status(cluster.app(i), &access).await, 200);
        tokens.push(access);
    }
    let (ok, stdout, _) = pg_admin(dir, &url, &["revoke", "--user", DEMO_USER], None);
    assert!(ok && stdout.contains("revoked 2 grants"), "{stdout}");
    for (i, access) in tokens.iter().enumerate() {
        let app = cluster.app(i);
        assert!(
            within_two_seconds(async || mcp_status(app, access).await == 401).await,
            "instance {i} still accepts the revoked token"
        );
    }
    let (ok, _, _) = pg_admin(dir, &url, &["client", "remove", &id], None);
    assert!(ok);
    for i in 0..2 {
        let app = cluster.app(i);
        assert!(
            within_two_seconds(async || client_credentials(app, &id, &secret).await.status == 401)
                .await,
            "instance {i} still serves the removed client"
        );
    }
}

/// A client with many grants, each revocation slow (the change log's counter row is held
/// by another transaction for longer than a pooled connection may be waited for):
/// `admin revoke --client` still revokes every one, because it revokes a few at a time on
/// its two pooled connections. (All at once, the rest waited past the pool's timeout and
/// the command failed half done.)
#[actix_web::test]
async fn admin_revokes_many_grants_of_one_client_even_when_each_is_slow() {
    let Some(db) = test_database(module_path!()).await else {
        return;
    };
    let url = db.url.clone();
    let app = spawn_app_with(move |c| c.database_url = Some(url.clone().into())).await;
    const GRANTS: usize = 40;
    let tokens: Vec<String> = futures_util::stream::iter(0..GRANTS)
        .map(|_| app.demo_client_token())
        .buffer_unordered(8)
        .collect()
        .await;
    // Every revocation takes the counter row last: hold it for 2.5 s (the pool's wait is 2 s).
    let mut holder = db.client().await;
    let held = holder.transaction().await.unwrap();
    held.execute("SELECT seq FROM change_seq FOR UPDATE", &[])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = (dir.path().to_owned(), db.url.clone());
    let admin = tokio::task::spawn_blocking(move || {
        pg_admin(&path, &url, &["revoke", "--client", DEMO_CLIENT_ID], None)
    });
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    held.commit().await.unwrap();
    let (ok, stdout, stderr) = admin.await.unwrap();
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("{GRANTS} grant")), "{stdout}");
    assert_eq!(
        db.count("SELECT count(*) FROM revoked_grants").await,
        i64::try_from(GRANTS).unwrap()
    );
    for token in tokens.iter().step_by(10) {
        assert!(!app.is_active(token).await, "a token of a revoked grant");
    }
}
