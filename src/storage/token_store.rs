//! [`TokenStore`]: what the token ledger stores (tokens by digest, revoked grants, token
//! lifetimes), as atomic intents: issue, rotate, revoke a token, revoke a grant. Each intent's
//! doc says what is atomic, that is what a backend shared by several server processes must
//! do in one statement or transaction (see the module docs of [`crate::storage`]).

use super::{
    GrantHolder, GrantId, Persist, RevokedGrants, StoreFuture, Swept, TokenKind, TokenRecord,
};
use crate::domain::{
    scope::Scopes,
    secrets::{AccessToken, RefreshToken, TokenKey},
};

/// A token to store: its key (the digest of its value) and its record.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Digest of the token's value.
    pub key: TokenKey,
    /// Its claims.
    pub record: TokenRecord,
}

/// What [`TokenStore::issue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// The tokens are stored.
    Issued,
    /// The grant is revoked: nothing was stored (OAuth 2.1 §4.1.3, a replay of the grant's
    /// code overtook its exchange).
    GrantRevoked,
}

/// The successor pair of a refresh token: computed by the ledger (HMAC under the server
/// key of the presented token), from the first rotation's time in microseconds: the
/// rotation's own for a first rotation, the stored one for a repeat, which only the store
/// knows once it has read the presented token. Deterministic: a backend may call it again
/// (to retry, or to write a first rotation's successors before it has read the token),
/// and gets the same pair.
pub type DeriveSuccessors = Box<dyn Fn(i64) -> (AccessToken, RefreshToken) + Send + Sync>;

/// Everything [`TokenStore::rotate`] needs, policy included: the ledger decides, the store
/// executes.
pub struct Rotation {
    /// Digest of the presented refresh token.
    pub presented: TokenKey,
    /// The authenticated client: a token of another client is [`RotateOutcome::Invalid`].
    pub client_id: String,
    /// A narrower scope for the new access token, if requested: it must be within the
    /// presented token's scope, else [`RotateOutcome::InvalidScope`].
    pub scopes: Option<Scopes>,
    /// The current time (Unix seconds).
    pub now: i64,
    /// The time stamped on a first rotation (Unix microseconds, within `now`'s second): the
    /// successors' time prefix, recorded in the rotated token.
    pub rotated_at_us: i64,
    /// The grace window in seconds: a token first rotated at second `r` (`rotated_at_us`
    /// divided by a million, rounded down) is answered again while `grace > 0 && now - r <=
    /// grace`; past that, presenting it is reuse.
    pub grace: i64,
    /// Expiry of a new access token.
    pub access_expires_at: i64,
    /// Expiry of a new refresh token.
    pub refresh_expires_at: i64,
    /// On reuse, the grant is revoked until at least this time.
    pub forget_at: i64,
    /// Derives the successors (see [`DeriveSuccessors`]).
    pub successors: DeriveSuccessors,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("client_id", &self.client_id)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// What a rotation does with the presented token once it is read, may be rotated at all
/// ([`Rotation::accepts`]) and its grant is known not to be revoked: decided here, the same
/// for every backend, which then does the reads and writes the step names inside its
/// transaction.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per rotation and matched at once; boxing would only add an allocation"
)]
pub enum RotationStep {
    /// Rotated before, past the grace window: revoke the grant (until at least
    /// [`Rotation::forget_at`]) and answer [`RotateOutcome::Reused`].
    Reuse,
    /// The requested scope is wider than the presented token's: [`RotateOutcome::InvalidScope`].
    InvalidScope,
    /// Rotated before, within the window: read these successors and answer
    /// [`Rotation::repeated`].
    Repeat {
        /// The first rotation's access token.
        access: AccessToken,
        /// The first rotation's refresh token.
        refresh: RefreshToken,
    },
    /// The first rotation: store both records, then mark the presented token rotated at
    /// [`Rotation::rotated_at_us`] (in that order: a crash in between leaves the presented
    /// token current), and answer [`RotateOutcome::Rotated`].
    Rotate {
        /// The new access token.
        access: AccessToken,
        /// The new refresh token.
        refresh: RefreshToken,
        /// The access token's record: the requested or the presented scope, never
        /// `offline_access` (SEP-2207).
        access_record: TokenRecord,
        /// The refresh token's record: the grant's full scope (OAuth 2.1 §4.3.3).
        refresh_record: TokenRecord,
    },
}

