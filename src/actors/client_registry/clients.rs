//! Registered clients: registration (RFC 7591) with its per-address rate limit and the
//! `max_registered_clients` bound, client authentication (OAuth 2.1 §2.4), administration
//! (insert, list, remove) and the sweep of dynamically registered clients never issued a
//! token.
//!
//! An identical public-client registration from the same address key within 24 hours
//! answers the client registered first (see `repeats.rs`), before either limit is looked
//! at: the per-address limit counts distinct clients, and a repeat writes nothing.

use std::{net::IpAddr, sync::Arc};

use actix::prelude::*;
use futures_util::future::try_join_all;

use super::{repeats::REPEAT_WINDOW_SECS, users::address_digest, ClientRegistry, RegistryError};
use crate::domain::{
    client::{AuthMethod, Client, ClientOrigin, NewClient, RegisteredClient},
    client_address::address_key,
    secrets::{ClientSecret, Digest},
};
use crate::storage::{
    shared_state::{Entry, Namespace},
    Registration, StorageError, StoreFuture,
};

/// Registers a client (RFC 7591). The registry mints `client_id` and secret.
/// Dynamically registered clients count against `max_registered_clients`.
#[derive(Debug, Message)]
#[rtype(result = "Result<RegisteredClient, RegistryError>")]
pub struct RegisterClient {
    /// The validated metadata.
    pub client: NewClient,
    /// Address of the caller, for the per-address rate limit.
    pub address: Option<IpAddr>,
    /// [`ClientOrigin::Dynamic`] at `/register`, [`ClientOrigin::Operator`] from
    /// `oauth-mcp admin`.
    pub origin: ClientOrigin,
}

/// Records that a token is about to be issued to a client, so that it is never removed as
/// unused. Sent by the token flow before the first issuance only (when the client it
/// authenticated is not yet marked), and durable before it answers. Answers whether the
/// client still exists: a client removed meanwhile must not be issued tokens.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct MarkClientUsed {
    /// The client id.
    pub client_id: String,
}

/// Inserts a client with a chosen id and secret unless one with that id exists (demo
/// seeding, administration). Returns whether it was inserted.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct InsertClientIfAbsent {
    /// The client, with `secret_digest` already set for confidential clients.
    pub client: Client,
}

/// Looks up a client by id (for /authorize, which must not redirect to unknown clients).
#[derive(Debug, Message)]
#[rtype(result = "Option<Client>")]
pub struct GetClient {
    /// The client id.
    pub client_id: String,
}

/// Authenticates a client at the token, revocation or introspection endpoint.
#[derive(Debug, Message)]
#[rtype(result = "Result<Client, RegistryError>")]
pub struct AuthenticateClient {
    /// The presented client id.
    pub client_id: String,
    /// The presented secret; `None` for the `none` method.
    pub secret: Option<ClientSecret>,
}

/// Every registered client, ordered by registration time then id (administration).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Client>")]
pub struct ListClients;

/// Removes a client: it can no longer authenticate or start an authorization request.
/// Answers whether it existed. Its grants are the token ledger's to revoke
/// (`RevokeGrantsOf`), which the caller does next.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct RemoveClient {
    /// The client id.
    pub client_id: String,
}

/// The window of the per-address registration limit (`registrations_per_hour`).
const REGISTRATION_WINDOW_SECS: i64 = 3600;

/// Most unused clients removed per sweep tick, so a sweep never holds the registry long.
const MAX_REMOVALS_PER_SWEEP: usize = 256;

impl ClientRegistry {
    /// Forgets `client_id` in the in-memory index and its bookkeeping (the store is the
    /// caller's to update).
    pub(super) fn forget_client(&mut self, client_id: &str) -> Option<Client> {
        let client = self.clients.remove(client_id)?;
        if client.origin == ClientOrigin::Dynamic {
            self.dynamic_clients = self.dynamic_clients.saturating_sub(1);
            self.unused
                .remove(&(client.issued_at, client.client_id.clone()));
        }
        Some(client)
    }

