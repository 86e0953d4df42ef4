//! Changes made on one instance, or through the stores as `oauth-mcp admin` makes them,
//! reach the others' caches within the change feed's bound (docs/architecture.md, "Several
//! instances"): a revoked access token cached on two others, a user's grants revoked
//! through the stores, a client registered on one used at once on the others and removed
//! through the stores; and while the feed is down the caches are bypassed, so a revocation
//! made meanwhile is in force at once.
//!
//! Delays are printed for information (docs/storage.md records them), never asserted
//! against the bound: a loaded machine must not fail the suite; the deadline (2 s) is far
//! above it.

use std::time::Duration;

use super::*;
use oauth_mcp::{
    actors::client_registry::hash_password,
    domain::{client::User, grant::GrantHolder},
    storage::{postgres::PgStores, ClientStore as _, TokenStore as _},
};

const DEADLINE: Duration = Duration::from_secs(2);

#[actix_web::test]
async fn revocations_and_client_changes_on_one_instance_reach_the_others_within_the_bound() {
    let Some(cluster) = Cluster::start(module_path!(), 3, &SHARED).await else {
        return;
    };
    let (a, b, c) = (cluster.app(0), cluster.app(1), cluster.app(2));

    // 1. An access token revoked on A (RFC 7009), cached on B and C by a few calls.
    let (access, _) = user_tokens(a).await;
    for app in [b, c] {
        for _ in 0..3 {
            assert_eq!(mcp_status(app, &access).await, 200);
        }
    }
    let asks = ledger_asks(b).await;
    for _ in 0..5 {
        assert_eq!(mcp_status(b, &access).await, 200);
    }
    // Served from B's cache (a poll late on a loaded machine may send one to the ledger).
    assert!(
        ledger_asks(b).await - asks < 5.0,
        "B asked its ledger every time"
    );
    let revoked = a.revoke(&access, None, Some(DEMO_BASIC)).await;
    assert_eq!(revoked.status(), 200);
    for (name, app) in [("B", b), ("C", c)] {
        let delay = refused_within(app, &access, DEADLINE).await;
        eprintln!(
            "feed delay (information): /revoke on A answered -> refused on {name} after {delay:?}"
        );
    }

    // 2. A user's grants revoked through the stores (as `oauth-mcp admin` does): refused on
    // every instance, where they were cached.
    let (access, refresh) = user_tokens(b).await;
    for app in [a, b, c] {
        assert_eq!(mcp_status(app, &access).await, 200);
    }
    let stores = PgStores::connect(&cluster.db.url, 2).await.unwrap();
    let tokens = stores.tokens();
    let grants = tokens
        .grants_of(&GrantHolder::Subject("demo_user".into()))
        .await
        .unwrap();
    assert!(!grants.is_empty());
    for (grant, _) in grants {
        tokens.revoke_grant(grant, i64::MAX / 2).await.unwrap();
    }
    for (name, app) in [("A", a), ("B", b), ("C", c)] {
        let delay = refused_within(app, &access, DEADLINE).await;
        eprintln!("feed delay (information): grants revoked in the store -> refused on {name} after {delay:?}");
        assert!(!app.is_active(&refresh).await);
    }

    // 2b. demo_user's password changed through the stores: C, which holds the user in its
    // index (it signed in above), takes the new one past the bound. One attempt each, so
    // the login throttle is not involved; correct past the bound by design (a stale index
    // is read through), so the wait is not a race.
    let (verifier, challenge) = pkce_pair();
    let params = demo_authorize_params(&challenge, FLOW_STATE);
    let _ = verifier;
    let signed_in = c
        .login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
        .await;
    assert_eq!(
        signed_in.status(),
        303,
        "the old password, before the change"
    );
    let hash = tokio::task::spawn_blocking(|| hash_password("a-new-password").unwrap())
        .await
        .unwrap();
    let user = User {
        username: DEMO_USER.into(),
        password_hash: hash,
    };
    assert!(stores.clients().update_user(user).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signed_in = c
        .login_and_consent(&params, DEMO_USER, "a-new-password", true)
        .await;
    assert_eq!(signed_in.status(), 303, "the new password on C");
    let signed_in = b
        .login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
        .await;
    assert_ne!(signed_in.status(), 303, "the old password on B");

    // 3. A client registered on A is usable at once on B (authorize) and C (token), and its
    // token on A. (Signed in as demo_user with its new password.)
    let (client_id, secret) = a.register_confidential(&[DEMO_REDIRECT_URI]).await;
    let (verifier, challenge) = pkce_pair();
    let mut params = demo_authorize_params(&challenge, FLOW_STATE);
    set_param(&mut params, "client_id", &client_id);
    let reply = Reply::read(
        b.login_and_consent(&params, DEMO_USER, "a-new-password", true)
            .await,
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let code = reply.location_query()["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", DEMO_REDIRECT_URI),
    ];
    let exchanged = Reply::read(c.token_request(&form, Some((&client_id, &secret))).await).await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let access = str_field(&exchanged.json(), "access_token");
    assert_eq!(mcp_status(a, &access).await, 200);

    // 4. That client removed through the stores: B and C, which hold it in their index,
    // stop authenticating it within the bound.
    assert_eq!(introspect(c, &access, (&client_id, &secret)).await, 200);
    stores.clients().remove_client(&client_id).await.unwrap();
    for (name, app) in [("B", b), ("C", c)] {
        let started = std::time::Instant::now();
        while introspect(app, &access, (&client_id, &secret)).await != 401 {
            assert!(
                started.elapsed() < DEADLINE,
                "{name} still authenticates it"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        eprintln!(
            "feed delay (information): client removed in the store -> refused on {name} after {:?}",
            started.elapsed()
        );
    }
    let authorize = b
        .get_authorize(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", DEMO_REDIRECT_URI),
            ("code_challenge", &challenge_for(&verifier)),
            ("code_challenge_method", "S256"),
        ])
        .await;
    assert_error_page(&Reply::read(authorize).await);
    stores.close();
    for instance in &cluster.instances {
        assert_eq!(instance.problems(), Vec::<String>::new());
    }
}

/// The status of an introspection at `app` authenticated as `client`.
async fn introspect(app: &TestApp, token: &str, client: (&str, &str)) -> u16 {
    let form = [("token", token)];
    let reply = app.introspect_request(&form, Some(client)).await;
    reply.status().as_u16()
}

/// A connection to the test cluster's `postgres` database (not the test's own, which the
/// test closes to new connections): (client, the test database's name).
async fn cluster_admin(cluster: &Cluster) -> (tokio_postgres::Client, String) {
    let url = url::Url::parse(&cluster.db.url).unwrap();
    let name = url.path().trim_start_matches('/').to_owned();
    let mut admin = url.clone();
    admin.set_path("/postgres");
    let (client, conn) = tokio_postgres::connect(admin.as_str(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    (client, name)
}

#[actix_web::test]
async fn while_the_feed_is_down_the_cache_is_bypassed_and_a_revocation_takes_effect_at_once() {
    let Some(cluster) = Cluster::start(module_path!(), 2, &SHARED).await else {
        return;
    };
    let (a, b) = (cluster.app(0), cluster.app(1));
    let (access, _) = user_tokens(a).await;
    let (other, _) = user_tokens(a).await;
    for token in [&access, &other] {
        for _ in 0..3 {
            assert_eq!(mcp_status(b, token).await, 200);
        }
    }
    // Keep the feed down: the database takes no new connection (the pools keep theirs),
    // and every listener's connection, found by its application name, is ended.
    let (admin, name) = cluster_admin(&cluster).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();
    let ended = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'oauth-mcp-change-feed'",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(ended.get::<_, i64>(0), 2, "one listener per instance");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Bypassed: every request asks the ledger (which reads the database).
    let asks = ledger_asks(b).await;
    for _ in 0..3 {
        assert_eq!(mcp_status(b, &other).await, 200);
    }
    assert!(
        ledger_asks(b).await - asks >= 3.0,
        "served from the cache while the feed is down"
    );
    // A revocation while it is down: refused on B at once, with no feed to tell it.
    let revoked = a.revoke(&access, None, Some(DEMO_BASIC)).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        mcp_status(b, &access).await,
        401,
        "served while the feed is down"
    );
    assert!(
        b_log_has(&cluster, "change feed interrupted"),
        "the feed's loss is logged"
    );

    // Back: the listener reconnects by itself, and B serves from its cache again.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        assert_eq!(mcp_status(b, &other).await, 200);
        let asks = ledger_asks(b).await;
        let mut cached = true;
        for _ in 0..3 {
            assert_eq!(mcp_status(b, &other).await, 200);
        }
        if ledger_asks(b).await - asks >= 3.0 {
            cached = false;
        }
        if cached {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the feed did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "feed back and serving from the cache after {:?}",
        started.elapsed()
    );
    assert_eq!(mcp_status(b, &access).await, 401);
}

fn b_log_has(cluster: &Cluster, needle: &str) -> bool {
    cluster.instances[1]
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|line| line.contains(needle))
}
