//! [`ClientStore`]: what the client registry stores (clients and users), as atomic intents:
//! register a client under the global bound; plus the plain writes of administration. The
//! login throttle, sign-in sessions and registration limits are short-lived state shared
//! across processes, kept apart in [`SharedState`](super::SharedState).

use super::{Persist, StoreFuture};
use crate::domain::client::{Client, User};

/// What [`ClientStore::register_client`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The client is stored.
    Registered,
    /// A client with that id exists already: nothing was written.
    IdTaken,
    /// The bound on dynamically registered clients is reached: nothing was written.
    Full,
}

/// What the client registry stores: clients and users.
///
/// Atomicity, futures and durability as for [`TokenStore`](super::TokenStore): each
/// intent is one statement or transaction on a shared database; on sled the registry
/// alone owns the trees, handles one message at a time, and the store runs each intent in
/// the call.
pub trait ClientStore: Send + 'static {
    /// Every client and user, read once at start-up into the registry's index.
    fn load(&self) -> StoreFuture<(Vec<Client>, Vec<User>)>;

    /// One client as stored now (the registry's read-through: on a shared backend its index
    /// is a cache, and a client registered or changed by another process is read here).
    fn get_client(&self, client_id: &str) -> StoreFuture<Option<Client>>;

    /// One user as stored now (read-through, as [`get_client`](Self::get_client)).
    fn get_user(&self, username: &str) -> StoreFuture<Option<User>>;

    /// Registers a new client: in one transaction, refused if a client with its id exists
    /// ([`Registration::IdTaken`]) or, when `max_dynamic` is given and the client is
    /// dynamically registered, if `max_dynamic` dynamically registered clients exist
    /// ([`Registration::Full`]: `--max-registered-clients`, a bound over every process
    /// sharing the database; a SQL backend counts and inserts in one serializable
    /// transaction, or keeps the count in a row it locks).
    ///
    /// Repeated registrations are not this intent's: the registry answers an identical
    /// public-client registration from its fingerprint in the shared state
    /// ([`SharedState`](super::SharedState)), which every process of a deployment sees.
    fn register_client(
        &self,
        client: Client,
        max_dynamic: Option<usize>,
    ) -> StoreFuture<Registration>;

    /// Changes to clients and users made through [`put_client`](Self::put_client),
    /// [`insert_user`](Self::insert_user), [`update_user`](Self::update_user), [`remove_client`](Self::remove_client) and
    /// [`remove_user`](Self::remove_user) reach every process sharing the backend: a shared
    /// backend records each in its change feed in the same transaction (PostgreSQL:
    /// `changes`), so `oauth-mcp admin` writing through these methods needs nothing else.
    ///
    /// Replaces a stored client (marking it used), or inserts it. On sled the registry
    /// serialises this with removals; a backend whose answers come later (and that other
    /// processes write too) must make "mark used" an update of an existing row only, so a
    /// removal that overtook it is not undone (issue 14). Answers whether the client is
    /// stored now: `false` when a removal overtook the update (never on sled).
    fn put_client(&self, client: Client) -> StoreFuture<bool>;

    /// Inserts `user` unless a user of that name exists (several processes may add the
    /// same name at once: one wins). Answers whether it was inserted.
    fn insert_user(&self, user: User) -> StoreFuture<bool>;

    /// Replaces an existing user's record (a password change), never inserting: a removal
    /// that overtook it stands, and the user does not come back. Answers whether the user
    /// was there.
    fn update_user(&self, user: User) -> StoreFuture<bool>;

    /// Removes a client; removing an unknown one is not an error.
    fn remove_client(&self, client_id: &str) -> StoreFuture<()>;

    /// Removes a dynamically registered client only if it is still unused (the unused-client
    /// sweep), in one step: another process may have issued it its first token since this
    /// one looked, and then it stays. Answers whether it was removed.
    fn remove_unused_client(&self, client_id: &str) -> StoreFuture<bool>;

    /// Removes a user; removing an unknown one is not an error.
    fn remove_user(&self, username: &str) -> StoreFuture<()>;

    /// Resolves once earlier writes are on disk.
    fn persist(&self) -> Persist;
}