    /// Removes dynamically registered clients that were never issued a token within
    /// `unused_client_ttl` of their registration, oldest first and at most
    /// [`MAX_REMOVALS_PER_SWEEP`] per call; the rest wait for the next tick. Answers how
    /// many were removed, once the removals are on disk.
    pub(super) fn sweep_unused_clients(
        &mut self,
    ) -> ResponseActFuture<Self, Result<usize, StorageError>> {
        let ttl = self.settings.config.unused_client_ttl;
        let cutoff = self
            .clock
            .now()
            .saturating_sub(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let expired: Vec<String> = self
            .unused
            .iter()
            .take_while(|(issued_at, _)| *issued_at <= cutoff)
            .take(MAX_REMOVALS_PER_SWEEP)
            .map(|(_, id)| id.clone())
            .collect();
        if expired.is_empty() {
            return Box::pin(fut::ready(Ok(0)));
        }
        // Only if still unused in the store: on a shared database another instance may
        // have issued one its first token since this index learnt of it.
        let removals = expired.iter().map(|id| self.store.remove_unused_client(id));
        let answer: StoreFuture<Vec<bool>> = Box::pin(try_join_all(removals));
        self.after_store(answer, move |act, out| {
            let removed = out?;
            for (id, gone) in expired.iter().zip(&removed) {
                if *gone || act.freshness.is_shared() {
                    // Gone; or kept because it was used meanwhile: read it again.
                    act.forget_client(id);
                } else if let Some(c) = act.clients.get(id) {
                    let key = (c.issued_at, c.client_id.clone());
                    act.unused.remove(&key);
                }
            }
            let removed = removed.into_iter().filter(|r| *r).count();
            tracing::info!(
                removed,
                "removed dynamically registered clients never issued a token"
            );
            Ok(removed)
        })
    }
}

impl Handler<MarkClientUsed> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: MarkClientUsed, _: &mut Self::Context) -> Self::Result {
        // On a shared database the client may be unknown to the index (registered
        // elsewhere) or out of date: the lookup reads it then (`index.rs`).
        let lookup = self.lookup_client(&msg.client_id);
        Box::pin(lookup.then(|found, act, _| match found {
            Ok(Some(client)) => act.mark_used(client),
            Ok(None) => Box::pin(fut::ready(Ok(false))),
            Err(e) => Box::pin(fut::ready(Err(e.into()))),
        }))
    }
}

impl ClientRegistry {
    /// Marks `client` (as looked up) used in the store, then in the index.
    fn mark_used(
        &mut self,
        client: Client,
    ) -> ResponseActFuture<Self, Result<bool, RegistryError>> {
        if client.used {
            return Box::pin(fut::ready(Ok(true)));
        }
        let mut marked = client;
        marked.used = true;
        let generation = self.generation();
        let answer = self.store.put_client(marked.clone());
        self.after_store(answer, move |act, out| {
            // The store says whether the client is still there: a removal may have
            // overtaken the write (a backend that answers later), and then it stands. The
            // index is no witness: on a shared database this very write's change may
            // already have made the feed forget the entry (to be read again).
            let stored = out?;
            act.unused
                .remove(&(marked.issued_at, marked.client_id.clone()));
            if !stored || !act.unchanged_since(generation) {
                // Gone, or changed elsewhere meanwhile: read it again (see
                // `unchanged_since`).
                act.forget_client(&marked.client_id);
            } else if let Some(client) = act.clients.get_mut(&marked.client_id) {
                *client = marked;
            }
            Ok(stored)
        })
    }
}

impl Handler<GetClient> for ClientRegistry {
    type Result = ActorResponse<Self, Option<Client>>;
    fn handle(&mut self, msg: GetClient, _: &mut Self::Context) -> Self::Result {
        // Answered in the handler when the index may answer (always on sled).
        if let Some(known) = self.indexed_client(&msg.client_id) {
            return ActorResponse::reply(known.cloned());
        }
        let read = self.read_client(&msg.client_id);
        ActorResponse::r#async(read.map(|found, _, _| {
            // The caller treats an unknown client as one it must not redirect to: failing
            // closed, a storage failure reads as unknown (and is logged).
            found.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "client lookup failed");
                None
            })
        }))
    }
}

impl Handler<AuthenticateClient> for ClientRegistry {
    type Result = ActorResponse<Self, Result<Client, RegistryError>>;
    fn handle(&mut self, msg: AuthenticateClient, _: &mut Self::Context) -> Self::Result {
        // Answered in the handler when the index may answer (always on sled): the token
        // endpoint's hot path stays as it was.
        if let Some(known) = self.indexed_client(&msg.client_id) {
            return ActorResponse::reply(authenticate(known, msg.secret));
        }
        let read = self.read_client(&msg.client_id);
        ActorResponse::r#async(
            read.map(move |found, _, _| authenticate(found?.as_ref(), msg.secret)),
        )
    }
}

/// Client authentication against `client` as looked up (`None`: unknown).
fn authenticate(
    client: Option<&Client>,
    secret: Option<ClientSecret>,
) -> Result<Client, RegistryError> {
    match (client, secret) {
        (Some(c), None) if c.auth_method == AuthMethod::None => Ok(c.clone()),
        (Some(c), Some(secret)) => {
            // Server-minted secrets are 256 random bits, so SHA-256 at rest is enough and
            // keeps authentication cheap; the comparison is constant time.
            let presented = secret.digest();
            match &c.secret_digest {
                Some(stored) if stored.ct_eq(&presented) => Ok(c.clone()),
                _ => Err(RegistryError::InvalidClient),
            }
        }
        (None, Some(secret)) => {
            // Same work as for a known client, so timing does not reveal which ids exist.
            let _ = Digest([0; 32]).ct_eq(&secret.digest());
            Err(RegistryError::InvalidClient)
        }
        _ => Err(RegistryError::InvalidClient),
    }
}

