//! User accounts: resource-owner login (Argon2id password checks off the actor's thread,
//! under a server-wide bound) with its throttle (OAuth 2.1 §7, RFC 9700 §4.x brute force),
//! and administration (insert, list, set a password, remove).

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use actix::prelude::*;
use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use super::{ClientRegistry, RegistryError};
use crate::domain::{
    client::User,
    client_address::address_key,
    secrets::{random_bytes, Digest, Password},
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

/// Most names and addresses the login throttle tracks at once (each entry is a few dozen
/// bytes: names are kept as digests). Beyond this, expired windows are dropped first, then
/// windows of names that are not accounts, so a flood of invented names cannot push a real
/// account's count out.
const MAX_THROTTLE_ENTRIES: usize = 100_000;

/// `Retry-After` seconds when every password-check slot is taken: one check takes tens of
/// milliseconds, so a second is plenty.
const PASSWORD_CHECK_RETRY_SECS: u64 = 1;

/// The login throttle's count for one submitted username.
#[derive(Debug, Clone, Copy)]
pub(super) struct NameWindow {
    pub(super) window: Window,
    /// The name was an account when last counted (eviction spares these).
    pub(super) known: bool,
}

/// A fixed-window counter used by the throttles.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) started: i64,
    pub(super) count: u32,
}

impl Window {
    /// Count in the current window, restarting it when `len` has passed.
    pub(super) fn current(entry: Option<&Window>, now: i64, len: i64) -> Window {
        match entry {
            Some(w) if now - w.started < len => *w,
            _ => Window {
                started: now,
                count: 0,
            },
        }
    }
}

/// Makes room for `key` in a throttle map holding `cap` entries at most: when it is new and
/// the map is full, entries that are no longer `live` go first, then one that is
/// `evictable` (any one, if none is).
pub(super) fn make_room<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    cap: usize,
    live: impl Fn(&V) -> bool,
    evictable: impl Fn(&V) -> bool,
) {
    if map.contains_key(key) || map.len() < cap {
        return;
    }
    map.retain(|_, v| live(v));
    if map.len() >= cap {
        let victim = map
            .iter()
            .find(|(_, v)| evictable(v))
            .or_else(|| map.iter().next())
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            map.remove(&k);
        }
    }
}

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

    /// Seconds left on a lockout, if the name or address is locked out.
    fn throttled(&self, name: &Digest, address: Option<IpAddr>) -> Option<u64> {
        let now = self.clock.now();
        let len = self.lockout_secs();
        let cfg = &self.settings.config;
        let user = Window::current(self.user_failures.get(name).map(|n| &n.window), now, len);
        let addr = address.map(|a| Window::current(self.address_failures.get(&a), now, len));
        let mut wait = None;
        if user.count >= cfg.login_max_failures_per_user {
            wait = Some(user.started + len - now);
        }
        if let Some(a) = addr {
            if a.count >= cfg.login_max_failures_per_address {
                wait = Some(wait.unwrap_or(0).max(a.started + len - now));
            }
        }
        wait.map(|w| u64::try_from(w.max(1)).unwrap_or(1))
    }

    /// Counts a login attempt that is about to check a password, before it does: the
    /// attempt is a failure until it succeeds ([`Self::release_attempt`]). Answers the
    /// address window's start, to release the right window.
    fn reserve_attempt(&mut self, name: Digest, known: bool, address: Option<IpAddr>) -> i64 {
        let now = self.clock.now();
        let len = self.lockout_secs();
        let live = |w: &Window| now - w.started < len;
        make_room(
            &mut self.user_failures,
            &name,
            MAX_THROTTLE_ENTRIES,
            |n| live(&n.window),
            |n| !n.known,
        );
        let mut w = Window::current(self.user_failures.get(&name).map(|n| &n.window), now, len);
        w.count = w.count.saturating_add(1);
        self.user_failures
            .insert(name, NameWindow { window: w, known });
        let Some(a) = address else {
            return now;
        };
        make_room(
            &mut self.address_failures,
            &a,
            MAX_THROTTLE_ENTRIES,
            live,
            |_| true,
        );
        let mut w = Window::current(self.address_failures.get(&a), now, len);
        w.count = w.count.saturating_add(1);
        self.address_failures.insert(a, w);
        w.started
    }

    /// A reserved attempt succeeded: the name's count is cleared (as a successful login
    /// always did) and the address gets its attempt back.
    fn release_attempt(&mut self, name: &Digest, address: Option<IpAddr>, started: i64) {
        self.user_failures.remove(name);
        if let Some(w) = address.and_then(|a| self.address_failures.get_mut(&a)) {
            if w.started == started {
                w.count = w.count.saturating_sub(1);
            }
        }
    }
}

