//! The registry's in-memory index of clients and users as a cache (issue 14): on sled it is
//! complete (this process made every change) and answers every lookup; on a shared
//! database other instances and `oauth-mcp admin` change clients and users too, so:
//! - a hit is served only while the change feed is fresh ([`Freshness`]); otherwise the
//!   lookup reads the store (fail closed);
//! - a miss reads the store (`ClientStore::get_client` / `get_user`), so a client
//!   registered on another instance is usable here at once;
//! - a change recorded in the feed makes the index forget that entry ([`ForgetClient`],
//!   [`ForgetUser`]); a gap in the feed reloads it whole ([`ReloadIndex`]).
//!
//! A read-through answer enters the index only if no change was applied while it was
//! under way (`generation`): one that started before a change committed must not bring
//! the old value back. Such an answer is still used for the request that asked, within the
//! feed's bound of its start ([`read_within_bound`]), the same promise as a cache hit.

use std::time::Instant;

use actix::prelude::*;

use super::ClientRegistry;
use crate::{
    actors::change_feed::read_within_bound,
    domain::client::{Client, User},
    storage::{StorageError, StoreFuture},
};

/// A client changed in the store (another instance, administration): forget it, so the
/// next lookup reads it again. Sent by the change feed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetClient {
    /// The client id.
    pub client_id: String,
}

/// A user changed in the store: forget it (see [`ForgetClient`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetUser {
    /// The username.
    pub username: String,
}

/// The change feed lost track (first start, or changes trimmed while it was away): reload
/// every client and user from the store.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct ReloadIndex;

/// A lookup's answer: from the index at once, or after a read of the store.
pub(super) type Lookup<T> = ResponseActFuture<ClientRegistry, Result<Option<T>, StorageError>>;

impl ClientRegistry {
    /// The count of feed changes applied so far, read before a write: see
    /// [`unchanged_since`](Self::unchanged_since).
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether no change from the feed was applied since `generation` was read. A write's
    /// answer may enter the index only then; otherwise the entry is dropped and read again
    /// at the next lookup, so a removal made elsewhere and applied meanwhile is not undone
    /// here. (On sled there is no feed: always true.)
    pub(super) fn unchanged_since(&self, generation: u64) -> bool {
        self.generation == generation
    }

    /// Whether the index may answer for an entry it holds now.
    fn index_serves(&self) -> bool {
        !self.freshness.is_shared() || self.freshness.is_fresh()
    }

    /// The index's answer for `client_id` when it may give one (always on sled; on a
    /// shared database a hit while the feed is fresh), `None` when the store must be read.
    pub(super) fn indexed_client(&self, client_id: &str) -> Option<Option<&Client>> {
        let known = self.clients.get(client_id);
        (!self.freshness.is_shared() || (known.is_some() && self.index_serves())).then_some(known)
    }

    /// The client `client_id`: from the index when it may answer (see the module docs),
    /// else read from the store.
    pub(super) fn lookup_client(&mut self, client_id: &str) -> Lookup<Client> {
        if let Some(known) = self.indexed_client(client_id) {
            return Box::pin(fut::ready(Ok(known.cloned())));
        }
        self.read_client(client_id)
    }

    /// Reads `client_id` from the store (and enters the answer into the index).
    pub(super) fn read_client(&mut self, client_id: &str) -> Lookup<Client> {
        let read = self.store.get_client(client_id);
        let id = client_id.to_owned();
        self.read_through(read, move |act, found| {
            act.forget_client(&id);
            if let Some(client) = found {
                act.remember_client(client.clone());
            }
        })
    }

    /// The user `username`, as [`lookup_client`](Self::lookup_client).
    pub(super) fn lookup_user(&mut self, username: &str) -> Lookup<User> {
        let known = self.users.get(username);
        if !self.freshness.is_shared() || (known.is_some() && self.index_serves()) {
            return Box::pin(fut::ready(Ok(known.cloned())));
        }
        let read = self.store.get_user(username);
        let name = username.to_owned();
        self.read_through(read, move |act, found| match found {
            Some(user) => {
                act.users.insert(name, user.clone());
            }
            None => {
                act.users.remove(&name);
            }
        })
    }

    /// Reads through: `enter` puts the answer into the index when no change was applied
    /// meanwhile; otherwise the answer is used only within the feed's bound.
    fn read_through<T: Clone + 'static>(
        &mut self,
        read: StoreFuture<Option<T>>,
        enter: impl FnOnce(&mut Self, &Option<T>) + 'static,
    ) -> Lookup<T> {
        let (generation, started) = (self.generation, Instant::now());
        Box::pin(read.into_actor(self).map(move |out, act, _| {
            let found = out?;
            if act.generation == generation {
                enter(act, &found);
            } else if !read_within_bound(started) {
                return Err(StorageError::Database(
                    "a client or user changed while it was read; try again".into(),
                ));
            }
            Ok(found)
        }))
    }
}

impl Handler<ForgetClient> for ClientRegistry {
    type Result = ();
    fn handle(&mut self, msg: ForgetClient, _: &mut Self::Context) {
        self.generation += 1;
        self.forget_client(&msg.client_id);
    }
}

impl Handler<ForgetUser> for ClientRegistry {
    type Result = ();
    fn handle(&mut self, msg: ForgetUser, _: &mut Self::Context) {
        self.generation += 1;
        self.users.remove(&msg.username);
    }
}

impl Handler<ReloadIndex> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<(), StorageError>>;
    fn handle(&mut self, _: ReloadIndex, _: &mut Self::Context) -> Self::Result {
        // Read-throughs under way predate the reload: they must not enter the index.
        self.generation += 1;
        let load = self.store.load();
        // The feed waits for this answer before it sends anything else, so no change is
        // applied between the load and its answer.
        Box::pin(load.into_actor(self).map(move |out, act, _| {
            let (clients, users) = out?;
            act.generation += 1;
            act.clients.clear();
            act.unused.clear();
            act.dynamic_clients = 0;
            for client in clients {
                act.remember_client(client);
            }
            act.users = users.into_iter().map(|u| (u.username.clone(), u)).collect();
            Ok(())
        }))
    }
}
