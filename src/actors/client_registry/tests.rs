//! Actor-level tests of the client registry: `Addr::send`, no HTTP.

use std::{net::IpAddr, time::Duration};

use super::*;
use crate::{
    config::Config,
    domain::{
        client::{AuthMethod, GrantType},
        clock::ManualClock,
        scope::Scopes,
        secrets::{ClientSecret, Password},
    },
    storage::{
        sled::{Durability, SledClientStore},
        MemorySharedState,
    },
};

async fn start(cfg: Config) -> (Addr<ClientRegistry>, Arc<ManualClock>) {
    start_sharing(cfg, Arc::new(MemorySharedState::default())).await
}

/// A registry over `store` with `cfg`'s settings and `clock`, not started yet (the tests
/// add what they need to it first).
pub(super) async fn registry_over(
    store: Box<dyn ClientStore>,
    cfg: Config,
    clock: Arc<dyn Clock>,
) -> ClientRegistry {
    let settings = Arc::new(cfg.settings(8000).unwrap());
    let dummy = hash_password("dummy").unwrap();
    ClientRegistry::new(store, settings, clock, dummy)
        .await
        .unwrap()
}

/// A registry (with user alice, password "pw") on a database of its own, keeping its
/// sessions, throttles and limits in `shared`: two of them stand for two processes.
async fn start_sharing(
    cfg: Config,
    shared: Arc<dyn SharedState>,
) -> (Addr<ClientRegistry>, Arc<ManualClock>) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
    let clock = ManualClock::new(1_000);
    let registry = registry_over(Box::new(store), cfg, clock.clone())
        .await
        .with_shared_state(shared);
    let addr = registry.start();
    let user = User {
        username: "alice".into(),
        password_hash: hash_password("pw").unwrap(),
    };
    assert!(addr
        .send(InsertUserIfAbsent { user: user.clone() })
        .await
        .unwrap()
        .unwrap());
    assert!(
        !addr
            .send(InsertUserIfAbsent { user })
            .await
            .unwrap()
            .unwrap(),
        "seeding is idempotent"
    );
    (addr, clock)
}

fn login(password: &str, address: Option<IpAddr>) -> AuthenticateUser {
    AuthenticateUser {
        username: "alice".into(),
        password: Password::new(password.into()),
        address,
    }
}

#[actix::test]
async fn login_is_throttled_per_user_then_recovers() {
    let (addr, clock) = start(Config::default()).await;
    assert_eq!(
        addr.send(login("pw", None)).await.unwrap().unwrap(),
        "alice"
    );
    for _ in 0..5 {
        let r = addr.send(login("wrong", None)).await.unwrap();
        assert!(matches!(r, Err(RegistryError::InvalidCredentials)));
    }
    let r = addr.send(login("pw", None)).await.unwrap();
    assert!(matches!(r, Err(RegistryError::LoginThrottled { .. })));
    clock.advance(Duration::from_secs(15 * 60));
    assert!(addr.send(login("pw", None)).await.unwrap().is_ok());
}

fn login_as(name: &str, password: &str, address: Option<IpAddr>) -> AuthenticateUser {
    AuthenticateUser {
        username: name.into(),
        password: Password::new(password.into()),
        address,
    }
}

#[actix::test]
async fn concurrent_guesses_are_counted_before_any_is_checked() {
    let mut cfg = Config::default();
    cfg.password_hash_concurrency = 32;
    let (addr, _) = start(cfg).await;
    let answers =
        futures_util::future::join_all((0..12).map(|_| addr.send(login("wrong", None)))).await;
    let checked = answers
        .iter()
        .filter(|r| matches!(r, Ok(Err(RegistryError::InvalidCredentials))))
        .count();
    let throttled = answers
        .iter()
        .filter(|r| matches!(r, Ok(Err(RegistryError::LoginThrottled { .. }))))
        .count();
    assert_eq!((checked, throttled), (5, 7), "{answers:?}");
    let r = addr.send(login("pw", None)).await.unwrap();
    assert!(matches!(r, Err(RegistryError::LoginThrottled { .. })));
}

