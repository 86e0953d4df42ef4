//! sled implementations of the store traits. Each actor gets its own store value holding
//! only its own trees; tree names are namespaced and versioned consts.

use serde::{de::DeserializeOwned, Serialize};

use super::{
    codec::{
        code_expires, decode_code, decode_token, encode_code, encode_token, encode_used_code,
        token_expires_at,
    },
    records::{CodeRecord, GrantHolder, GrantId, StoredCode, TokenRecord, UsedCodeRecord},
    ClientStore, CodeStore, GroupCommit, Persist, RevokedGrants, StorageError, Swept, TokenStore,
};
use crate::domain::{
    client::{Client, User},
    secrets::TokenKey,
};

/// Registered clients, keyed by client_id.
pub const CLIENTS_TREE: &str = "oauth.clients.v1";
/// Users, keyed by username.
pub const USERS_TREE: &str = "oauth.users.v1";
/// Authorization codes, live and redeemed (kept for replay detection), keyed by
/// [`TokenKey`] (time prefix, then SHA-256 of the code); binary values.
pub const CODES_TREE: &str = "oauth.codes.v2";
/// Code trees of the first layout (JSON), dropped when found.
const OLD_CODE_TREES: [&str; 2] = ["oauth.codes.v1", "oauth.used_codes.v1"];
/// Tokens, keyed by [`TokenKey`]: the token's time prefix, then its SHA-256.
pub const TOKENS_TREE: &str = "oauth.tokens.v1";
/// Facts about the data directory itself: [`FORMAT_KEY`] → format version (u32 BE).
pub const META_TREE: &str = "oauth.meta";
/// Key of the storage format version in [`META_TREE`].
pub const FORMAT_KEY: &[u8] = b"format_version";
/// The storage format this build reads and writes: the trees and record layouts of
/// `docs/storage.md`. A layout change bumps it, and `check_format` then either migrates an
/// older directory explicitly or refuses it.
pub const FORMAT_VERSION: u32 = 1;

/// Opens the sled database in `config.data_dir` with an explicit, small cache, and checks
/// (or, on a new directory, records) its storage format version.
pub fn open_db(config: &crate::config::Config) -> Result<sled::Db, StorageError> {
    let db = sled::Config::new()
        .path(&config.data_dir)
        .cache_capacity(config.cache_capacity)
        // Durability comes from our group commit; sled's own timer only bounds how much an
        // un-acknowledged write can lag.
        .flush_every_ms(Some(1000))
        .open()?;
    check_format(&db)?;
    Ok(db)
}

/// Checks, and on a new directory records, the storage format version.
///
/// A directory written by an oauth-mcp from before versioning (no record, but our trees) is
/// format 1 already, and gets the record. A recorded version other than [`FORMAT_VERSION`]
/// is refused with [`StorageError::UnsupportedFormat`] before anything else is read, so a
/// newer layout is never misread (there are no older versioned formats to migrate yet).
pub fn check_format(db: &sled::Db) -> Result<(), StorageError> {
    let meta = db.open_tree(META_TREE)?;
    match meta.get(FORMAT_KEY)? {
        None => {
            meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes()[..])?;
            db.flush()?;
            Ok(())
        }
        Some(v) => match <[u8; 4]>::try_from(v.as_ref()).map(u32::from_be_bytes) {
            Ok(FORMAT_VERSION) => Ok(()),
            Ok(other) => Err(StorageError::UnsupportedFormat {
                found: other.to_string(),
                supported: FORMAT_VERSION,
            }),
            Err(_) => Err(StorageError::UnsupportedFormat {
                found: format!("an unreadable record ({} bytes)", v.len()),
                supported: FORMAT_VERSION,
            }),
        },
    }
}

/// Revoked grants: grant id → `forget_at` (i64 BE).
pub const REVOKED_GRANTS_TREE: &str = "oauth.revoked_grants.v1";
/// Token lifetimes: the longest token lifetime in seconds (i64 BE) → until when tokens
/// with it may be issued (i64 BE), so a revocation is remembered until every token it
/// covers has expired, whatever lifetimes the server runs with when it revokes.
pub const LIFETIMES_TREE: &str = "oauth.token_lifetimes.v1";

