//! User accounts: resource-owner login (Argon2id password checks off the actor's thread,
//! under a server-wide bound) with its throttle (OAuth 2.1 §7, RFC 9700 §4.x brute force),
//! and administration (insert, list, set a password, remove). The throttle's counters are
//! the registry's shared state, so they count every process's attempts (issue 14).

use std::{net::IpAddr, sync::Arc};

use actix::prelude::*;
use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use super::{ClientRegistry, RegistryError};
use crate::{
    domain::{
        client::User,
        client_address::address_key,
        secrets::{random_bytes, Digest, Password},
    },
    storage::{shared_state::Namespace, SharedState, StoreFuture},
};

/// Inserts a user unless one with that name exists. Returns whether it was inserted.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct InsertUserIfAbsent {
    /// The user, with an Argon2id hash.
    pub user: User,
}

/// Verifies a user's password (Argon2id, off the actor and worker threads), subject to the
/// per-user and per-address throttle. Answers the username on success.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, RegistryError>")]
pub struct AuthenticateUser {
    /// Username typed into the form.
    pub username: String,
    /// Password typed into the form.
    pub password: Password,
    /// Client address, for the per-address throttle.
    pub address: Option<IpAddr>,
}

/// Every username, in order (administration).
#[derive(Debug, Message)]
#[rtype(result = "Vec<String>")]
pub struct ListUsers;

/// Replaces a user's password hash, ends the user's browser sign-in sessions and clears
/// their failed-login count. Answers whether the user exists (nothing changes if not).
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct SetPassword {
    /// The user.
    pub username: String,
    /// The new Argon2id hash (see [`hash_password`]).
    pub password_hash: String,
}

/// Removes a user and ends their browser sign-in sessions. Answers whether the user
/// existed. Their grants are the token ledger's to revoke (`RevokeGrantsOf`).
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct RemoveUser {
    /// The user.
    pub username: String,
}

/// `Retry-After` seconds when every password-check slot is taken: one check takes tens of
/// milliseconds, so a second is plenty.
const PASSWORD_CHECK_RETRY_SECS: u64 = 1;

/// Hashes a password with Argon2id and a random salt. Blocking: call from a blocking task.
pub fn hash_password(password: &str) -> Result<String, RegistryError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

impl ClientRegistry {
    pub(super) fn lockout_secs(&self) -> i64 {
        i64::try_from(self.settings.config.login_lockout.as_secs()).unwrap_or(i64::MAX)
    }
}

/// The login throttle's two counters for one attempt, on the registry's shared state.
struct Throttle {
    shared: Arc<dyn SharedState>,
    name: Digest,
    address: Option<Digest>,
    len: i64,
    now: i64,
}

impl Throttle {
    /// Counts a login attempt that is about to check a password, before it does (the
    /// attempt is a failure until it succeeds: [`Self::release`]), against the name and
    /// the address, each in one atomic step of the shared state. Answers the address
    /// window's start, to release the right window, or the lockout's `Retry-After` when
    /// either limit is reached; then the attempt is not counted (a counter that admitted
    /// it gives it back).
    async fn reserve(
        &self,
        known: bool,
        per_name: u32,
        per_address: u32,
    ) -> Result<Result<Reserved, u64>, RegistryError> {
        let name = self
            .shared
            .count(
                Namespace::LoginName,
                &self.name,
                self.len,
                per_name,
                self.now,
                known,
            )
            .await?;
        let address = match &self.address {
            Some(a) => Some(
                self.shared
                    .count(
                        Namespace::LoginAddress,
                        a,
                        self.len,
                        per_address,
                        self.now,
                        false,
                    )
                    .await?,
            ),
            None => None,
        };
        let mut wait = None;
        if !name.admitted(per_name) {
            wait = Some(name.retry_after(self.len, self.now));
        }
        if let Some(a) = address.filter(|a| !a.admitted(per_address)) {
            wait = Some(wait.unwrap_or(0).max(a.retry_after(self.len, self.now)));
        }
        let Some(wait) = wait else {
            return Ok(Ok(Reserved {
                name: name.started,
                address: address.map(|a| a.started),
            }));
        };
        if name.admitted(per_name) {
            self.uncount_name(name.started).await?;
        }
        self.uncount_address(
            address
                .filter(|a| a.admitted(per_address))
                .map(|a| a.started),
        )
        .await?;
        Ok(Err(wait))
    }

