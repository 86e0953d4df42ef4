//! The PostgreSQL client store: every field round-trips, registration refuses a taken id
//! and dynamic clients past the bound (also when registrations race), marking a client used
//! never brings a removed one back, users, and sign-in failure windows.

use super::db;
use crate::{
    domain::{
        client::{AuthMethod, ClientOrigin, GrantType, User},
        scope::Scopes,
        secrets::Digest,
    },
    storage::{fixtures::client, ClientStore, Registration},
};

#[tokio::test]
async fn a_client_and_its_fields_round_trip_and_removed_ones_are_not_loaded_again() {
    let Some(db) = db!() else { return };
    let store = db.stores.clients();
    let mut full = client("full", ClientOrigin::Operator);
    full.secret_digest = Some(Digest([7; 32]));
    full.auth_method = AuthMethod::ClientSecretBasic;
    full.client_name = Some("Full «client»".into());
    full.redirect_uris = vec!["https://a.example/cb".into(), "http://127.0.0.1/cb".into()];
    full.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    full.scopes = Scopes::parse("mcp:read mcp:write").unwrap();
    full.issued_at = 1_700_000_000;
    full.extra
        .insert("client_uri".into(), "https://a.example".into());
    full.used = true;
    let registered = store.register_client(full.clone(), Some(0)).await.unwrap();
    assert_eq!(
        registered,
        Registration::Registered,
        "operator clients are not bounded"
    );
    store
        .register_client(client("gone", ClientOrigin::Dynamic), None)
        .await
        .unwrap();
    let user = |name: &str| User {
        username: name.into(),
        password_hash: format!("$argon2id$…{name}"),
    };
    assert!(store.insert_user(user("alice")).await.unwrap());
    assert!(store.insert_user(user("bob")).await.unwrap());
    assert!(
        !store.insert_user(user("bob")).await.unwrap(),
        "a name taken is not inserted again"
    );
    assert!(store
        .update_user(User {
            password_hash: "changed".into(),
            ..user("bob")
        })
        .await
        .unwrap());
    store.remove_user("alice").await.unwrap();
    assert!(
        !store.update_user(user("alice")).await.unwrap(),
        "a password change that a removal overtook does not bring the user back"
    );
    store.remove_user("nobody").await.unwrap();
    store.remove_client("gone").await.unwrap();
    store.remove_client("nobody").await.unwrap();

    let (clients, users) = store.load().await.unwrap();
    let [loaded] = clients.as_slice() else {
        panic!("{clients:?}")
    };
    assert_eq!(
        serde_json::to_value(loaded).unwrap(),
        serde_json::to_value(&full).unwrap()
    );
    let [bob] = users.as_slice() else {
        panic!("{users:?}")
    };
    assert_eq!(
        (bob.username.as_str(), bob.password_hash.as_str()),
        ("bob", "changed")
    );
}

#[tokio::test]
async fn registration_refuses_a_taken_id_and_dynamic_clients_past_the_bound() {
    let Some(db) = db!() else { return };
    let store = db.stores.clients();
    store
        .register_client(client("old", ClientOrigin::Dynamic), None)
        .await
        .unwrap();
    let register = |id: &str, origin| {
        let (store, c) = (store.clone(), client(id, origin));
        async move { store.register_client(c, Some(2)).await.unwrap() }
    };
    assert_eq!(
        register("a", ClientOrigin::Dynamic).await,
        Registration::Registered
    );
    assert_eq!(
        register("a", ClientOrigin::Operator).await,
        Registration::IdTaken
    );
    assert_eq!(
        register("a", ClientOrigin::Dynamic).await,
        Registration::IdTaken
    );
    assert_eq!(
        register("b", ClientOrigin::Dynamic).await,
        Registration::Full
    );
    assert_eq!(
        register("op", ClientOrigin::Operator).await,
        Registration::Registered,
        "the bound is on dynamically registered clients only"
    );
    assert_eq!(
        store
            .register_client(client("c", ClientOrigin::Dynamic), None)
            .await
            .unwrap(),
        Registration::Registered,
        "no bound given, none enforced"
    );
    store.remove_client("old").await.unwrap();
    store.remove_client("c").await.unwrap();
    let mut used = client("a", ClientOrigin::Dynamic);
    used.used = true;
    assert!(
        store.put_client(used).await.unwrap(),
        "a stored client is marked used, and says so"
    );
    assert_eq!(
        register("b", ClientOrigin::Dynamic).await,
        Registration::Registered
    );
    assert_eq!(
        register("d", ClientOrigin::Dynamic).await,
        Registration::Full
    );
    let (clients, _) = store.load().await.unwrap();
    assert_eq!(clients.len(), 3);
    assert!(
        clients.iter().any(|c| c.client_id == "a" && c.used),
        "marked used"
    );
}

#[tokio::test]
async fn marking_a_removed_client_used_does_not_bring_it_back() {
    let Some(db) = db!() else { return };
    let store = db.stores.clients();
    let c = client("app", ClientOrigin::Dynamic);
    store.register_client(c.clone(), None).await.unwrap();
    store.remove_client("app").await.unwrap();
    let mut used = c;
    used.used = true;
    assert!(
        !store.put_client(used).await.unwrap(),
        "the answer says the client is gone (the registry must not issue to it)"
    );
    assert!(store.load().await.unwrap().0.is_empty());
}

/// Registrations racing on several instances: never past the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_never_pass_the_bound() {
    let Some(db) = db!() else { return };
    let store = db.stores.clients();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .register_client(client(&format!("c{i}"), ClientOrigin::Dynamic), Some(5))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut registered = 0;
    for task in tasks {
        match task.await.unwrap() {
            Registration::Registered => registered += 1,
            Registration::Full => {}
            Registration::IdTaken => panic!("ids are distinct"),
        }
    }
    assert_eq!(registered, 5);
    assert_eq!(store.load().await.unwrap().0.len(), 5);
}

/// The unused-client sweep removes a dynamic client only if it is still unused in the
/// database: another instance may have issued it a token since this one looked.
#[tokio::test]
async fn the_unused_client_sweep_keeps_a_client_used_meanwhile() {
    let Some(db) = db!() else { return };
    let store = db.stores.clients();
    for (id, origin) in [
        ("idle", ClientOrigin::Dynamic),
        ("busy", ClientOrigin::Dynamic),
        ("op", ClientOrigin::Operator),
    ] {
        store
            .register_client(client(id, origin), None)
            .await
            .unwrap();
    }
    let mut used = client("busy", ClientOrigin::Dynamic);
    used.used = true;
    assert!(store.put_client(used).await.unwrap());
    assert!(store.remove_unused_client("idle").await.unwrap());
    assert!(
        !store.remove_unused_client("busy").await.unwrap(),
        "used meanwhile"
    );
    assert!(
        !store.remove_unused_client("op").await.unwrap(),
        "an operator's client"
    );
    assert!(!store.remove_unused_client("nobody").await.unwrap());
    let (clients, _) = store.load().await.unwrap();
    let mut ids: Vec<_> = clients.iter().map(|c| c.client_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["busy", "op"]);
}
