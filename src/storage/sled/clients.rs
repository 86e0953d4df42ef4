//! [`ClientStore`] on sled: the client registry's trees of registered clients
//! ([`CLIENTS_TREE`]) and users ([`USERS_TREE`]), JSON values.

use super::{decode, encode, Durability, CLIENTS_TREE, USERS_TREE};
use crate::{
    domain::client::{Client, ClientOrigin, User},
    storage::{ready, ClientStore, Persist, Registration, StorageError, StoreFuture},
};

/// [`ClientStore`] on sled.
#[derive(Debug)]
pub struct SledClientStore {
    clients: sled::Tree,
    users: sled::Tree,
    durability: Durability,
    /// How many dynamically registered clients are stored, counted on first need and then
    /// kept by every write (the store is owned by one actor).
    dynamic: std::cell::Cell<Option<usize>>,
}

impl SledClientStore {
    /// Opens the registry's trees.
    pub fn open(db: &sled::Db, durability: Durability) -> Result<Self, StorageError> {
        Ok(Self {
            clients: db.open_tree(CLIENTS_TREE)?,
            users: db.open_tree(USERS_TREE)?,
            durability,
            dynamic: std::cell::Cell::new(None),
        })
    }

    fn clients_now(&self) -> Result<Vec<Client>, StorageError> {
        self.clients
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode(CLIENTS_TREE, &v)
            })
            .collect()
    }

    fn load_now(&self) -> Result<(Vec<Client>, Vec<User>), StorageError> {
        let clients = self.clients_now()?;
        self.dynamic.set(Some(dynamic_count(&clients)));
        let users = self
            .users
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode(USERS_TREE, &v)
            })
            .collect::<Result<Vec<User>, _>>()?;
        Ok((clients, users))
    }

    fn dynamic_now(&self) -> Result<usize, StorageError> {
        match self.dynamic.get() {
            Some(n) => Ok(n),
            None => {
                let n = dynamic_count(&self.clients_now()?);
                self.dynamic.set(Some(n));
                Ok(n)
            }
        }
    }

    /// Keeps the dynamic count after a write replaced `old` (if any) by `new` (if any).
    fn recount(&self, old: Option<&[u8]>, new: Option<&Client>) {
        let Some(n) = self.dynamic.get() else {
            return;
        };
        let was = old.is_some_and(|v| {
            decode::<Client>(CLIENTS_TREE, v).map_or(true, |c| c.origin == ClientOrigin::Dynamic)
        });
        let is = new.is_some_and(|c| c.origin == ClientOrigin::Dynamic);
        self.dynamic
            .set(Some((n + usize::from(is)).saturating_sub(usize::from(was))));
    }

    fn register_now(
        &self,
        client: &Client,
        max_dynamic: Option<usize>,
    ) -> Result<Registration, StorageError> {
        if self.clients.contains_key(client.client_id.as_bytes())? {
            return Ok(Registration::IdTaken);
        }
        if let Some(max) = max_dynamic {
            if client.origin == ClientOrigin::Dynamic && self.dynamic_now()? >= max {
                return Ok(Registration::Full);
            }
        }
        self.put_now(client)?;
        Ok(Registration::Registered)
    }

    fn put_now(&self, client: &Client) -> Result<(), StorageError> {
        let old = self
            .clients
            .insert(client.client_id.as_bytes(), encode(CLIENTS_TREE, client)?)?;
        self.recount(old.as_deref(), Some(client));
        Ok(())
    }

    fn remove_client_now(&self, client_id: &str) -> Result<(), StorageError> {
        let old = self.clients.remove(client_id.as_bytes())?;
        self.recount(old.as_deref(), None);
        Ok(())
    }
}

/// How many of `clients` were registered dynamically.
fn dynamic_count(clients: &[Client]) -> usize {
    clients
        .iter()
        .filter(|c| c.origin == ClientOrigin::Dynamic)
        .count()
}

/// Each intent runs to completion inside the call (the registry, the one owner of these
/// trees, handles one message at a time) and answers a ready future.
impl ClientStore for SledClientStore {
    fn load(&self) -> StoreFuture<(Vec<Client>, Vec<User>)> {
        ready(self.load_now())
    }

    fn register_client(
        &self,
        client: Client,
        max_dynamic: Option<usize>,
    ) -> StoreFuture<Registration> {
        ready(self.register_now(&client, max_dynamic))
    }

    fn get_client(&self, client_id: &str) -> StoreFuture<Option<Client>> {
        let read = self
            .clients
            .get(client_id.as_bytes())
            .map_err(StorageError::from)
            .and_then(|v| v.map(|v| decode(CLIENTS_TREE, &v)).transpose());
        ready(read)
    }