impl Handler<RegisterClient> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<RegisteredClient, RegistryError>>;
    fn handle(&mut self, msg: RegisterClient, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let dynamic = msg.origin == ClientOrigin::Dynamic;
        // Only public clients: a confidential client's secret is shown once, so a repeat
        // could not be answered with it and gets a new client.
        let fingerprint = match msg.address.map(address_key) {
            Some(key) if dynamic && msg.client.auth_method == AuthMethod::None => {
                msg.client.fingerprint(key)
            }
            _ => None,
        };
        let Some(fp) = fingerprint else {
            return self.register_counted(msg, None, now);
        };
        let earlier = self.shared.get(Namespace::RepeatRegistrations, &fp, now);
        self.after_shared(earlier, move |act, out| {
            let earlier = match out {
                Ok(earlier) => earlier,
                Err(e) => return Box::pin(fut::ready(Err(e.into()))),
            };
            let Some(client_id) = earlier.and_then(|e| String::from_utf8(e.value).ok()) else {
                return act.register_counted(msg, Some(fp), now);
            };
            // The client may have been registered by another instance: looked up through
            // the index (read through to the store on a miss).
            Box::pin(act.lookup_client(&client_id).then(move |found, act, _| {
                let client = match found {
                    Ok(found) => found.filter(|c| act.repeatable(c, now)),
                    Err(e) => return Box::pin(fut::ready(Err(e.into()))) as Self::Result,
                };
                // Unknown when removed by the unused-client sweep or by administration:
                // the repeat registers a new client, whose fingerprint replaces this one.
                let Some(client) = client else {
                    return act.register_counted(msg, Some(fp), now);
                };
                tracing::debug!(client_id = %client.client_id, "repeated registration answered");
                // The first registration may still be waiting for its flush: a repeat is
                // answered only once the client is on disk too, like the first answer.
                let persist = act.store.persist();
                Box::pin(
                    async move {
                        persist.await?;
                        Ok(RegisteredClient {
                            client,
                            secret: None,
                        })
                    }
                    .into_actor(act),
                )
            }))
        })
    }
}

impl ClientRegistry {
    /// Registers a client that is not a repeat, after the bound and the per-address limit
    /// (counted in the shared state, so across every process) admit it; remembers its
    /// `fingerprint` for repeats.
    fn register_counted(
        &mut self,
        msg: RegisterClient,
        fingerprint: Option<Digest>,
        now: i64,
    ) -> ResponseActFuture<Self, Result<RegisteredClient, RegistryError>> {
        let dynamic = msg.origin == ClientOrigin::Dynamic;
        let max = self.settings.config.max_registered_clients;
        // Checked before the rate limit counts the attempt: a full registry is not the
        // caller's doing. The index answers here; the store decides (it also holds the
        // clients other processes registered, on a shared backend).
        if dynamic && self.dynamic_clients >= max {
            return Box::pin(fut::ready(Err(RegistryError::Full)));
        }
        let Some(address) = msg.address else {
            return self.register(msg, fingerprint, now);
        };
        let limit = self.settings.config.registrations_per_hour;
        let counted = self.shared.count(
            Namespace::Registrations,
            &address_digest(address),
            REGISTRATION_WINDOW_SECS,
            limit,
            now,
            false,
        );
        self.after_shared(counted, move |act, out| match out {
            Ok(count) if count.admitted(limit) => act.register(msg, fingerprint, now),
            Ok(count) => Box::pin(fut::ready(Err(RegistryError::RateLimited {
                retry_after: count.retry_after(REGISTRATION_WINDOW_SECS, now),
            }))),
            Err(e) => Box::pin(fut::ready(Err(e.into()))),
        })
    }

