//! The `Admin` library against a data directory, then the real server on that directory over
//! HTTP: added clients and users work, removed ones do not, password changes and grant
//! revocations take effect, and a directory a running server holds is refused.

use super::*;

#[actix_web::test]
async fn clients_added_offline_get_tokens_and_removed_ones_do_not() {
    let mut h = Offline::new();
    let admin = h.admin().await;
    let confidential = admin
        .add_client(&ClientSpec {
            name: Some("Billing agent".into()),
            redirect_uris: vec![REDIRECT_URI.into()],
            grant_types: vec![
                "authorization_code".into(),
                "refresh_token".into(),
                "client_credentials".into(),
            ],
            scopes: vec!["mcp:read".into()],
            ..ClientSpec::default()
        })
        .await
        .unwrap();
    let public = admin
        .add_client(&ClientSpec {
            redirect_uris: vec![REDIRECT_URI.into()],
            public: true,
            ..ClientSpec::default()
        })
        .await
        .unwrap();
    assert!(public.secret.is_none(), "public clients have no secret");
    let refused = admin
        .add_client(&ClientSpec {
            redirect_uris: vec!["http://evil.example/cb".into()],
            ..ClientSpec::default()
        })
        .await;
    assert!(
        matches!(&refused, Err(AdminError::Invalid(m)) if m.contains("redirect URI")),
        "{refused:?}"
    );
    let listed = admin.clients().await.unwrap();
    assert_eq!(listed.len(), 2);
    admin.close().await.unwrap();

    let id = confidential.client.client_id.clone();
    let secret = confidential.secret.unwrap().secret().to_owned();
    let app = h.start().await;
    // The code flow with the new client's secret...
    let (code, verifier) = app.obtain_code_for(&id, REDIRECT_URI, "mcp:read").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let reply = Reply::read(app.token_request(&form, Some((&id, &secret))).await).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let user_access = str_field(&reply.json(), "access_token");
    // ...client_credentials, which the operator granted...
    let reply = client_credentials(&app, &id, &secret).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let machine_access = str_field(&reply.json(), "access_token");
    assert_eq!(mcp_status(&app, &machine_access).await, 200);
    // ...and only with that secret.
    assert_basic_challenge(&client_credentials(&app, &id, "wrong").await);
    // The public client completes the code flow with PKCE alone.
    let public_id = public.client.client_id.clone();
    let (code, verifier) = app
        .obtain_code_for(&public_id, REDIRECT_URI, "mcp:read")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", public_id.as_str()),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let reply = Reply::read(app.token_request(&form, None).await).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    h.stop().await;

    let admin = h.admin().await;
    let revoked = admin.remove_client(&id).await.unwrap();
    assert_eq!(
        revoked.grants, 2,
        "the code grant and the client_credentials grant"
    );
    let again = admin.remove_client(&id).await;
    assert!(
        matches!(again, Err(AdminError::UnknownClient(_))),
        "{again:?}"
    );
    admin.close().await.unwrap();

    let app = h.start().await;
    assert_basic_challenge(&client_credentials(&app, &id, &secret).await);
    assert_eq!(mcp_status(&app, &machine_access).await, 401);
    assert_eq!(mcp_status(&app, &user_access).await, 401);
    let (_, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, FLOW_STATE);
    set_param(&mut params, "client_id", &id);
    set_param(&mut params, "redirect_uri", REDIRECT_URI);
    assert_error_page(&Reply::read(app.get_authorize(&params).await).await);
    h.stop().await;
}

