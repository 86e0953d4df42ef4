//! The index as a cache of a shared database (`index.rs`): a write whose answer arrives
//! after the change feed applied another process's removal must not bring the removed
//! entry back into the index.

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::*;
use crate::{
    actors::change_feed::Freshness,
    config::Config,
    domain::{clock::ManualClock, secrets::Password},
    storage::{
        sled::{Durability, SledClientStore},
        Persist, Registration,
    },
};

/// Hands a held-back `update_user` to the test: the write runs when `run` is sent, its
/// outcome is reported on `ran`, and the registry gets the answer when `answer` is sent.
struct Held {
    run: oneshot::Receiver<()>,
    ran: oneshot::Sender<bool>,
    answer: oneshot::Receiver<()>,
}

/// A sled client store whose `update_user` is held back as [`Held`] says; every other
/// intent answers at once.
struct Gated {
    inner: Arc<Mutex<SledClientStore>>,
    held: Arc<Mutex<Option<Held>>>,
}

impl ClientStore for Gated {
    fn load(&self) -> StoreFuture<(Vec<Client>, Vec<User>)> {
        self.inner.lock().unwrap().load()
    }
    fn get_client(&self, client_id: &str) -> StoreFuture<Option<Client>> {
        self.inner.lock().unwrap().get_client(client_id)
    }
    fn get_user(&self, username: &str) -> StoreFuture<Option<User>> {
        self.inner.lock().unwrap().get_user(username)
    }
    fn register_client(&self, client: Client, bound: Option<usize>) -> StoreFuture<Registration> {
        self.inner.lock().unwrap().register_client(client, bound)
    }
    fn put_client(&self, client: Client) -> StoreFuture<bool> {
        self.inner.lock().unwrap().put_client(client)
    }
    fn insert_user(&self, user: User) -> StoreFuture<bool> {
        self.inner.lock().unwrap().insert_user(user)
    }
    fn update_user(&self, user: User) -> StoreFuture<bool> {
        let (inner, held) = (Arc::clone(&self.inner), self.held.lock().unwrap().take());
        Box::pin(async move {
            let Some(held) = held else {
                let answer = inner.lock().unwrap().update_user(user);
                return answer.await;
            };
            held.run.await.unwrap();
            let answer = inner.lock().unwrap().update_user(user);
            let updated = answer.await?;
            held.ran.send(updated).unwrap();
            held.answer.await.unwrap();
            Ok(updated)
        })
    }
    fn remove_client(&self, client_id: &str) -> StoreFuture<()> {
        self.inner.lock().unwrap().remove_client(client_id)
    }
    fn remove_unused_client(&self, client_id: &str) -> StoreFuture<bool> {
        self.inner.lock().unwrap().remove_unused_client(client_id)
    }
    fn remove_user(&self, username: &str) -> StoreFuture<()> {
        self.inner.lock().unwrap().remove_user(username)
    }
    fn persist(&self) -> Persist {
        self.inner.lock().unwrap().persist()
    }
}

/// Another process removes alice after this one's password change was written but before
/// its answer arrived; the feed tells this registry (ForgetUser) in between. The answer
/// must not put alice back: a sign-in with the new password then reads the store and
/// finds no alice.
#[actix::test]
async fn a_password_change_answered_after_a_removal_does_not_bring_the_user_back() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let inner = Arc::new(Mutex::new(
        SledClientStore::open(&db, Durability::relaxed()).unwrap(),
    ));
    let held = Arc::new(Mutex::new(None));
    let store = Gated {
        inner: Arc::clone(&inner),
        held: Arc::clone(&held),
    };
    let freshness = Freshness::shared();
    freshness.extend_for_tests();
    let clock = ManualClock::new(1_000);
    let registry = super::tests::registry_over(Box::new(store), Config::default(), clock)
        .await
        .with_freshness(Arc::clone(&freshness))
        .start();
    let alice = User {
        username: "alice".into(),
        password_hash: hash_password("old").unwrap(),
    };
    assert!(registry
        .send(InsertUserIfAbsent { user: alice })
        .await
        .unwrap()
        .unwrap());

    let (run, run_rx) = oneshot::channel();
    let (ran_tx, ran) = oneshot::channel();
    let (answer, answer_rx) = oneshot::channel();
    *held.lock().unwrap() = Some(Held {
        run: run_rx,
        ran: ran_tx,
        answer: answer_rx,
    });
    let change = registry.send(SetPassword {
        username: "alice".into(),
        password_hash: hash_password("new").unwrap(),
    });
    let change = tokio::spawn(change);
    run.send(()).unwrap();
    assert!(
        ran.await.unwrap(),
        "the change was written while alice existed"
    );
    // Another process removes her; this process's feed applies it.
    let removed = inner.lock().unwrap().remove_user("alice");
    removed.await.unwrap();
    registry
        .send(ForgetUser {
            username: "alice".into(),
        })
        .await
        .unwrap();
    answer.send(()).unwrap();
    assert!(change.await.unwrap().unwrap().unwrap());

    freshness.extend_for_tests();
    let login = AuthenticateUser {
        username: "alice".into(),
        password: Password::new("new".into()),
        address: None,
    };
    assert!(
        matches!(
            registry.send(login).await.unwrap(),
            Err(RegistryError::InvalidCredentials)
        ),
        "a removed user signed in from this process's index"
    );
}