impl Rotation {
    /// Whether `old`, the presented token as stored, may be rotated at all: a refresh token
    /// of this client, unexpired. Otherwise the answer is [`RotateOutcome::Invalid`].
    /// (Whether its grant is revoked is the backend's to read, under its own locking.)
    pub fn accepts(&self, old: &TokenRecord) -> bool {
        old.kind == TokenKind::Refresh
            && old.client_id == self.client_id
            && old.expires_at > self.now
    }

    /// The step for `old`, accepted and of a grant not revoked.
    pub fn step(&self, old: &TokenRecord) -> RotationStep {
        self.step_with(old, |at| (self.successors)(at))
    }

    /// [`Self::step`], with the successors of the step (if it has any) from `derive`: a
    /// backend that derived a first rotation's pair already (to write it before reading the
    /// token) hands it back instead of deriving it twice. `derive` must answer what
    /// [`Rotation::successors`] would for the time it is given.
    pub fn step_with(
        &self,
        old: &TokenRecord,
        derive: impl FnOnce(i64) -> (AccessToken, RefreshToken),
    ) -> RotationStep {
        if let Some(rotated_at_us) = old.rotated_at_us {
            let rotated_at = rotated_at_us.div_euclid(1_000_000);
            if !(self.grace > 0 && self.now - rotated_at <= self.grace) {
                return RotationStep::Reuse;
            }
        }
        let access_scopes = match &self.scopes {
            Some(s) if !s.is_subset(&old.scopes) => return RotationStep::InvalidScope,
            Some(s) => s.for_access_token(),
            None => old.scopes.for_access_token(),
        };
        if let Some(rotated_at_us) = old.rotated_at_us {
            let (access, refresh) = derive(rotated_at_us);
            return RotationStep::Repeat { access, refresh };
        }
        let (access, refresh) = derive(self.rotated_at_us);
        let access_record = TokenRecord {
            kind: TokenKind::Access,
            grant_id: old.grant_id,
            client_id: old.client_id.clone(),
            subject: old.subject.clone(),
            scopes: access_scopes,
            resource: old.resource.clone(),
            issued_at: self.now,
            expires_at: self.access_expires_at,
            rotated_at_us: None,
        };
        let refresh_record = TokenRecord {
            kind: TokenKind::Refresh,
            scopes: old.scopes.clone(),
            expires_at: self.refresh_expires_at,
            ..access_record.clone()
        };
        RotationStep::Rotate {
            access,
            refresh,
            access_record,
            refresh_record,
        }
    }

    /// The answer of a [`RotationStep::Repeat`]: the successors again if both are stored
    /// (`access_record`, `refresh_record` as read), in `grant` and unexpired; else
    /// [`RotateOutcome::Invalid`] (one was revoked, expired or swept since).
    pub fn repeated(
        &self,
        grant: &GrantId,
        access: AccessToken,
        refresh: RefreshToken,
        access_record: Option<TokenRecord>,
        refresh_record: Option<TokenRecord>,
    ) -> RotateOutcome {
        let usable = |t: &TokenRecord| t.grant_id == *grant && t.expires_at > self.now;
        match (access_record, refresh_record) {
            (Some(a), Some(f)) if usable(&a) && usable(&f) => RotateOutcome::Repeated(Successors {
                access,
                refresh,
                access_record: a,
            }),
            _ => RotateOutcome::Invalid,
        }
    }
}

/// A successor pair as answered by a rotation.
#[derive(Debug)]
pub struct Successors {
    /// The access token.
    pub access: AccessToken,
    /// The refresh token.
    pub refresh: RefreshToken,
    /// The access token's record (its scope and expiry make the answer).
    pub access_record: TokenRecord,
}