#[actix::test]
async fn unknown_names_lock_out_like_accounts() {
    let (addr, _) = start(Config::default()).await;
    for name in ["alice", "nobody"] {
        for _ in 0..5 {
            let r = addr.send(login_as(name, "wrong", None)).await.unwrap();
            assert!(matches!(r, Err(RegistryError::InvalidCredentials)));
        }
        let r = addr.send(login_as(name, "pw", None)).await.unwrap();
        assert!(
            matches!(r, Err(RegistryError::LoginThrottled { retry_after: 900 })),
            "{name}: {r:?}"
        );
    }
}

#[actix::test]
async fn ipv6_addresses_share_their_64_and_success_gives_the_attempt_back() {
    let mut cfg = Config::default();
    cfg.login_max_failures_per_address = 2;
    let (addr, _) = start(cfg).await;
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    // A success does not use up the address's allowance.
    for _ in 0..3 {
        assert!(addr
            .send(login("pw", ip("2001:db8:1:2::1")))
            .await
            .unwrap()
            .is_ok());
    }
    for (name, a) in [("x", "2001:db8:1:2::1"), ("y", "2001:db8:1:2:ffff::9")] {
        let r = addr.send(login_as(name, "wrong", ip(a))).await.unwrap();
        assert!(matches!(r, Err(RegistryError::InvalidCredentials)));
    }
    let r = addr
        .send(login_as("z", "wrong", ip("2001:db8:1:2::abcd")))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(RegistryError::LoginThrottled { .. })),
        "same /64"
    );
    let r = addr
        .send(login_as("z", "wrong", ip("2001:db8:1:3::1")))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(RegistryError::InvalidCredentials)),
        "another /64"
    );
}

#[actix::test]
async fn a_full_password_check_bound_refuses_without_counting() {
    let (addr, _) = start(Config::default()).await;
    let checks = Arc::new(Semaphore::new(1));
    // Rebuild the registry around a bound the test can hold.
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
    let registry = registry_over(Box::new(store), Config::default(), ManualClock::new(1_000))
        .await
        .with_password_checks(Arc::clone(&checks))
        .start();
    drop(addr);
    let held = checks.try_acquire().unwrap();
    for _ in 0..10 {
        let r = registry.send(login("wrong", None)).await.unwrap();
        assert!(matches!(
            r,
            Err(RegistryError::PasswordCheckBusy { retry_after: 1 })
        ));
    }
    drop(held);
    let r = registry.send(login("wrong", None)).await.unwrap();
    assert!(
        matches!(r, Err(RegistryError::InvalidCredentials)),
        "the refusals were not counted: {r:?}"
    );
}