    async fn uncount_name(&self, started: i64) -> Result<(), RegistryError> {
        self.shared
            .uncount(Namespace::LoginName, &self.name, started, self.now)
            .await?;
        Ok(())
    }

    async fn uncount_address(&self, started: Option<i64>) -> Result<(), RegistryError> {
        if let (Some(key), Some(started)) = (&self.address, started) {
            self.shared
                .uncount(Namespace::LoginAddress, key, started, self.now)
                .await?;
        }
        Ok(())
    }

    /// A reserved attempt succeeded: the name's count is cleared (as a successful login
    /// always did) and the address gets its attempt back.
    async fn release(&self, reserved: &Reserved) -> Result<(), RegistryError> {
        self.shared.remove(Namespace::LoginName, &self.name).await?;
        self.uncount_address(reserved.address).await
    }

    /// A reserved attempt was refused before its password was checked: both counters get
    /// it back.
    async fn release_refused(&self, reserved: &Reserved) -> Result<(), RegistryError> {
        self.uncount_name(reserved.name).await?;
        self.uncount_address(reserved.address).await
    }
}

/// The windows an admitted attempt was counted in (their start), to give it back.
struct Reserved {
    name: i64,
    address: Option<i64>,
}

/// The key of a client address key in the shared state: the digest of its octets.
pub(super) fn address_digest(address: IpAddr) -> Digest {
    match address_key(address) {
        IpAddr::V4(a) => Digest::of(&a.octets()),
        IpAddr::V6(a) => Digest::of(&a.octets()),
    }
}

impl Handler<InsertUserIfAbsent> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: InsertUserIfAbsent, _: &mut Self::Context) -> Self::Result {
        if self.users.contains_key(&msg.user.username) {
            return Box::pin(fut::ready(Ok(false)));
        }
        // The store arbitrates (another process may add the same name meanwhile).
        let user = msg.user;
        let generation = self.generation();
        let answer = self.store.insert_user(user.clone());
        self.after_store(answer, move |act, out| {
            let inserted = out?;
            if inserted && act.unchanged_since(generation) {
                act.users.insert(user.username.clone(), user);
            } else {
                act.users.remove(&user.username);
            }
            Ok(inserted)
        })
    }
}

impl Handler<ListUsers> for ClientRegistry {
    type Result = MessageResult<ListUsers>;
    fn handle(&mut self, _: ListUsers, _: &mut Self::Context) -> Self::Result {
        let mut names: Vec<String> = self.users.keys().cloned().collect();
        names.sort();
        MessageResult(names)
    }
}

impl Handler<SetPassword> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: SetPassword, _: &mut Self::Context) -> Self::Result {
        // Whether the user exists: the store's answer on a shared database (`index.rs`).
        let lookup = self.lookup_user(&msg.username);
        Box::pin(lookup.then(move |found, act, _| match found {
            Ok(Some(existing)) => act.set_password(msg, existing),
            Ok(None) => Box::pin(fut::ready(Ok(false))),
            Err(e) => Box::pin(fut::ready(Err(e.into()))),
        }))
    }
}

impl ClientRegistry {
    /// [`SetPassword`] for `existing`, as looked up.
    fn set_password(
        &mut self,
        msg: SetPassword,
        existing: User,
    ) -> ResponseActFuture<Self, Result<bool, RegistryError>> {
        let user = User {
            username: existing.username,
            password_hash: msg.password_hash,
        };
        // Update-only: a removal that overtook the change stands (the user stays gone).
        let generation = self.generation();
        let written = self.store.update_user(user.clone());
        // A new password is often a response to a leaked one: browsers signed in with the
        // old one sign in again (on every process), and a lockout caused by guessing it
        // ends. After the write: a sign-in with the old password cannot slip in between.
        let ended = self.end_login_sessions_of(&msg.username);
        let cleared = self
            .shared
            .remove(Namespace::LoginName, &Digest::of(msg.username.as_bytes()));
        let answer: StoreFuture<bool> = Box::pin(async move {
            let updated = written.await?;
            ended.await?;
            cleared.await?;
            Ok(updated)
        });
        self.after_store(answer, move |act, out| {
            let updated = out?;
            if updated && act.unchanged_since(generation) {
                act.users.insert(msg.username.clone(), user);
            } else {
                act.users.remove(&msg.username);
            }
            Ok(updated)
        })
    }
}