impl Handler<InsertUserIfAbsent> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: InsertUserIfAbsent, _: &mut Self::Context) -> Self::Result {
        if self.users.contains_key(&msg.user.username) {
            return Box::pin(fut::ready(Ok(false)));
        }
        let user = msg.user;
        let answer = self.store.put_user(user.clone());
        self.after_store(answer, move |act, out| {
            out?;
            act.users.insert(user.username.clone(), user);
            Ok(true)
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
        let answer = self.store.put_user(user.clone());
        self.after_store(answer, move |act, out| {
            out?;
            act.users.insert(msg.username.clone(), user);
            // A new password is often a response to a leaked one: browsers signed in with
            // the old one sign in again, and a lockout caused by guessing it ends.
            act.end_login_sessions_of(&msg.username);
            act.user_failures
                .remove(&Digest::of(msg.username.as_bytes()));
            Ok(true)
        })
    }
}

impl Handler<RemoveUser> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: RemoveUser, _: &mut Self::Context) -> Self::Result {
        // Whether the user exists: the store's answer on a shared database (`index.rs`).
        let lookup = self.lookup_user(&msg.username);
        Box::pin(lookup.then(move |found, act, _| match found {
            Ok(Some(_)) => {
                let answer = act.store.remove_user(&msg.username);
                act.after_store(answer, move |act, out| {
                    out?;
                    act.users.remove(&msg.username);
                    act.end_login_sessions_of(&msg.username);
                    Ok(true)
                })
            }
            Ok(None) => Box::pin(fut::ready(Ok(false))),
            Err(e) => Box::pin(fut::ready(Err(e.into()))),
        }))
    }
}

impl Handler<AuthenticateUser> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<String, RegistryError>>;
    fn handle(&mut self, msg: AuthenticateUser, _: &mut Self::Context) -> Self::Result {
        // The same steps, answers and counters for every name, account or not.
        let name = Digest::of(msg.username.as_bytes());
        let address = msg.address.map(address_key);
        if let Some(retry_after) = self.throttled(&name, address) {
            return Box::pin(fut::ready(Err(RegistryError::LoginThrottled {
                retry_after,
            })));
        }
        // Each check holds ~19 MiB for tens of milliseconds: a bounded number at once, and
        // a refusal rather than a queue beyond it. Nothing is counted for a refusal.
        let Ok(permit) = Arc::clone(&self.password_checks).try_acquire_owned() else {
            return Box::pin(fut::ready(Err(RegistryError::PasswordCheckBusy {
                retry_after: PASSWORD_CHECK_RETRY_SECS,
            })));
        };
        // Counted now, before the check (and before a read of the store, on a shared
        // database): a burst of guesses reaches the limit as soon as the limit's worth of
        // them have started. (Whether the name is an account only guides eviction.)
        let indexed = self.users.contains_key(&msg.username);
        let started = self.reserve_attempt(name, indexed, address);
        // On a shared database the index is a cache: the lookup reads the user through
        // when it may not answer (`index.rs`). A failed read stays counted.
        let lookup = self.lookup_user(&msg.username);
        Box::pin(
            lookup.then(move |found, act, _| -> ResponseActFuture<Self, _> {
                match found {
                    Ok(user) => act.check_password(msg, user, permit, (name, address, started)),
                    Err(e) => Box::pin(fut::ready(Err(e.into()))),
                }
            }),
        )
    }
}

impl ClientRegistry {
    /// The password check of [`AuthenticateUser`] against `user` as looked up, holding
    /// `permit`, for the attempt reserved as `(name, address, started)`.
    fn check_password(
        &mut self,
        msg: AuthenticateUser,
        user: Option<User>,
        permit: tokio::sync::OwnedSemaphorePermit,
        (name, address, started): (Digest, Option<IpAddr>, i64),
    ) -> ResponseActFuture<Self, Result<String, RegistryError>> {
        let known = user.map(|u| u.password_hash);
        let exists = known.is_some();
        let phc: Arc<str> = known
            .map(Into::into)
            .unwrap_or_else(|| Arc::clone(&self.dummy_hash));
        let password = msg.password;
        // Argon2 takes tens of milliseconds: run it on the blocking pool, never on the
        // actor's thread or an HTTP worker. The permit is released when it ends.
        let verify = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(password.secret(), &phc)
        });
        let username = msg.username;
        Box::pin(verify.into_actor(self).map(move |res, act, _| match res {
            Ok(true) if exists => {
                act.release_attempt(&name, address, started);
                Ok(username)
            }
            // The attempt stays counted.
            Ok(_) => Err(RegistryError::InvalidCredentials),
            Err(e) => Err(RegistryError::Internal(e.to_string())),
        }))
    }
}
