//! One owner's rules across three instances: a code is redeemed once (the others are told
//! `invalid_grant`, and the replay revokes the winner's grant on every instance); a refresh
//! token rotates once, repeats within the grace window on another instance, and reuse past
//! it on a third revokes the grant everywhere.

use std::time::Duration;

use super::*;

#[actix_web::test]
async fn a_code_raced_on_three_instances_has_one_winner_and_the_replay_revokes_it_everywhere() {
    let Some(cluster) = Cluster::start(module_path!(), 3, &SHARED).await else {
        return;
    };
    for round in 0..3 {
        let (code, verifier, _) = cluster.app(round).obtain_code().await;
        let (a, b, c) = tokio::join!(
            cluster.app(0).exchange_demo_code(&code, &verifier),
            cluster.app(1).exchange_demo_code(&code, &verifier),
            cluster.app(2).exchange_demo_code(&code, &verifier),
        );
        let replies = [a, b, c];
        let answers: Vec<_> = replies.iter().map(|r| (r.status, &r.body)).collect();
        // Exactly one redemption wins the code; the replays revoke its grant (OAuth 2.1
        // §4.1.3), and when a replay's revocation commits before the winner's tokens are
        // stored, the winner is refused too ("the grant has been revoked") and no token
        // exists: the same race as on one instance.
        let redeemed = replies
            .iter()
            .filter(|r| r.status == 200 || r.body.contains("grant has been revoked"))
            .count();
        assert_eq!(redeemed, 1, "round {round}: one redemption: {answers:?}");
        for refused in replies.iter().filter(|r| r.status != 200) {
            assert_token_error(refused, 400, "invalid_grant");
        }
        let Some(winner) = replies.iter().find(|r| r.status == 200) else {
            continue;
        };
        // The replays revoked the winner's grant, on every instance: introspection and
        // /mcp read it in the database.
        let tokens = winner.json();
        let access = str_field(&tokens, "access_token");
        let refresh = str_field(&tokens, "refresh_token");
        for i in 0..3 {
            let app = cluster.app(i);
            assert!(!app.is_active(&access).await, "round {round}, instance {i}");
            assert!(
                !app.is_active(&refresh).await,
                "round {round}, instance {i}"
            );
            assert_eq!(mcp_status(app, &access).await, 401);
        }
        let refreshed = cluster.app(round).refresh(&refresh, None).await;
        assert_token_error(&refreshed, 400, "invalid_grant");
    }
    for instance in &cluster.instances {
        assert_eq!(instance.problems(), Vec::<String>::new());
    }
}

#[actix_web::test]
async fn refresh_reuse_on_another_instance_past_the_window_revokes_the_grant_everywhere() {
    let Some(cluster) = Cluster::start(
        module_path!(),
        3,
        &[SHARED[0], SHARED[1], "--refresh-grace", "1"],
    )
    .await
    else {
        return;
    };
    let (access, refresh) = user_tokens(cluster.app(0)).await;
    // Cached on C before anything happens.
    assert_eq!(mcp_status(cluster.app(2), &access).await, 200);
    let first = cluster.app(0).refresh(&refresh, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    // Within the window, on another instance: the same pair (the window is shared).
    let again = cluster.app(1).refresh(&refresh, None).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["refresh_token"], first["refresh_token"]);
    assert_eq!(again.json()["access_token"], first["access_token"]);
    let new_access = str_field(&first, "access_token");
    let new_refresh = str_field(&first, "refresh_token");
    assert_eq!(mcp_status(cluster.app(2), &new_access).await, 200);
    // Past the window (a rotation at second r repeats while now - r <= 1), on a third.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let reuse = cluster.app(2).refresh(&refresh, None).await;
    assert_token_error(&reuse, 400, "invalid_grant");
    for i in 0..3 {
        let app = cluster.app(i);
        assert!(!app.is_active(&new_refresh).await, "instance {i}");
        assert!(!app.is_active(&new_access).await, "instance {i}");
        let refreshed = app.refresh(&new_refresh, None).await;
        assert_token_error(&refreshed, 400, "invalid_grant");
    }
    // /mcp on C, where the successor was cached: refused within the bound.
    refused_within(cluster.app(2), &new_access, Duration::from_secs(2)).await;
    refused_within(cluster.app(2), &access, Duration::from_secs(2)).await;
}
