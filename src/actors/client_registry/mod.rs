//! The client registry: owns registered clients and user accounts (trees `oauth.clients.v1`
//! and `oauth.users.v1`), and applies the login throttle, the registration rate limit and
//! browser sign-in sessions, whose state lives in a [`SharedState`] so that every process
//! of a deployment counts and resolves alike (in memory beside sled, a table on
//! PostgreSQL; issue 14).
//!
//! Users live here rather than in an actor of their own because both are principals that
//! authenticate, and both change rarely: one small in-memory index serves every lookup.
//! Implements client authentication (OAuth 2.1 §2.4), dynamic registration (RFC 7591) and
//! resource-owner login with throttling (OAuth 2.1 §7, RFC 9700 §4.x brute force).
//!
//! The login throttle counts an attempt when it starts, before the password is checked,
//! so concurrent guesses cannot all pass the check before the first failure lands; it
//! counts every submitted name alike, known or not, so a lockout says nothing about which
//! accounts exist; and it counts addresses by
//! [`address_key`](crate::domain::client_address::address_key) (IPv6 by /64). Password
//! checks run under one server-wide bound ([`Settings::password_hash_concurrency`]); a
//! check that finds it full is refused at once, not queued.
//!
//! Clients named by client ID metadata documents are not the registry's: the
//! [`ClientDocuments`](super::client_documents::ClientDocuments) actor caches and fetches
//! them, so the registry makes no network requests.
//!
//! Its store's answers are futures (ready ones on sled): writes go through
//! [`ClientRegistry::after_store`], which updates the index from the answer in the handler
//! when it is ready, as before the stores were asynchronous, so on sled no message sees
//! the index between a write and its update. With a backend that answers later, messages
//! about the same client could run in between; the bound on dynamically registered clients
//! and the uniqueness of ids are the store's to arbitrate then ([`ClientStore`]).
//!
//! One actor, split by noun (each file holds its messages, their handlers and its helpers):
//! - `mod.rs`: the actor itself, its state, start-up and timers, [`RegistryError`];
//! - `clients.rs`: registered clients, client authentication, the registration rate limit
//!   and the unused-client sweep;
//! - `repeats.rs`: why and how an identical public-client registration is answered with
//!   the same client (and not counted by the rate limit);
//! - `users.rs`: user accounts, password hashing and the login throttle;
//! - `index.rs`: the index of clients and users as a cache on a shared database (read
//!   through on a miss or while the change feed is not fresh; forgotten on a change);
//! - `sign_in.rs`: browser sign-in sessions;
//! - `tests.rs`: the actor-level tests.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use actix::prelude::*;
use futures_util::{future::Either, FutureExt as _};
use tokio::sync::Semaphore;

use super::{change_feed::Freshness, Stop, Sweep};
use crate::{
    config::Settings,
    domain::{
        client::{Client, ClientOrigin, User},
        clock::Clock,
    },
    metrics::{ActorKind, Metered},
    storage::{ClientStore, MemorySharedState, SharedState, StorageError, StoreFuture},
};

mod clients;
mod index;
#[cfg(test)]
mod index_tests;
mod repeats;
mod sign_in;
#[cfg(test)]
mod tests;
mod users;

pub use clients::{
    AuthenticateClient, GetClient, InsertClientIfAbsent, ListClients, MarkClientUsed,
    RegisterClient, RemoveClient,
};
pub use index::{ForgetClient, ForgetUser, ReloadIndex};
pub use sign_in::{ResolveLoginSession, StartLoginSession};
pub use users::{
    hash_password, AuthenticateUser, InsertUserIfAbsent, ListUsers, RemoveUser, SetPassword,
};