    /// Mints the client id and secret and stores the client.
    fn register(
        &mut self,
        msg: RegisterClient,
        fingerprint: Option<Digest>,
        now: i64,
    ) -> ResponseActFuture<Self, Result<RegisteredClient, RegistryError>> {
        let dynamic = msg.origin == ClientOrigin::Dynamic;
        let max = self.settings.config.max_registered_clients;
        let new = msg.client;
        let secret = (new.auth_method != AuthMethod::None).then(ClientSecret::generate);
        // 256 random bits, unguessable and collision-free in practice; retried anyway
        // against the index, and the store refuses a taken id.
        let mut client_id = crate::domain::secrets::random_token();
        while self.clients.contains_key(&client_id) {
            client_id = crate::domain::secrets::random_token();
        }
        let client = new.into_client(
            client_id,
            secret.as_ref().map(ClientSecret::digest),
            &self.settings.default_scopes,
            now,
            msg.origin,
        );
        let registered = self
            .store
            .register_client(client.clone(), dynamic.then_some(max));
        // Remembered once the client is stored (a failed registration answers nothing to
        // repeat). Two identical registrations racing on two processes may each register
        // a client; the later fingerprint wins, and both clients work.
        let shared = Arc::clone(&self.shared);
        let (remembered_id, expires_at) = (client.client_id.clone(), now + REPEAT_WINDOW_SECS);
        let generation = self.generation();
        let answer: StoreFuture<Registration> = Box::pin(async move {
            let registration = registered.await?;
            if let (Registration::Registered, Some(fp)) = (registration, fingerprint) {
                let entry = Entry {
                    value: remembered_id.into_bytes(),
                    owner: None,
                    expires_at,
                };
                shared
                    .put(Namespace::RepeatRegistrations, &fp, entry, now)
                    .await?;
            }
            Ok(registration)
        });
        self.after_store(answer, move |act, out| match out? {
            Registration::Registered => {
                // Else read again at the next lookup (see `unchanged_since`).
                if act.unchanged_since(generation) {
                    act.remember_client(client.clone());
                }
                Ok(RegisteredClient { client, secret })
            }
            Registration::Full => Err(RegistryError::Full),
            Registration::IdTaken => Err(RegistryError::Internal(
                "a freshly minted client id was taken".into(),
            )),
        })
    }
}

impl ClientRegistry {
    /// Whether `client`, registered by an identical registration (same fingerprint) within
    /// [`REPEAT_WINDOW_SECS`], may answer the repeat: yes unless, never issued a token, it
    /// is about to be removed as unused: with less than [`repeat_margin`](Self::repeat_margin)
    /// (at most an hour) left, the caller could not finish an authorization before the
    /// sweep, so it gets a new client instead.
    fn repeatable(&self, client: &Client, now: i64) -> bool {
        let ttl =
            i64::try_from(self.settings.config.unused_client_ttl.as_secs()).unwrap_or(i64::MAX);
        let removed_at = client.issued_at.saturating_add(ttl);
        client.used || removed_at.saturating_sub(now) >= self.repeat_margin()
    }

    /// How long an unused client must still have before the sweep removes it to be
    /// answered to a repeat: an hour, or half the unused-client TTL when that is shorter.
    fn repeat_margin(&self) -> i64 {
        let ttl =
            i64::try_from(self.settings.config.unused_client_ttl.as_secs()).unwrap_or(i64::MAX);
        (ttl / 2).min(3600)
    }

    /// Adds a stored client to the index and its bookkeeping.
    pub(super) fn remember_client(&mut self, client: Client) {
        if client.origin == ClientOrigin::Dynamic {
            self.dynamic_clients += 1;
            if !client.used {
                self.unused
                    .insert((client.issued_at, client.client_id.clone()));
            }
        }
        self.clients.insert(client.client_id.clone(), client);
    }
}

impl Handler<InsertClientIfAbsent> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: InsertClientIfAbsent, _: &mut Self::Context) -> Self::Result {
        if self.clients.contains_key(&msg.client.client_id) {
            return Box::pin(fut::ready(Ok(false)));
        }
        let client = msg.client;
        let generation = self.generation();
        let answer = self.store.register_client(client.clone(), None);
        self.after_store(answer, move |act, out| match out? {
            Registration::Registered => {
                // Else read again at the next lookup (see `unchanged_since`).
                if act.unchanged_since(generation) {
                    act.remember_client(client);
                }
                Ok(true)
            }
            Registration::IdTaken | Registration::Full => Ok(false),
        })
    }
}

impl Handler<ListClients> for ClientRegistry {
    type Result = MessageResult<ListClients>;
    fn handle(&mut self, _: ListClients, _: &mut Self::Context) -> Self::Result {
        let mut clients: Vec<Client> = self.clients.values().cloned().collect();
        clients.sort_by(|a, b| (a.issued_at, &a.client_id).cmp(&(b.issued_at, &b.client_id)));
        MessageResult(clients)
    }
}

impl Handler<RemoveClient> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<bool, RegistryError>>;
    fn handle(&mut self, msg: RemoveClient, _: &mut Self::Context) -> Self::Result {
        // Whether it exists: the store's answer on a shared database (`index.rs`).
        let lookup = self.lookup_client(&msg.client_id);
        Box::pin(lookup.then(move |found, act, _| match found {
            Ok(Some(_)) => {
                let answer = act.store.remove_client(&msg.client_id);
                act.after_store(answer, move |act, out| {
                    out?;
                    act.forget_client(&msg.client_id);
                    Ok(true)
                })
            }
            Ok(None) => Box::pin(fut::ready(Ok(false))),
            Err(e) => Box::pin(fut::ready(Err(e.into()))),
        }))
    }
}
