//! What the real binary logs, at debug level for every crate: request ids on warnings, and
//! never a token, code, verifier, client secret or password.

use std::time::Duration;

use crate::{
    helpers::{
        attach, demo_authorize_params, pkce_pair, str_field, Reply, DEMO_BASIC, DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_REDIRECT_URI, DEMO_USER,
    },
    shutdown::{signal, start_binary_logging, wait_exit},
};

#[actix_web::test]
async fn logs_carry_request_ids_and_never_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port, log) = start_binary_logging(dir.path(), "debug");
    let app = attach(&format!("http://127.0.0.1:{port}"), port);
    let mut secrets = vec![
        DEMO_CLIENT_SECRET.to_owned(),
        DEMO_PASSWORD.to_owned(),
        "wrong-password-3f9a".to_owned(),
        "wrong-secret-77c1".to_owned(),
    ];

    // A code flow, an exchange, a refresh, an MCP call, a revocation.
    let (code, verifier, _) = app.obtain_code().await;
    secrets.extend([code.clone(), verifier.clone()]);
    let exchanged = app.exchange_demo_code(&code, &verifier).await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let tokens = exchanged.json();
    let (access, refresh) = (
        str_field(&tokens, "access_token"),
        str_field(&tokens, "refresh_token"),
    );
    let refreshed = app.refresh(&refresh, None).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let rotated = refreshed.json();
    secrets.extend([
        access.clone(),
        refresh,
        str_field(&rotated, "access_token"),
        str_field(&rotated, "refresh_token"),
    ]);
    assert_eq!(app.mcp_initialize(&access).await.status(), 200);
    let revoked = Reply::read(app.revoke(&access, None, Some(DEMO_BASIC)).await).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);

    // Failures: a wrong password, a wrong client secret, a replayed code.
    let (_, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, "s");
    let retry = app
        .login_and_consent(&params, DEMO_USER, "wrong-password-3f9a", true)
        .await;
    assert!(retry.status().is_client_error());
    let bad_client = Reply::read(
        app.token_request(
            &[("grant_type", "client_credentials")],
            Some((DEMO_CLIENT_ID, "wrong-secret-77c1")),
        )
        .await,
    )
    .await;
    assert_eq!(bad_client.status, 401);
    let replay = app
        .client
        .post(app.url("/token"))
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .header("x-request-id", "replay-check-1")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", DEMO_REDIRECT_URI),
        ])
        .send()
        .await
        .expect("POST /token");
    assert_eq!(replay.status(), 400);
    assert_eq!(replay.headers()["x-request-id"], "replay-check-1");

    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let lines = log.lock().unwrap().clone();
    assert!(
        lines.len() > 10,
        "too little logged to be a meaningful check"
    );
    let text = lines.join("\n");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} appears in the log"
        );
    }
    // The warning raised while serving the replay names that request.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("authorization code replay detected")
                && l.contains("\"request_id\":\"replay-check-1\"")),
        "no replay warning with the request id in:\n{text}"
    );
}
