//! `oauth-mcp admin export` / `import`: a sled deployment moved to PostgreSQL keeps its
//! clients, users and issued tokens; an empty store round-trips; a corrupt line is refused
//! with its number and nothing is written.

use oauth_mcp::admin::transfer::{self, Counts};

use super::*;
use crate::helpers::test_database;

/// The export of the storage `config` names, as of `now` (retrying while a server stopped
/// in this process still holds the sled directory for a moment).
async fn export(config: &Config, now: i64) -> (String, Counts) {
    for _ in 0..50 {
        let mut out = Vec::new();
        match transfer::export(config, &mut out, now).await {
            Ok(counts) => return (String::from_utf8(out).unwrap(), counts),
            Err(AdminError::InUse(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("export: {e}"),
        }
    }
    panic!("the data directory stayed in use");
}

#[actix_web::test]
async fn a_sled_deployment_moves_to_postgres_without_invalidating_its_tokens() {
    let Some(db) = test_database(module_path!()).await else {
        return;
    };
    let mut h = Offline::new();
    // On sled: a confidential client and a user added by the operator...
    let admin = h.admin().await;
    let agent = admin
        .add_client(&ClientSpec {
            redirect_uris: vec![REDIRECT_URI.into()],
            grant_types: vec!["client_credentials".into()],
            ..ClientSpec::default()
        })
        .await
        .unwrap();
    admin
        .add_user("alice", &password("alice pw"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (agent_id, agent_secret) = (
        agent.client.client_id.clone(),
        agent.secret.unwrap().secret().to_owned(),
    );
    // ... and tokens issued by the sled server, one grant revoked.
    let app = h.start().await;
    let alice = tokens_of(&app, "alice", "alice pw").await;
    let revoked = tokens_of(&app, "alice", "alice pw").await;
    let revoked_refresh = str_field(&revoked, "refresh_token");
    let reply = app
        .revoke(&revoked_refresh, Some("refresh_token"), Some(DEMO_BASIC))
        .await;
    assert_eq!(reply.status(), 200);
    let agent_token = client_credentials(&app, &agent_id, &agent_secret).await;
    assert_eq!(agent_token.status, 200, "{}", agent_token.body);
    let agent_access = str_field(&agent_token.json(), "access_token");
    h.stop().await;

    // Export the stopped directory, import into PostgreSQL (twice: idempotent).
    let now = h.clock.now();
    let (lines, exported) = export(&h.config(), now).await;
    // alice's two grants (one revoked through its refresh token, which is gone) and the
    // agent's access token.
    assert_eq!(
        (exported.tokens, exported.revoked_grants),
        (4, 1),
        "{exported:?}"
    );
    assert_eq!((exported.clients, exported.users), (2, 2), "{exported:?}");
    for line in lines.lines() {
        assert!(
            !line.contains("alice pw") && !line.contains(&agent_secret),
            "{line}"
        );
    }
    let sled_config = h.config();
    let key_file = h.dir.path().join("server.key");
    h.database_url = Some(db.url.clone());
    h.key_file = Some(key_file);
    let imported = transfer::import(&h.config(), lines.as_bytes())
        .await
        .unwrap();
    assert_eq!(imported, exported);
    let again = transfer::import(&h.config(), lines.as_bytes())
        .await
        .unwrap();
    assert_eq!(
        again,
        Counts {
            lifetimes: exported.lifetimes,
            revoked_grants: 1,
            ..Counts::default()
        }
    );
    assert_eq!(db.count("SELECT count(*) FROM users").await, 2);

    // A server on PostgreSQL with the same key file and address: everything still works.
    let app = h.start().await;
    assert!(app.is_active(&str_field(&alice, "access_token")).await);
    assert_eq!(mcp_status(&app, &agent_access).await, 200);
    let rotated = app.refresh(&str_field(&alice, "refresh_token"), None).await;
    assert_eq!(
        rotated.status, 200,
        "the old refresh token rotates: {}",
        rotated.body
    );
    assert!(
        app.is_active(&str_field(&rotated.json(), "access_token"))
            .await
    );
    // The revoked grant stays revoked.
    assert!(!app.is_active(&str_field(&revoked, "access_token")).await);
    assert_token_error(
        &app.refresh(&revoked_refresh, None).await,
        400,
        "invalid_grant",
    );
    // The old client secret and the old password.
    let reply = client_credentials(&app, &agent_id, &agent_secret).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fresh = tokens_of(&app, "alice", "alice pw").await;
    assert!(app.is_active(&str_field(&fresh, "access_token")).await);
    h.stop().await;

    // And back: the PostgreSQL export holds what was imported (and what came since).
    let (_, from_postgres) = export(&h.config(), now).await;
    assert!(from_postgres.tokens >= exported.tokens, "{from_postgres:?}");
    let _ = sled_config;
}

#[actix_web::test]
async fn an_empty_store_round_trips() {
    let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = |dir: &TempDir| {
        let mut c = Config::default();
        c.data_dir = dir.path().to_path_buf();
        c
    };
    let (lines, counts) = export(&config(&from), START_UNIX).await;
    assert_eq!(counts, Counts::default());
    assert_eq!(lines.lines().count(), 2, "a header and the end: {lines}");
    let imported = transfer::import(&config(&to), lines.as_bytes())
        .await
        .unwrap();
    assert_eq!(imported, Counts::default());
    let (again, _) = export(&config(&to), START_UNIX).await;
    assert_eq!(again, lines);
    if let Some(db) = test_database(module_path!()).await {
        let mut pg = config(&to);
        pg.database_url = Some(db.url.clone().into());
        assert_eq!(
            transfer::import(&pg, lines.as_bytes()).await.unwrap(),
            Counts::default()
        );
        assert_eq!(export(&pg, START_UNIX).await.0, lines);
    }
}

#[actix_web::test]
async fn a_corrupt_line_is_refused_with_its_number_and_nothing_is_written() {
    let source = tempfile::tempdir().unwrap();
    let added = admin_cli(
        source.path(),
        &["client", "add", "--redirect-uri", "https://a.example/cb"],
        None,
    );
    assert!(added.status.success());
    let exported = admin_cli(source.path(), &["export"], None);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let lines = String::from_utf8(exported.stdout).unwrap();
    // The header, the lifetime the admin's ledger recorded, the client, the end.
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert!(String::from_utf8_lossy(&exported.stderr).contains("exported 1 clients"));

    let target = tempfile::tempdir().unwrap();
    let mut corrupt: Vec<&str> = lines.lines().collect();
    corrupt.insert(2, r#"{"type":"token","v":1,"key":"AAAA","record":{}}"#);
    let refused = admin_cli(
        target.path(),
        &["import"],
        Some(&(corrupt.join("\n") + "\n")),
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    let unknown = lines.replacen(r#""type":"client""#, r#""type":"gadget""#, 1);
    let refused = admin_cli(target.path(), &["import"], Some(&unknown));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("unknown record type"),
        "{stderr}"
    );
    let truncated: String = lines.lines().take(2).map(|l| format!("{l}\n")).collect();
    let refused = admin_cli(target.path(), &["import"], Some(&truncated));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("truncated"));
    let listed = admin_cli(target.path(), &["client", "list"], None);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("0 clients"));

    // The intact export imports.
    let imported = admin_cli(target.path(), &["import"], Some(&lines));
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let listed = admin_cli(target.path(), &["client", "list"], None);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("1 client\n"));
}