impl Handler<RemoveUser> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: RemoveUser, _: &mut Self::Context) -> Self::Result {
        // Whether the user exists: the store's answer on a shared database (`index.rs`).
        let lookup = self.lookup_user(&msg.username);
        Box::pin(lookup.then(move |found, act, _| match found {
            Ok(Some(_)) => act.remove_user(msg),
            Ok(None) => Box::pin(fut::ready(Ok(false))),
            Err(e) => Box::pin(fut::ready(Err(e.into()))),
        }))
    }
}

impl ClientRegistry {
    /// [`RemoveUser`] for a user that exists.
    fn remove_user(
        &mut self,
        msg: RemoveUser,
    ) -> ResponseActFuture<Self, Result<bool, RegistryError>> {
        let removed = self.store.remove_user(&msg.username);
        let ended = self.end_login_sessions_of(&msg.username);
        let answer: StoreFuture<()> = Box::pin(async move {
            removed.await?;
            ended.await.map(drop)
        });
        self.after_store(answer, move |act, out| {
            out?;
            act.users.remove(&msg.username);
            Ok(true)
        })
    }
}

impl Handler<AuthenticateUser> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<String, RegistryError>>;
    fn handle(&mut self, msg: AuthenticateUser, _: &mut Self::Context) -> Self::Result {
        // The same steps, answers and counters for every name, account or not.
        let throttle = Throttle {
            shared: Arc::clone(&self.shared),
            name: Digest::of(msg.username.as_bytes()),
            address: msg.address.map(address_digest),
            len: self.lockout_secs(),
            now: self.clock.now(),
        };
        let cfg = &self.settings.config;
        let (per_name, per_address) = (
            cfg.login_max_failures_per_user,
            cfg.login_max_failures_per_address,
        );
        let dummy_hash = Arc::clone(&self.dummy_hash);
        let checks = Arc::clone(&self.password_checks);
        // On a shared database the index is a cache: the lookup reads the user through
        // when it may not answer (`index.rs`).
        let lookup = self.lookup_user(&msg.username);
        Box::pin(lookup.then(move |found, _, _| {
            fut::wrap_future(async move {
                let known = found?.map(|u| u.password_hash);
                let exists = known.is_some();
                let phc: Arc<str> = known.map(Into::into).unwrap_or(dummy_hash);
                let (username, password) = (msg.username, msg.password);
                // Counted now, before the check: a burst of guesses reaches the limit as soon
                // as the limit's worth of them have started, on any number of processes.
                let reserved = match throttle.reserve(exists, per_name, per_address).await? {
                    Ok(reserved) => reserved,
                    Err(retry_after) => return Err(RegistryError::LoginThrottled { retry_after }),
                };
                // Each check holds ~19 MiB for tens of milliseconds: a bounded number at once,
                // and a refusal rather than a queue beyond it. Nothing stays counted for it.
                let Ok(permit) = checks.try_acquire_owned() else {
                    throttle.release_refused(&reserved).await?;
                    return Err(RegistryError::PasswordCheckBusy {
                        retry_after: PASSWORD_CHECK_RETRY_SECS,
                    });
                };
                // Argon2 takes tens of milliseconds: run it on the blocking pool, never on the
                // actor's thread or an HTTP worker. The permit is released when it ends.
                let verified = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    verify_password(password.secret(), &phc)
                })
                .await;
                match verified {
                    Ok(true) if exists => {
                        throttle.release(&reserved).await?;
                        Ok(username)
                    }
                    // The attempt stays counted.
                    Ok(_) => Err(RegistryError::InvalidCredentials),
                    Err(e) => Err(RegistryError::Internal(e.to_string())),
                }
            })
        }))
    }
}
