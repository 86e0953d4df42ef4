//! [`ClientStore`] on sled: the client registry's trees of registered clients
//! ([`CLIENTS_TREE`]) and users ([`USERS_TREE`]), JSON values.

use super::{decode, encode, Durability, CLIENTS_TREE, USERS_TREE};
use crate::{
    domain::client::{Client, User},
    storage::{ClientStore, Persist, StorageError},
};

/// [`ClientStore`] on sled.
#[derive(Debug)]
pub struct SledClientStore {
    clients: sled::Tree,
    users: sled::Tree,
    durability: Durability,
}

impl SledClientStore {
    /// Opens the registry's trees.
    pub fn open(db: &sled::Db, durability: Durability) -> Result<Self, StorageError> {
        Ok(Self {
            clients: db.open_tree(CLIENTS_TREE)?,
            users: db.open_tree(USERS_TREE)?,
            durability,
        })
    }
}

impl ClientStore for SledClientStore {
    fn load(&self) -> Result<(Vec<Client>, Vec<User>), StorageError> {
        let clients = self
            .clients
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode(CLIENTS_TREE, &v)
            })
            .collect::<Result<Vec<Client>, _>>()?;
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

    fn put_client(&self, client: &Client) -> Result<(), StorageError> {
        self.clients
            .insert(client.client_id.as_bytes(), encode(CLIENTS_TREE, client)?)?;
        Ok(())
    }

    fn put_user(&self, user: &User) -> Result<(), StorageError> {
        self.users
            .insert(user.username.as_bytes(), encode(USERS_TREE, user)?)?;
        Ok(())
    }

    fn remove_client(&self, client_id: &str) -> Result<(), StorageError> {
        self.clients.remove(client_id.as_bytes())?;
        Ok(())
    }

    fn remove_user(&self, username: &str) -> Result<(), StorageError> {
        self.users.remove(username.as_bytes())?;
        Ok(())
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_clients_and_users_are_not_loaded_again() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledClientStore::open(&db, Durability::relaxed()).unwrap();
        let user = |name: &str| User {
            username: name.into(),
            password_hash: "x".into(),
        };
        store.put_user(&user("alice")).unwrap();
        store.put_user(&user("bob")).unwrap();
        store.remove_user("alice").unwrap();
        store.remove_user("nobody").unwrap();
        store.remove_client("nobody").unwrap();
        let (clients, users) = store.load().unwrap();
        assert!(clients.is_empty());
        assert_eq!(
            users
                .iter()
                .map(|u| u.username.as_str())
                .collect::<Vec<_>>(),
            ["bob"]
        );
    }
}