    fn get_user(&self, username: &str) -> StoreFuture<Option<User>> {
        let read = self
            .users
            .get(username.as_bytes())
            .map_err(StorageError::from)
            .and_then(|v| v.map(|v| decode(USERS_TREE, &v)).transpose());
        ready(read)
    }

    fn put_client(&self, client: Client) -> StoreFuture<bool> {
        ready(self.put_now(&client).map(|()| true))
    }

    fn insert_user(&self, user: User) -> StoreFuture<bool> {
        let put = encode(USERS_TREE, &user).and_then(|value| {
            let swapped = self.users.compare_and_swap(
                user.username.as_bytes(),
                None::<&[u8]>,
                Some(value),
            )?;
            Ok(swapped.is_ok())
        });
        ready(put)
    }

    /// On sled the registry serialises this with removals (one actor, answers in the
    /// handler), so a read then a write is the update-only intent.
    fn update_user(&self, user: User) -> StoreFuture<bool> {
        let put = encode(USERS_TREE, &user).and_then(|value| {
            if !self.users.contains_key(user.username.as_bytes())? {
                return Ok(false);
            }
            self.users.insert(user.username.as_bytes(), value)?;
            Ok(true)
        });
        ready(put)
    }

    fn remove_unused_client(&self, client_id: &str) -> StoreFuture<bool> {
        let removed = (|| {
            let Some(value) = self.clients.get(client_id.as_bytes())? else {
                return Ok(false);
            };
            let client: Client = decode(CLIENTS_TREE, &value)?;
            if client.origin != ClientOrigin::Dynamic || client.used {
                return Ok(false);
            }
            self.remove_client_now(client_id)?;
            Ok(true)
        })();
        ready(removed)
    }

    fn remove_client(&self, client_id: &str) -> StoreFuture<()> {
        ready(self.remove_client_now(client_id))
    }

    fn remove_user(&self, username: &str) -> StoreFuture<()> {
        ready(
            self.users
                .remove(username.as_bytes())
                .map(drop)
                .map_err(StorageError::from),
        )
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fixtures::{client, run};

    #[test]
    fn removed_clients_and_users_are_not_loaded_again() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
        let user = |name: &str| User {
            username: name.into(),
            password_hash: "x".into(),
        };
        run(store.insert_user(user("alice")));
        run(store.insert_user(user("bob")));
        run(store.remove_user("alice"));
        run(store.remove_user("nobody"));
        run(store.remove_client("nobody"));
        let (clients, users) = run(store.load());
        assert!(clients.is_empty());
        assert_eq!(
            users
                .iter()
                .map(|u| u.username.as_str())
                .collect::<Vec<_>>(),
            ["bob"]
        );
    }

    #[test]
    fn registration_refuses_a_taken_id_and_dynamic_clients_past_the_bound() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        {
            let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
            run(store.put_client(client("old", ClientOrigin::Dynamic)));
        }
        // A new store counts what is stored (here without a load first).
        let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
        let register = |id: &str, origin| run(store.register_client(client(id, origin), Some(2)));
        assert_eq!(
            register("a", ClientOrigin::Dynamic),
            Registration::Registered
        );
        assert_eq!(register("a", ClientOrigin::Operator), Registration::IdTaken);
        assert_eq!(register("b", ClientOrigin::Dynamic), Registration::Full);
        assert_eq!(
            register("op", ClientOrigin::Operator),
            Registration::Registered,
            "the bound is on dynamically registered clients only"
        );
        assert_eq!(
            run(store.register_client(client("c", ClientOrigin::Dynamic), None)),
            Registration::Registered,
            "no bound given, none enforced"
        );
        // Removing one makes room; marking one used changes nothing.
        run(store.remove_client("old"));
        run(store.remove_client("c"));
        let mut used = client("a", ClientOrigin::Dynamic);
        used.used = true;
        run(store.put_client(used));
        assert_eq!(
            register("b", ClientOrigin::Dynamic),
            Registration::Registered
        );
        assert_eq!(register("d", ClientOrigin::Dynamic), Registration::Full);
        let (clients, _) = run(store.load());
        assert_eq!(clients.len(), 3);
        // The unused-client sweep's removal keeps a used client and an operator's.
        assert!(!run(store.remove_unused_client("a")), "used");
        assert!(
            !run(store.remove_unused_client("op")),
            "an operator's client"
        );
        assert!(run(store.remove_unused_client("b")), "unused and dynamic");
        assert_eq!(run(store.load()).0.len(), 2);
    }
}