/// What [`TokenStore::rotate`] did.
#[derive(Debug)]
pub enum RotateOutcome {
    /// First rotation: the successors are stored and the presented token is rotated out.
    Rotated(Successors),
    /// Presented again within the grace window: the first rotation's successors, as they
    /// are now (both still stored, in the same grant and unexpired). Nothing was written.
    Repeated(Successors),
    /// Presented again past the grace window: the grant is revoked (until at least
    /// [`Rotation::forget_at`]) in the same transaction.
    Reused {
        /// The grant now revoked.
        grant_id: GrantId,
        /// Until when it is remembered (the later of the old and the requested time).
        forget_at: i64,
        /// The client it belongs to (for the log).
        client_id: String,
    },
    /// Unknown, not a refresh token, another client's, expired, of a revoked grant, or
    /// within the window but with a successor since expired, revoked or gone. Nothing was
    /// written.
    Invalid,
    /// The requested scope is wider than the presented token's. Nothing was written.
    InvalidScope,
}

/// What [`TokenStore::revoke_grant`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRevocation {
    /// The grant.
    pub grant_id: GrantId,
    /// Whether it was not revoked before.
    pub newly: bool,
    /// Until when it is remembered now.
    pub forget_at: i64,
}

/// What [`TokenStore::revoke_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRevocation {
    /// Unknown, or another client's: nothing changed (RFC 7009 §2.2 answers alike).
    Ignored,
    /// An access token: removed.
    AccessRemoved,
    /// A refresh token: removed, and its grant revoked (RFC 7009 §2.1).
    GrantRevoked(GrantRevocation),
}