#[actix_web::test]
async fn users_added_offline_sign_in_and_password_changes_take_effect() {
    let mut h = Offline::new();
    let admin = h.admin().await;
    admin
        .add_user("alice", &password("first pw"))
        .await
        .unwrap();
    let taken = admin.add_user("alice", &password("other")).await;
    assert!(matches!(taken, Err(AdminError::UserExists(_))), "{taken:?}");
    let unnamed = admin.add_user("a b", &password("pw")).await;
    assert!(
        matches!(unnamed, Err(AdminError::Invalid(_))),
        "{unnamed:?}"
    );
    let empty = admin.add_user("bob", &password("")).await;
    assert!(matches!(empty, Err(AdminError::Invalid(_))), "{empty:?}");
    assert_eq!(admin.users().await.unwrap(), ["alice"]);
    admin.close().await.unwrap();

    let app = h.start().await;
    let tokens = tokens_of(&app, "alice", "first pw").await;
    let introspected = app.introspect(&str_field(&tokens, "access_token")).await;
    assert_eq!(introspected["sub"], "alice");
    h.stop().await;

    let admin = h.admin().await;
    admin
        .set_password("alice", &password("second pw"))
        .await
        .unwrap();
    let unknown = admin.set_password("carol", &password("pw")).await;
    assert!(
        matches!(unknown, Err(AdminError::UnknownUser(_))),
        "{unknown:?}"
    );
    admin.close().await.unwrap();

    let app = h.start().await;
    assert_refused(&sign_in(&app, "alice", "first pw").await.0);
    tokens_of(&app, "alice", "second pw").await;
    h.stop().await;

    let admin = h.admin().await;
    let removed = admin.remove_user("alice").await.unwrap();
    assert_eq!(removed.grants, 2, "both sign-ins' grants");
    admin.close().await.unwrap();

    let app = h.start().await;
    assert_refused(&sign_in(&app, "alice", "second pw").await.0);
    h.stop().await;
}

#[actix_web::test]
async fn revoking_a_users_grants_makes_their_tokens_inactive() {
    let mut h = Offline::new();
    let admin = h.admin().await;
    admin.add_user("alice", &password("pw")).await.unwrap();
    admin.close().await.unwrap();

    let app = h.start().await;
    let alice = tokens_of(&app, "alice", "pw").await;
    let demo = tokens_of(&app, DEMO_USER, DEMO_PASSWORD).await;
    let alice_access = str_field(&alice, "access_token");
    let alice_refresh = str_field(&alice, "refresh_token");
    assert_eq!(mcp_status(&app, &alice_access).await, 200);
    h.stop().await;

    let admin = h.admin().await;
    let revoked = admin
        .revoke(GrantHolder::Subject("alice".into()))
        .await
        .unwrap();
    assert_eq!(revoked.grants, 1);
    admin.close().await.unwrap();

    let app = h.start().await;
    // Introspection by the client that owns the tokens, and the protected resource.
    assert_inactive(&app.introspect(&alice_access).await);
    assert_inactive(&app.introspect(&alice_refresh).await);
    assert_eq!(mcp_status(&app, &alice_access).await, 401);
    assert_token_error(
        &app.refresh(&alice_refresh, None).await,
        400,
        "invalid_grant",
    );
    // Nobody else's grants are touched, and alice may sign in again.
    assert!(app.is_active(&str_field(&demo, "access_token")).await);
    let fresh = tokens_of(&app, "alice", "pw").await;
    assert!(app.is_active(&str_field(&fresh, "access_token")).await);
    h.stop().await;
}

#[actix_web::test]
async fn admin_refuses_a_directory_a_running_server_holds() {
    let app = spawn_sled_app().await;
    let mut config = Config::default();
    config.data_dir = app.data_dir.path().to_path_buf();
    let clock: Arc<dyn Clock> = app.clock.clone();
    let err = Admin::open(config, clock).await.unwrap_err();
    assert!(matches!(err, AdminError::InUse(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&app.data_dir.path().display().to_string())
            && message.contains("in use by a running oauth-mcp server")
            && message.contains("stop it first"),
        "{message}"
    );
    // The server is unaffected.
    let reply = Reply::read(
        app.token_request(&[("grant_type", "client_credentials")], Some(DEMO_BASIC))
            .await,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Through the binary: a non-zero exit and the same message.
    let out = admin_cli(app.data_dir.path(), &["client", "list"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by a running oauth-mcp server"),
        "{stderr}"
    );
}