fn encode<T: Serialize>(tree: &'static str, v: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(v).map_err(|e| StorageError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

/// Durability policy shared by the stores of one database.
#[derive(Clone, Debug)]
pub struct Durability {
    commit: Option<GroupCommit>,
}

impl Durability {
    /// Replies wait for a flush (the production setting).
    pub fn durable(commit: GroupCommit) -> Self {
        Self {
            commit: Some(commit),
        }
    }

    /// Replies do not wait for a flush; sled's background flush still runs. For benches.
    pub fn relaxed() -> Self {
        Self { commit: None }
    }

    fn persist(&self) -> Persist {
        match &self.commit {
            Some(c) => c.persist(),
            None => Box::pin(async { Ok(()) }),
        }
    }
}

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

/// [`CodeStore`] on sled: one tree, values in the binary layout of [`codec`](super::codec).
#[derive(Debug)]
pub struct SledCodeStore {
    codes: sled::Tree,
    durability: Durability,
    /// Where the incremental sweep continues (the store is owned by one actor).
    sweep_cursor: std::cell::RefCell<Vec<u8>>,
}

impl SledCodeStore {
    /// Opens the code issuer's tree. The trees of the earlier layout (JSON codes, and used
    /// codes in a tree of their own) hold only short-lived entries; they are dropped.
    pub fn open(db: &sled::Db, durability: Durability) -> Result<Self, StorageError> {
        for old in OLD_CODE_TREES {
            db.drop_tree(old)?;
        }
        Ok(Self {
            codes: db.open_tree(CODES_TREE)?,
            durability,
            sweep_cursor: std::cell::RefCell::new(Vec::new()),
        })
    }
}

fn corrupt_code() -> StorageError {
    StorageError::Corrupt {
        tree: CODES_TREE,
        reason: "undecodable code record".into(),
    }
}

impl CodeStore for SledCodeStore {
    fn insert(&self, key: &TokenKey, record: &CodeRecord) -> Result<(), StorageError> {
        self.codes.insert(key.0, encode_code(record))?;
        Ok(())
    }

    fn get(&self, key: &TokenKey) -> Result<Option<StoredCode>, StorageError> {
        match self.codes.get(key.0)? {
            Some(v) => decode_code(&v).map(Some).ok_or_else(corrupt_code),
            None => Ok(None),
        }
    }

    fn mark_used(&self, key: &TokenKey, record: &UsedCodeRecord) -> Result<(), StorageError> {
        self.codes.insert(key.0, encode_used_code(record))?;
        Ok(())
    }

    fn remove(&self, key: &TokenKey) -> Result<(), StorageError> {
        self.codes.remove(key.0)?;
        Ok(())
    }

    fn remove_live_codes_of(&self, holder: &GrantHolder) -> Result<usize, StorageError> {
        let mut removed = 0;
        for kv in self.codes.iter() {
            let (k, v) = kv?;
            // Redeemed markers carry no client or subject (their tokens are the ledger's to
            // revoke); undecodable entries are left to the sweeper.
            if let Some(StoredCode::Live(code)) = decode_code(&v) {
                if holder.holds(&code.client_id, Some(&code.subject)) {
                    self.codes.remove(k)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn sweep(&self, now: i64, limit: usize) -> Result<Swept, StorageError> {
        let mut swept = Swept::default();
        walk_slice(&self.codes, &self.sweep_cursor, limit, |key, value| {
            match code_expires(value) {
                Some(expires) if expires <= now => {
                    self.codes.remove(key)?;
                    swept.removed += 1;
                }
                Some(_) => {}
                // Too short to say when it expires, so too short to say what it is: it may
                // be a redeemed code, whose replay must still revoke its grant. Kept: such
                // a code can never be redeemed (`get` reports it corrupt), and dropping it
                // would turn a replay into a plain unknown code.
                None => {
                    tracing::error!(
                        tree = CODES_TREE,
                        bytes = value.len(),
                        "undecodable code record kept (it may mark a redeemed code)"
                    );
                    swept.undecodable_revocations += 1;
                }
            }
            Ok(())
        })?;
        Ok(swept)
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

/// Visits at most `limit` entries of `tree` from `cursor` on (`visit` may remove the entry
/// it is given), and leaves `cursor` where the next call continues (back at the start after
/// the end). If `visit` fails the cursor stays, and the next call tries the same slice.
///
/// Bounding each call keeps the owning actor responsive however large the tree grows; the
/// sweeps call this once per tree and tick, so a pass over a tree takes `len / limit` ticks.
/// Token and code keys start with their issue time, so those trees are walked oldest first.
fn walk_slice(
    tree: &sled::Tree,
    cursor: &std::cell::RefCell<Vec<u8>>,
    limit: usize,
    mut visit: impl FnMut(&sled::IVec, &sled::IVec) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut cursor = cursor.borrow_mut();
    let mut seen = 0;
    let mut last = None;
    for kv in tree.range(cursor.as_slice()..) {
        let (k, v) = kv?;
        visit(&k, &v)?;
        seen += 1;
        last = Some(k);
        if seen >= limit {
            break;
        }
    }
    *cursor = match (last, seen >= limit) {
        // Continue just after the last key next time.
        (Some(k), true) => {
            let mut next = k.to_vec();
            next.push(0);
            next
        }
        // Reached the end: start over next time.
        _ => Vec::new(),
    };
    Ok(())
}

/// An `i64` stored big-endian on its own (forget times, grant expiries).
fn read_i64(bytes: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(bytes).ok().map(i64::from_be_bytes)
}

/// A revoked-grant record as read.
enum RevokedEntry {
    /// A grant and its forget time.
    Grant(GrantId, i64),
    /// A record that does not decode: the grant when the key still names one.
    Undecodable(Option<GrantId>),
}

fn decode_revoked(key: &[u8], value: &[u8]) -> RevokedEntry {
    let Ok(id) = <[u8; 16]>::try_from(key) else {
        return RevokedEntry::Undecodable(None);
    };
    match read_i64(value) {
        Some(forget_at) => RevokedEntry::Grant(GrantId(id), forget_at),
        None => RevokedEntry::Undecodable(Some(GrantId(id))),
    }
}

/// Logs a revoked-grant record that does not decode. The grant id is no secret (it never
/// leaves the server) and tells an operator which record it is.
fn log_undecodable_revocation(grant: Option<GrantId>, value_len: usize) {
    match grant {
        Some(grant) => tracing::error!(
            tree = REVOKED_GRANTS_TREE,
            grant = ?grant,
            bytes = value_len,
            "revoked grant with an unreadable forget time: kept, and revoked for good"
        ),
        None => tracing::error!(
            tree = REVOKED_GRANTS_TREE,
            bytes = value_len,
            "revoked-grant record with an unreadable key: kept, but it names no grant"
        ),
    }
}

/// [`TokenStore`] on sled.
///
/// No expiry index: an index entry per token doubled the writes of every issuance. The
/// sweeper instead walks the token tree a bounded slice at a time from a cursor, reading
/// only each record's fixed-offset `expires_at`.
#[derive(Debug)]
pub struct SledTokenStore {
    tokens: sled::Tree,
    revoked: sled::Tree,
    lifetimes: sled::Tree,
    durability: Durability,
    /// Where the incremental sweeps continue, one per tree (the store is owned by one
    /// actor).
    sweep_cursor: std::cell::RefCell<Vec<u8>>,
    revoked_cursor: std::cell::RefCell<Vec<u8>>,
}

impl SledTokenStore {
    /// Opens the token ledger's trees.
    pub fn open(db: &sled::Db, durability: Durability) -> Result<Self, StorageError> {
        Ok(Self {
            tokens: db.open_tree(TOKENS_TREE)?,
            revoked: db.open_tree(REVOKED_GRANTS_TREE)?,
            lifetimes: db.open_tree(LIFETIMES_TREE)?,
            durability,
            sweep_cursor: std::cell::RefCell::new(Vec::new()),
            revoked_cursor: std::cell::RefCell::new(Vec::new()),
        })
    }
}

fn corrupt_token() -> StorageError {
    StorageError::Corrupt {
        tree: TOKENS_TREE,
        reason: "undecodable token record".into(),
    }
}

impl TokenStore for SledTokenStore {
    fn put(&self, key: &TokenKey, record: &TokenRecord) -> Result<(), StorageError> {
        self.tokens.insert(key.0, encode_token(record))?;
        Ok(())
    }

    fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError> {
        match self.tokens.get(key.0)? {
            Some(v) => decode_token(&v).map(Some).ok_or_else(corrupt_token),
            None => Ok(None),
        }
    }

    fn remove(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StorageError> {
        match self.tokens.remove(key.0)? {
            Some(v) => decode_token(&v).map(Some).ok_or_else(corrupt_token),
            None => Ok(None),
        }
    }

    fn record_lifetime(&self, lifetime: i64, in_force_until: i64) -> Result<(), StorageError> {
        let key = lifetime.to_be_bytes();
        let current = self.lifetimes.get(key)?.and_then(|v| read_i64(&v));
        if current.is_none_or(|until| until < in_force_until) {
            self.lifetimes
                .insert(key, &in_force_until.to_be_bytes()[..])?;
        }
        Ok(())
    }

    fn lifetimes(&self) -> Result<Vec<(i64, i64)>, StorageError> {
        let mut out = Vec::new();
        for kv in self.lifetimes.iter() {
            let (k, v) = kv?;
            match (read_i64(&k), read_i64(&v)) {
                (Some(lifetime), Some(until)) => out.push((lifetime, until)),
                // Fail closed: a record that cannot be read might have been the longest
                // lifetime; report it as one that never ends, so revocations are kept.
                _ => {
                    tracing::error!(
                        tree = LIFETIMES_TREE,
                        "undecodable token lifetime record; revocations are kept for good"
                    );
                    out.push((i64::MAX, i64::MAX));
                }
            }
        }
        Ok(out)
    }

    fn put_revoked_grant(&self, grant: &GrantId, forget_at: i64) -> Result<(), StorageError> {
        self.revoked.insert(grant.0, &forget_at.to_be_bytes()[..])?;
        Ok(())
    }

    fn revoked_grants(&self) -> Result<RevokedGrants, StorageError> {
        let mut out = RevokedGrants::default();
        for kv in self.revoked.iter() {
            let (k, v) = kv?;
            match decode_revoked(&k, &v) {
                RevokedEntry::Grant(grant, forget_at) => out.grants.push((grant, forget_at)),
                RevokedEntry::Undecodable(grant) => {
                    log_undecodable_revocation(grant, v.len());
                    out.undecodable += 1;
                    if let Some(grant) = grant {
                        out.grants.push((grant, i64::MAX));
                    }
                }
            }
        }
        Ok(out)
    }

    fn grants_of(&self, holder: &GrantHolder) -> Result<Vec<(GrantId, i64)>, StorageError> {
        let mut grants: std::collections::HashMap<GrantId, i64> = Default::default();
        for kv in self.tokens.iter() {
            let (_, v) = kv?;
            // An undecodable record can never validate, so it belongs to no one.
            let Some(record) = decode_token(&v) else {
                continue;
            };
            if holder.holds(&record.client_id, record.subject.as_deref()) {
                let latest = grants.entry(record.grant_id).or_insert(record.expires_at);
                *latest = (*latest).max(record.expires_at);
            }
        }
        Ok(grants.into_iter().collect())
    }

    fn sweep(&self, now: i64, limit: usize) -> Result<Swept, StorageError> {
        let mut swept = Swept::default();
        walk_slice(&self.tokens, &self.sweep_cursor, limit, |key, value| {
            // A token record too short to hold its expiry is dropped too: it can never
            // validate, and it is no revocation (those live in their own tree).
            if token_expires_at(value).is_none_or(|expires| expires <= now) {
                self.tokens.remove(key)?;
                swept.removed += 1;
            }
            Ok(())
        })?;
        walk_slice(&self.revoked, &self.revoked_cursor, limit, |key, value| {
            match decode_revoked(key, value) {
                RevokedEntry::Grant(grant, forget_at) if forget_at <= now => {
                    self.revoked.remove(key)?;
                    swept.forgotten_grants.push(grant);
                }
                RevokedEntry::Grant(..) => {}
                // Never dropped: what cannot be read cannot be shown to be over.
                RevokedEntry::Undecodable(grant) => {
                    log_undecodable_revocation(grant, value.len());
                    swept.undecodable_revocations += 1;
                    swept.undecodable_grants.extend(grant);
                }
            }
            Ok(())
        })?;
        // A handful of records (one per lifetime the server ever ran with): no bound needed.
        for kv in self.lifetimes.iter() {
            let (k, v) = kv?;
            if let (Some(lifetime), Some(until)) = (read_i64(&k), read_i64(&v)) {
                if until.saturating_add(lifetime) <= now {
                    self.lifetimes.remove(k)?;
                }
            }
        }
        Ok(swept)
    }

    fn count(&self) -> usize {
        self.tokens.len()
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{scope::Scopes, secrets::AccessToken},
        storage::TokenKind,
    };

    #[test]
    fn the_format_version_is_recorded_checked_and_unknown_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::Config::default();
        config.data_dir = dir.path().to_owned();
        // A new directory gets the record; reopening it is fine.
        let db = crate::open_db(&config).unwrap();
        let meta = db.open_tree(META_TREE).unwrap();
        assert_eq!(
            meta.get(FORMAT_KEY).unwrap().unwrap().as_ref(),
            &FORMAT_VERSION.to_be_bytes()[..]
        );
        // A directory from before versioning (our trees, no record) is format 1.
        meta.remove(FORMAT_KEY).unwrap();
        check_format(&db).unwrap();
        assert!(meta.get(FORMAT_KEY).unwrap().is_some());
        // A newer (or garbled) format is refused with a message that says what to do.
        meta.insert(FORMAT_KEY, &99u32.to_be_bytes()[..]).unwrap();
        drop((meta, db));
        let err = open_after_drop(&config).unwrap_err();
        assert!(
            matches!(&err, StorageError::UnsupportedFormat { found, supported: 1 } if found == "99"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("storage format 99"), "{message}");
        assert!(message.contains("reads format 1"), "{message}");
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree(META_TREE)
            .unwrap()
            .insert(FORMAT_KEY, &b"x"[..])
            .unwrap();
        drop(db);
        assert!(matches!(
            open_after_drop(&config),
            Err(StorageError::UnsupportedFormat { .. })
        ));
    }

    /// Opens `config`'s directory just after this process dropped its last handle. sled's
    /// flusher thread keeps the file lock until it next wakes (up to its interval), so a
    /// busy machine can still see the lock held for a moment: retry "in use" for a while.
    fn open_after_drop(config: &crate::Config) -> Result<sled::Db, StorageError> {
        for _ in 0..100 {
            match crate::open_db(config) {
                Err(StorageError::InUse(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                other => return other,
            }
        }
        crate::open_db(config)
    }

    #[test]
    fn a_second_open_of_a_held_directory_is_reported_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let held = sled::Config::new().path(dir.path()).open().unwrap();
        let second = sled::Config::new().path(dir.path()).open();
        let Err(err) = second else {
            panic!("sled opened a directory another handle holds");
        };
        let err = StorageError::from(err);
        assert!(matches!(err, StorageError::InUse(_)), "{err:?}");
        drop(held);
        let other = sled::Error::Io(std::io::Error::other("disk on fire"));
        assert!(matches!(
            StorageError::from(other),
            StorageError::Database(_)
        ));
    }

    fn token(grant: GrantId, client: &str, subject: Option<&str>, expires_at: i64) -> TokenRecord {
        TokenRecord {
            kind: TokenKind::Access,
            grant_id: grant,
            client_id: client.into(),
            subject: subject.map(Into::into),
            scopes: Scopes::parse("mcp:read").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            issued_at: 0,
            expires_at,
            rotated_at_us: None,
        }
    }

    #[test]
    fn grants_of_a_subject_or_client_with_their_latest_expiry() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let (a, b, c) = (
            GrantId::generate(),
            GrantId::generate(),
            GrantId::generate(),
        );
        for record in [
            token(a, "app", Some("alice"), 10),
            token(a, "app", Some("alice"), 30),
            token(b, "app", Some("bob"), 20),
            token(c, "machine", None, 40),
        ] {
            store.put(&AccessToken::generate().key(), &record).unwrap();
        }
        store
            .tokens
            .insert(&[0u8; 40][..], &b"not a record"[..])
            .unwrap();
        let of = |holder| {
            let mut grants = store.grants_of(&holder).unwrap();
            grants.sort_by_key(|(_, exp)| *exp);
            grants
        };
        assert_eq!(of(GrantHolder::Subject("alice".into())), vec![(a, 30)]);
        assert_eq!(
            of(GrantHolder::Client("app".into())),
            vec![(b, 20), (a, 30)]
        );
        assert_eq!(of(GrantHolder::Client("machine".into())), vec![(c, 40)]);
        assert!(of(GrantHolder::Subject("nobody".into())).is_empty());
    }

    #[test]
    fn removing_live_codes_leaves_others_and_redeemed_markers() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledCodeStore::open(&db, Durability::relaxed()).unwrap();
        let code = |client: &str, subject: &str| CodeRecord {
            grant_id: GrantId::generate(),
            client_id: client.into(),
            redirect_uri: "http://localhost/cb".into(),
            redirect_uri_explicit: true,
            code_challenge: "x".repeat(43),
            scopes: Scopes::parse("mcp:read").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            subject: subject.into(),
            expires_at: 100,
        };
        let keys: Vec<TokenKey> = (0..3).map(|_| AccessToken::generate().key()).collect();
        store.insert(&keys[0], &code("app", "alice")).unwrap();
        store.insert(&keys[1], &code("app", "bob")).unwrap();
        store
            .mark_used(
                &keys[2],
                &UsedCodeRecord {
                    grant_id: GrantId::generate(),
                    forget_at: 100,
                },
            )
            .unwrap();
        let alice = GrantHolder::Subject("alice".into());
        assert_eq!(store.remove_live_codes_of(&alice).unwrap(), 1);
        assert!(store.get(&keys[0]).unwrap().is_none());
        assert!(store.get(&keys[1]).unwrap().is_some());
        assert!(store.get(&keys[2]).unwrap().is_some());
        let app = GrantHolder::Client("app".into());
        assert_eq!(store.remove_live_codes_of(&app).unwrap(), 1);
        assert!(store.get(&keys[2]).unwrap().is_some(), "markers stay");
    }

    #[test]
    fn revoked_grants_are_swept_a_bounded_slice_at_a_time_and_undecodable_ones_kept() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        let grants: Vec<GrantId> = (0..5u8).map(|i| GrantId([i; 16])).collect();
        for g in &grants {
            store.put_revoked_grant(g, 10).unwrap();
        }
        let garbled = GrantId([9; 16]);
        store.revoked.insert(garbled.0, &b"bad"[..]).unwrap();
        store.revoked.insert(&b"short key"[..], &b"x"[..]).unwrap();

        let loaded = store.revoked_grants().unwrap();
        assert_eq!(loaded.undecodable, 2);
        assert!(loaded.grants.contains(&(garbled, i64::MAX)), "fail closed");

        // Seven records, three per slice: the sweep takes three ticks to go round.
        let mut forgotten = Vec::new();
        let mut undecodable = 0;
        for _ in 0..3 {
            let swept = store.sweep(100, 3).unwrap();
            assert!(swept.forgotten_grants.len() <= 3);
            forgotten.extend(swept.forgotten_grants);
            undecodable += swept.undecodable_revocations;
            if let Some(g) = swept.undecodable_grants.first() {
                assert_eq!(*g, garbled);
            }
        }
        forgotten.sort_by_key(|g| g.0);
        assert_eq!(forgotten, grants);
        assert_eq!(undecodable, 2);
        assert_eq!(
            store.revoked.len(),
            2,
            "undecodable records are never dropped"
        );
    }

    #[test]
    fn lifetime_records_only_grow_and_are_swept_once_no_token_can_outlive_them() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledTokenStore::open(&db, Durability::relaxed()).unwrap();
        assert!(store.lifetimes().unwrap().is_empty());
        store.record_lifetime(100, 50).unwrap();
        store.record_lifetime(100, 20).unwrap();
        store.record_lifetime(10, 60).unwrap();
        let mut seen = store.lifetimes().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, [(10, 60), (100, 50)]);
        // (10, 60) can cover tokens until 70, (100, 50) until 150.
        store.sweep(70, 10).unwrap();
        assert_eq!(store.lifetimes().unwrap(), [(100, 50)]);
        store.sweep(149, 10).unwrap();
        assert_eq!(store.lifetimes().unwrap(), [(100, 50)]);
        store.sweep(150, 10).unwrap();
        assert!(store.lifetimes().unwrap().is_empty());
        // An unreadable record reads as a lifetime that never ends (fail closed).
        db.open_tree(LIFETIMES_TREE)
            .unwrap()
            .insert(7i64.to_be_bytes(), &b"x"[..])
            .unwrap();
        assert_eq!(store.lifetimes().unwrap(), [(i64::MAX, i64::MAX)]);
    }

    #[test]
    fn the_code_sweep_keeps_what_it_cannot_read() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledCodeStore::open(&db, Durability::relaxed()).unwrap();
        let used = AccessToken::generate().key();
        let marker = UsedCodeRecord {
            grant_id: GrantId::generate(),
            forget_at: 10,
        };
        store.mark_used(&used, &marker).unwrap();
        // A marker cut short: its forget time and its grant are gone.
        store
            .codes
            .insert(&[1u8; 40][..], &[2u8, 0, 0][..])
            .unwrap();
        let swept = store.sweep(10, 100).unwrap();
        assert_eq!((swept.removed, swept.undecodable_revocations), (1, 1));
        assert!(store.get(&used).unwrap().is_none());
        assert_eq!(store.codes.len(), 1, "the unreadable entry stays");
    }

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