/// What the token ledger stores: tokens by digest, revoked grants, token lifetimes.
///
/// # Atomicity
/// Each method is one intent, atomic as its doc says: a backend shared by several server
/// processes (PostgreSQL) implements each with one statement or one transaction, so two
/// processes rotating the same token, or one issuing into a grant another revokes, are
/// arbitrated by the database. The sled backend meets the same contract differently:
/// exactly one actor (the ledger) owns its trees and handles one message at a time, and the
/// sled store does each intent's reads and writes inside the call, so no other intent can
/// interleave. (sled's multi-tree transactions would give the same guarantee at a cost;
/// with one owner they buy nothing.)
///
/// # Futures
/// Every method answers a future, so a backend may be a network away. The sled backend does
/// its work in the call and answers a ready future; the ledger must not rely on that (see
/// its module docs): it updates its in-memory state only from an intent's answer.
///
/// # Durability
/// A write is durable once a later [`persist`](Self::persist) resolves; the requester, not
/// the actor, waits for that ([`Durable`](super::Durable)).
pub trait TokenStore: Send + 'static {
    /// Stores the first tokens of a grant (an access token, and a refresh token if
    /// given), all of `access`'s grant, unless that grant is revoked.
    ///
    /// Atomic: the check that the grant is not revoked and the inserts are one
    /// transaction, so either the tokens exist before a revocation (which then covers
    /// them) or none are stored ([`IssueOutcome::GrantRevoked`]).
    fn issue(&self, access: NewToken, refresh: Option<NewToken>) -> StoreFuture<IssueOutcome>;

    /// Rotates a refresh token given the presented one: in one transaction, reads it
    /// (locking it), and
    /// - answers [`RotateOutcome::Invalid`] if it is unknown, not a refresh token, another
    ///   client's, expired at `now`, or of a revoked grant;
    /// - if it was rotated before and `now` is past the grace window: revokes its grant
    ///   (as [`revoke_grant`](Self::revoke_grant) does) and answers
    ///   [`RotateOutcome::Reused`];
    /// - answers [`RotateOutcome::InvalidScope`] if the requested scope is wider;
    /// - if it was rotated before, within the window: derives the successors for the
    ///   recorded rotation time and answers them ([`RotateOutcome::Repeated`]) if both
    ///   are stored, in the same grant and unexpired, else [`RotateOutcome::Invalid`];
    /// - else derives the successors for `rotated_at_us`, inserts them (the access token
    ///   with the requested or the presented scope, the refresh token with the presented
    ///   scope, both with the presented token's grant, client, subject and resource; the
    ///   access token's scope never includes `offline_access`, SEP-2207),
    ///   marks the presented token rotated at `rotated_at_us`, and answers
    ///   [`RotateOutcome::Rotated`].
    ///
    /// Two concurrent rotations of one token: one rotates, the other sees it rotated.
    fn rotate(&self, rotation: Rotation) -> StoreFuture<RotateOutcome>;

    /// Reads a token record (introspection, bearer validation): one read. A backend
    /// shared by several processes (PostgreSQL) answers `None` for a token whose grant is
    /// revoked, in the same statement (one more indexed lookup), so a revocation committed
    /// by any process is in force at once for every reader; the ledger's in-memory set
    /// only adds to that. The sled backend may answer such a token: there the ledger's
    /// set is complete (this process made every revocation) and says it is not active.
    fn get(&self, key: &TokenKey) -> StoreFuture<Option<TokenRecord>>;

    /// Revokes a token on behalf of `client_id` (RFC 7009): in one transaction, reads it;
    /// if it is unknown or another client's, nothing changes
    /// ([`TokenRevocation::Ignored`]); an access token is removed; a refresh token is
    /// removed and its grant revoked until at least `forget_at`.
    fn revoke_token(
        &self,
        key: &TokenKey,
        client_id: &str,
        forget_at: i64,
    ) -> StoreFuture<TokenRevocation>;

    /// Revokes a grant until at least `forget_at`: an upsert that only ever raises the
    /// recorded time (`GREATEST` in SQL). No token is issued into it or rotated in it
    /// afterwards ([`issue`](Self::issue), [`rotate`](Self::rotate)).
    fn revoke_grant(&self, grant: GrantId, forget_at: i64) -> StoreFuture<GrantRevocation>;

    /// Records that tokens living up to `lifetime` seconds may be issued until
    /// `in_force_until` (raises the time recorded for that lifetime, never lowers it), and
    /// answers every recorded `(lifetime, in_force_until)` (an unreadable record as
    /// `(i64::MAX, i64::MAX)`: fail closed). A revocation must be remembered until every
    /// token it covers has expired, whatever lifetimes the server runs with when it
    /// revokes: these records say how long tokens issued under earlier settings can still
    /// live. One write per start and per sweep interval, none per token.
    fn record_lifetime(&self, lifetime: i64, in_force_until: i64) -> StoreFuture<Vec<(i64, i64)>>;

    /// Every revoked grant still remembered, with its `forget_at` (start-up load). A
    /// record whose forget time cannot be read answers `i64::MAX` (revoked for good: fail
    /// closed); records that do not decode are logged and counted in
    /// [`RevokedGrants::undecodable`], never dropped.
    fn revoked_grants(&self) -> StoreFuture<RevokedGrants>;

    /// Every grant with a stored token of `holder`, each with the latest `expires_at` among
    /// its tokens. Token keys are digests of the token values, so there is no index by
    /// subject or client: this walks the whole token tree, which is acceptable only for
    /// offline administration (`oauth-mcp admin`), never on a request path.
    fn grants_of(&self, holder: &GrantHolder) -> StoreFuture<Vec<(GrantId, i64)>>;

    /// One bounded slice of sweeping, each tree from where its previous slice stopped: at
    /// most `limit` tokens (removing those expired at `now`), `limit` revoked grants
    /// (removing those past `forget_at`; undecodable ones are kept and reported), and the
    /// lifetime records no token issued under them can outlive any more.
    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept>;

    /// Number of stored token records (live, rotated or expired-not-yet-swept).
    fn count(&self) -> StoreFuture<usize>;

    /// Up to `limit` stored tokens with keys after `after` (from the first when `None`), in
    /// key order: `oauth-mcp admin export` pages through the store with it. A record that
    /// does not decode is an error (an export must not silently lose a token).
    /// Administration only, never on a request path.
    fn tokens_after(&self, after: Option<TokenKey>, limit: usize) -> StoreFuture<Vec<NewToken>>;

    /// Every recorded `(lifetime, in_force_until)`, as [`record_lifetime`](Self::record_lifetime)
    /// answers them, without recording one (export).
    fn lifetimes(&self) -> StoreFuture<Vec<(i64, i64)>>;

    /// Inserts each token whose key is not stored yet, leaving stored ones as they are
    /// (`oauth-mcp admin import`, idempotent): one transaction on a shared database. Does
    /// not check revocations: an import copies a store as it was, its revoked grants
    /// included. Answers how many were inserted.
    fn import_tokens(&self, tokens: Vec<NewToken>) -> StoreFuture<usize>;

    /// Resolves once earlier writes are on disk.
    fn persist(&self) -> Persist;
}