/// Registry failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Unknown client, wrong or missing secret.
    #[error("client authentication failed")]
    InvalidClient,
    /// `max_registered_clients` dynamically registered clients exist already.
    #[error("the client registry is full")]
    Full,
    /// Too many registrations from one address.
    #[error("registration rate limit reached")]
    RateLimited {
        /// Seconds until another registration is accepted.
        retry_after: u64,
    },
    /// Unknown user or wrong password.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failed logins for this user or address.
    #[error("too many failed logins")]
    LoginThrottled {
        /// Seconds until the lockout ends.
        retry_after: u64,
    },
    /// Every password-check slot is taken; nothing was checked or counted.
    #[error("too many password checks in progress")]
    PasswordCheckBusy {
        /// Seconds to wait before trying again.
        retry_after: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Something that should not happen (password hashing failed, a task panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

pub use crate::domain::client::{NewClient, RegisteredClient};

/// Most expired shared-state entries one sweep tick removes from a database (the rest wait
/// for the next tick), so a sweep never holds locks or the pool for long.
const SHARED_STATE_SWEEP_BATCH: usize = 1_000;

/// The client registry actor.
pub struct ClientRegistry {
    store: Box<dyn ClientStore>,
    clients: HashMap<String, Client>,
    users: HashMap<String, User>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    /// Verified against when the user is unknown, so timing does not reveal which names exist.
    dummy_hash: Arc<str>,
    /// The server-wide bound on concurrent password checks.
    password_checks: Arc<Semaphore>,
    /// Short-lived state shared with every process of the deployment: login attempts
    /// (started, and not ended by a success) per submitted name's digest (unknown names
    /// counted exactly like accounts) and per client address key ([`address_key`]);
    /// distinct clients registered per address key in the hour; public clients registered
    /// in the last 24 hours by fingerprint (`repeats.rs`); browser sign-in sessions by the
    /// cookie's digest. In this process's memory unless [`Self::with_shared_state`] says
    /// otherwise: then a restart signs everyone out, which is the safe direction.
    ///
    /// [`address_key`]: crate::domain::client_address::address_key
    shared: Arc<dyn SharedState>,
    /// Dynamically registered clients never issued a token, by registration time: the
    /// expiry index of the unused-client sweep.
    unused: BTreeSet<(i64, String)>,
    /// How many dynamically registered clients exist (`max_registered_clients` bounds it).
    dynamic_clients: usize,
    /// Whether the index is complete (sled) or a cache that the change feed keeps within
    /// its bound (a shared database; `index.rs`).
    freshness: Arc<Freshness>,
    /// Counts the changes applied to the index from the feed, so a read-through that was
    /// under way during one does not enter the index (`index.rs`).
    generation: u64,
}

impl ClientRegistry {
    /// Loads every client and user from `store`. `dummy_hash` is any Argon2id hash with the
    /// production parameters (see [`hash_password`]).
    pub async fn new(
        store: Box<dyn ClientStore>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        dummy_hash: String,
    ) -> Result<Self, StorageError> {
        let (clients, users) = store.load().await?;
        let dynamic = clients.iter().filter(|c| c.origin == ClientOrigin::Dynamic);
        let dynamic_clients = dynamic.clone().count();
        let unused = dynamic
            .filter(|c| !c.used)
            .map(|c| (c.issued_at, c.client_id.clone()))
            .collect();
        let password_checks = Arc::new(Semaphore::new(settings.password_hash_concurrency.max(1)));
        Ok(Self {
            password_checks,
            store,
            unused,
            dynamic_clients,
            clients: clients
                .into_iter()
                .map(|c| (c.client_id.clone(), c))
                .collect(),
            users: users.into_iter().map(|u| (u.username.clone(), u)).collect(),
            settings,
            clock,
            dummy_hash: dummy_hash.into(),
            shared: Arc::new(MemorySharedState::default()),
            freshness: Freshness::local(),
            generation: 0,
        })
    }

    /// Treats the index as a cache kept by the change feed (a shared database; see
    /// `index.rs`): hits only while `freshness` says so, misses read from the store.
    pub fn with_freshness(mut self, freshness: Arc<Freshness>) -> Self {
        self.freshness = freshness;
        self
    }

    /// Shares `checks` as the bound on concurrent password checks (instead of a private one
    /// of [`Settings::password_hash_concurrency`] slots), so its owner can see or hold it.
    pub fn with_password_checks(mut self, checks: Arc<Semaphore>) -> Self {
        self.password_checks = checks;
        self
    }

    /// Keeps the sign-in sessions, throttles and limits in `shared` (a database every
    /// process of the deployment uses) instead of this process's memory.
    pub fn with_shared_state(mut self, shared: Arc<dyn SharedState>) -> Self {
        self.shared = shared;
        self
    }

    /// Continues with the answer of a [`SharedState`] step: `then` runs at once, in the
    /// handler, when the answer is ready (in memory), so no other message runs in between,
    /// as before the state could be shared; else when it arrives.
    pub(super) fn after_shared<T: 'static, R: 'static>(
        &mut self,
        mut answer: StoreFuture<T>,
        then: impl FnOnce(&mut Self, Result<T, StorageError>) -> ResponseActFuture<Self, R> + 'static,
    ) -> ResponseActFuture<Self, R> {
        match (&mut answer).now_or_never() {
            Some(out) => then(self, out),
            None => Box::pin(
                answer
                    .into_actor(self)
                    .then(move |out, act, _| then(act, out)),
            ),
        }
    }

    /// Finishes a write with the store's answer: `then` updates the index from it (at
    /// once, in the handler, when the answer is ready, as it is on sled; else when it
    /// arrives), and a success is released once the writes are on disk. A failure is
    /// answered at once.
    pub(super) fn after_store<T: 'static, R: 'static, E: From<StorageError> + 'static>(
        &mut self,
        mut answer: StoreFuture<T>,
        then: impl FnOnce(&mut Self, Result<T, StorageError>) -> Result<R, E> + 'static,
    ) -> ResponseActFuture<Self, Result<R, E>> {
        let applied = match (&mut answer).now_or_never() {
            Some(out) => Either::Left(fut::ready(then(self, out))),
            None => Either::Right(
                answer
                    .into_actor(self)
                    .map(move |out, act, _| then(act, out)),
            ),
        };
        Box::pin(applied.then(|result, act, _| {
            let persist = result.is_ok().then(|| act.store.persist());
            async move {
                if let Some(persist) = persist {
                    persist.await?;
                }
                result
            }
            .into_actor(act)
        }))
    }

    /// Removes expired sessions, ended throttle windows and old fingerprints: one bounded
    /// batch, by one process at a time on a shared database. A failure is logged; the
    /// entries are past their expiry, so they are ignored until a later sweep removes them.
    fn sweep_shared_state(&self) -> impl std::future::Future<Output = ()> + 'static {
        let swept = self
            .shared
            .sweep(self.clock.now(), SHARED_STATE_SWEEP_BATCH);
        async move {
            if let Err(e) = swept.await {
                tracing::error!(error = %e, "could not sweep expired sign-in sessions and throttles");
            }
        }
    }
}

impl Metered for ClientRegistry {
    const KIND: ActorKind = ActorKind::Registry;
}

impl Actor for ClientRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.config.mailbox_capacity);
        ctx.run_interval(self.settings.config.sweep_interval, |act, ctx| {
            ctx.spawn(act.sweep_shared_state().into_actor(act));
            let swept = act.sweep_unused_clients();
            ctx.spawn(swept.map(|out, _, _| {
                if let Err(e) = out {
                    tracing::error!(error = %e, "could not remove unused clients");
                }
            }));
        });
    }
}

impl Handler<Stop> for ClientRegistry {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Sweep> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<usize, StorageError>>;
    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        // The shared state first, to completion: a sweep asked for is finished when answered.
        Box::pin(
            self.sweep_shared_state()
                .into_actor(self)
                .then(|(), act, _| act.sweep_unused_clients()),
        )
    }
}