#[actix::test]
async fn register_authenticate_and_rate_limit() {
    let mut cfg = Config::default();
    cfg.registrations_per_hour = 1;
    let (addr, _) = start(cfg).await;
    let new = NewClient {
        client_name: None,
        redirect_uris: vec!["https://a.example/cb".into()],
        auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: None,
        extra: Default::default(),
    };
    let ip: IpAddr = [127, 0, 0, 1].into();
    let reg = addr
        .send(RegisterClient {
            client: new.clone(),
            address: Some(ip),
            origin: ClientOrigin::Dynamic,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reg.client.scopes.to_string(),
        "mcp:read mcp:write",
        "default scopes"
    );
    let secret = reg.secret.unwrap();
    let id = reg.client.client_id.clone();
    let ok = addr
        .send(AuthenticateClient {
            client_id: id.clone(),
            secret: Some(secret),
        })
        .await
        .unwrap();
    assert!(ok.is_ok());
    let bad = addr
        .send(AuthenticateClient {
            client_id: id.clone(),
            secret: Some(ClientSecret::new("x".into())),
        })
        .await
        .unwrap();
    assert!(matches!(bad, Err(RegistryError::InvalidClient)));
    let none = addr
        .send(AuthenticateClient {
            client_id: id,
            secret: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(none, Err(RegistryError::InvalidClient)),
        "confidential client needs its secret"
    );
    let limited = addr
        .send(RegisterClient {
            client: new,
            address: Some(ip),
            origin: ClientOrigin::Dynamic,
        })
        .await
        .unwrap();
    assert!(matches!(limited, Err(RegistryError::RateLimited { .. })));
}

fn public_client(id: &str, issued_at: i64) -> Client {
    Client {
        client_id: id.into(),
        secret_digest: None,
        auth_method: AuthMethod::None,
        client_name: None,
        redirect_uris: vec!["http://localhost/cb".into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: Scopes::parse("mcp:read").unwrap(),
        issued_at,
        extra: Default::default(),
        origin: ClientOrigin::Operator,
        used: true,
    }
}

#[actix::test]
async fn clients_are_listed_in_registration_order_and_removed() {
    let (addr, _) = start(Config::default()).await;
    for (id, at) in [("b", 2), ("c", 1), ("a", 2)] {
        let client = public_client(id, at);
        assert!(addr
            .send(InsertClientIfAbsent { client })
            .await
            .unwrap()
            .unwrap());
    }
    let ids = |clients: Vec<Client>| clients.into_iter().map(|c| c.client_id).collect::<Vec<_>>();
    assert_eq!(ids(addr.send(ListClients).await.unwrap()), ["c", "a", "b"]);
    let remove = |id: &str| RemoveClient {
        client_id: id.into(),
    };
    assert!(addr.send(remove("a")).await.unwrap().unwrap());
    assert!(!addr.send(remove("a")).await.unwrap().unwrap(), "gone");
    assert_eq!(ids(addr.send(ListClients).await.unwrap()), ["c", "b"]);
    let get = GetClient {
        client_id: "a".into(),
    };
    assert!(addr.send(get).await.unwrap().is_none());
    let auth = AuthenticateClient {
        client_id: "a".into(),
        secret: None,
    };
    assert!(matches!(
        addr.send(auth).await.unwrap(),
        Err(RegistryError::InvalidClient)
    ));
}

#[actix::test]
async fn a_new_password_replaces_the_old_and_ends_sign_in_sessions() {
    let (addr, _) = start(Config::default()).await;
    let cookie = addr
        .send(StartLoginSession {
            subject: "alice".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let resolve = || ResolveLoginSession {
        token: cookie.clone(),
    };
    assert_eq!(
        addr.send(resolve()).await.unwrap().unwrap().as_deref(),
        Some("alice")
    );
    let set = |name: &str| SetPassword {
        username: name.into(),
        password_hash: hash_password("new pw").unwrap(),
    };
    assert!(addr.send(set("alice")).await.unwrap().unwrap());
    assert!(!addr.send(set("nobody")).await.unwrap().unwrap());
    assert!(matches!(
        addr.send(login("pw", None)).await.unwrap(),
        Err(RegistryError::InvalidCredentials)
    ));
    assert_eq!(
        addr.send(login("new pw", None)).await.unwrap().unwrap(),
        "alice"
    );
    assert_eq!(addr.send(resolve()).await.unwrap().unwrap(), None);
    assert_eq!(addr.send(ListUsers).await.unwrap(), ["alice"]);
}

#[actix::test]
async fn a_removed_user_cannot_sign_in() {
    let (addr, _) = start(Config::default()).await;
    let cookie = addr
        .send(StartLoginSession {
            subject: "alice".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let resolve = || ResolveLoginSession {
        token: cookie.clone(),
    };
    assert_eq!(
        addr.send(resolve()).await.unwrap().unwrap().as_deref(),
        Some("alice")
    );
    let remove = || RemoveUser {
        username: "alice".into(),
    };
    assert!(addr.send(remove()).await.unwrap().unwrap());
    assert!(!addr.send(remove()).await.unwrap().unwrap());
    assert!(matches!(
        addr.send(login("pw", None)).await.unwrap(),
        Err(RegistryError::InvalidCredentials)
    ));
    assert_eq!(addr.send(resolve()).await.unwrap().unwrap(), None);
    assert!(addr.send(ListUsers).await.unwrap().is_empty());
}

fn hosted() -> NewClient {
    NewClient {
        client_name: Some("Hosted".into()),
        redirect_uris: vec!["https://hosted.example/cb".into()],
        auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: None,
        extra: Default::default(),
    }
}

async fn register_from(addr: &Addr<ClientRegistry>, address: Option<IpAddr>) -> String {
    let msg = RegisterClient {
        client: hosted(),
        address,
        origin: ClientOrigin::Dynamic,
    };
    addr.send(msg).await.unwrap().unwrap().client.client_id
}

#[actix::test]
async fn repeats_are_recognised_per_address_key() {
    let (addr, _) = start(Config::default()).await;
    let v6 = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
    let first = register_from(&addr, v6(1)).await;
    assert_eq!(register_from(&addr, v6(2)).await, first, "same /64");
    let other_net = Some(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]));
    assert_ne!(register_from(&addr, other_net).await, first);
    assert_ne!(
        register_from(&addr, None).await,
        first,
        "no address, no key"
    );
    let operator = RegisterClient {
        client: hosted(),
        address: v6(1),
        origin: ClientOrigin::Operator,
    };
    let by_operator = addr.send(operator).await.unwrap().unwrap().client.client_id;
    assert_ne!(by_operator, first, "only /register is answered from memory");
}

#[actix::test]
async fn a_client_removed_by_administration_is_not_answered_again() {
    let (addr, _) = start(Config::default()).await;
    let ip = Some(IpAddr::from([192, 0, 2, 1]));
    let first = register_from(&addr, ip).await;
    let removal = RemoveClient {
        client_id: first.clone(),
    };
    assert!(addr.send(removal).await.unwrap().unwrap());
    let second = register_from(&addr, ip).await;
    assert_ne!(second, first);
    assert_eq!(register_from(&addr, ip).await, second);
}

#[actix::test]
async fn an_unused_client_about_to_be_swept_is_not_answered_again() {
    let mut cfg = Config::default();
    cfg.unused_client_ttl = Duration::from_secs(4 * 3600);
    let (addr, clock) = start(cfg).await;
    let ip = Some(IpAddr::from([192, 0, 2, 1]));
    let first = register_from(&addr, ip).await;
    // Removed 4 h after registration; answered while an hour or more is left.
    clock.advance(Duration::from_secs(3 * 3600));
    assert_eq!(register_from(&addr, ip).await, first);
    clock.advance(Duration::from_secs(1));
    let second = register_from(&addr, ip).await;
    assert_ne!(second, first);
    // Once used, the sweep no longer threatens it: answered for the rest of the 24 hours.
    let mark = MarkClientUsed {
        client_id: second.clone(),
    };
    assert!(addr.send(mark).await.unwrap().unwrap());
    clock.advance(Duration::from_secs(20 * 3600));
    assert_eq!(register_from(&addr, ip).await, second);
}

/// Two registries on one shared state, as two processes on one database: a session started
/// by one is resolved by the other and ended by a password change made on the other; the
/// login throttle counts the attempts made on both.
#[actix::test]
async fn registries_sharing_state_share_sessions_and_throttles() {
    let shared: Arc<dyn SharedState> = Arc::new(MemorySharedState::default());
    let (a, _) = start_sharing(Config::default(), Arc::clone(&shared)).await;
    let (b, _) = start_sharing(Config::default(), shared).await;
    let cookie = a
        .send(StartLoginSession {
            subject: "alice".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let resolve = || ResolveLoginSession {
        token: cookie.clone(),
    };
    assert_eq!(
        b.send(resolve()).await.unwrap().unwrap().as_deref(),
        Some("alice")
    );
    let set = SetPassword {
        username: "alice".into(),
        password_hash: hash_password("new pw").unwrap(),
    };
    assert!(b.send(set).await.unwrap().unwrap());
    assert_eq!(
        a.send(resolve()).await.unwrap().unwrap(),
        None,
        "ended by B"
    );
    for addr in [&a, &b, &a, &b, &a] {
        let r = addr.send(login("wrong", None)).await.unwrap();
        assert!(matches!(r, Err(RegistryError::InvalidCredentials)), "{r:?}");
    }
    let r = b.send(login("pw", None)).await.unwrap();
    assert!(
        matches!(r, Err(RegistryError::LoginThrottled { .. })),
        "{r:?}"
    );
}
