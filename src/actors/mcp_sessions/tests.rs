//! Actor-level tests of the session table, its directory and the rmcp bridge.

use rmcp::{
    model::ClientJsonRpcMessage,
    transport::streamable_http_server::session::{
        local::{create_local_session, SessionConfig},
        SessionId, SessionManager,
    },
};

use super::*;

#[actix::test]
async fn the_directory_answers_the_owner_check_as_the_actor_writes_it() {
    let limits = SessionLimits::from_config(&crate::Config::default());
    let sessions = McpSessions::new(limits.clone());
    let directory = sessions.directory();
    let addr = sessions.start();
    let alice = Owner {
        subject: Some("alice".into()),
        client_id: "c".into(),
    };
    let mallory = Owner {
        subject: Some("mallory".into()),
        client_id: "c".into(),
    };
    let id = SessionId::from("s1");
    assert!(matches!(directory.admit(&id, &alice), Admission::Unknown));
    let (handle, _worker) = create_local_session(id.clone(), SessionConfig::default());
    let msg = CreateSession {
        id: id.clone(),
        handle,
        owner: alice.clone(),
        protocol_version: None,
        client_info: None,
    };
    addr.send(msg).await.unwrap().unwrap();
    assert!(matches!(directory.admit(&id, &mallory), Admission::Foreign));
    let before = addr.send(ListSessions).await.unwrap()[0].1.last_seen;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(matches!(
        directory.admit(&id, &alice),
        Admission::Admitted(_)
    ));
    // The read marked the session used, as the actor sees it (idle expiry).
    let after = addr.send(ListSessions).await.unwrap()[0].1.last_seen;
    assert!(after > before);
    assert!(matches!(
        addr.send(AdmitRequest {
            id: id.clone(),
            owner: mallory
        })
        .await
        .unwrap(),
        Admission::Foreign
    ));
    assert!(addr
        .send(CloseSession { id: id.clone() })
        .await
        .unwrap()
        .is_some());
    assert!(matches!(directory.admit(&id, &alice), Admission::Unknown));
}

#[actix::test]
async fn a_session_is_served_only_to_an_admitted_request_or_the_one_that_created_it() {
    let limits = SessionLimits::from_config(&crate::Config::default());
    let manager = ActorSessionManager::new(McpSessions::new(limits.clone()).start(), &limits);
    let owner = Owner {
        subject: Some("alice".into()),
        client_id: "c".into(),
    };
    let new = NewSession::new(owner, None, None);
    let (created, _) = new
        .scope(async {
            let (id, _transport) = manager.create_session().await.unwrap();
            // The creating request may use it (rmcp initializes it next).
            assert!(manager.has_session(&id).await.unwrap());
            id
        })
        .await;
    let ping: ClientJsonRpcMessage =
        serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .unwrap();
    // Any other request that the guard did not admit finds nothing, though it exists.
    assert!(!manager.has_session(&created).await.unwrap());
    assert!(matches!(
        manager.create_stream(&created, ping).await,
        Err(SessionManagerError::NotFound)
    ));
    // A second creating request does not inherit the first one's session.
    let other = NewSession::new(
        Owner {
            subject: Some("mallory".into()),
            client_id: "c".into(),
        },
        None,
        None,
    );
    let (seen, _) = other.scope(manager.has_session(&created)).await;
    assert!(!seen.unwrap());
}

#[actix::test]
async fn a_session_idle_past_the_timeout_is_over_before_the_sweep_and_stays_over() {
    let mut limits = SessionLimits::from_config(&crate::Config::default());
    limits.idle_timeout = Duration::from_millis(50);
    let sessions = McpSessions::new(limits);
    let directory = sessions.directory();
    let addr = sessions.start();
    let alice = Owner {
        subject: Some("alice".into()),
        client_id: "c".into(),
    };
    let id = SessionId::from("s-idle");
    let (handle, _worker) = create_local_session(id.clone(), SessionConfig::default());
    let msg = CreateSession {
        id: id.clone(),
        handle,
        owner: alice.clone(),
        protocol_version: None,
        client_info: None,
    };
    addr.send(msg).await.unwrap().unwrap();
    assert!(matches!(
        directory.admit(&id, &alice),
        Admission::Admitted(_)
    ));
    // Idle past the timeout; the sweep (every second at the least) has not run yet.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(matches!(directory.admit(&id, &alice), Admission::Unknown));
    // The refused look did not mark it used: the sweep still removes it.
    assert!(!directory.remove_if_idle(&SessionId::from("unknown")));
    assert!(directory.remove_if_idle(&id));
    assert!(matches!(directory.admit(&id, &alice), Admission::Unknown));
}
