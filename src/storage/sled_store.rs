//! sled implementations of the store traits. Each actor gets its own store value holding
//! only its own trees; tree names are namespaced and versioned consts.

use serde::{de::DeserializeOwned, Serialize};

use super::{
    codec::{
        code_expires, decode_code, decode_token, encode_code, encode_token, encode_used_code,
        token_expires_at,
    },
    records::{CodeRecord, GrantId, StoredCode, TokenRecord, UsedCodeRecord},
    ClientStore, CodeStore, GroupCommit, Persist, StorageError, TokenStore,
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
/// Revoked grants: grant id → `forget_at` (i64 BE).
pub const REVOKED_GRANTS_TREE: &str = "oauth.revoked_grants.v1";

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

    fn sweep(&self, now: i64, limit: usize) -> Result<usize, StorageError> {
        sweep_slice(&self.codes, &self.sweep_cursor, now, limit, code_expires)
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

/// Examines at most `limit` entries of `tree` from `cursor` on, removing those whose
/// expiry (read by `expires`, without decoding the rest) has passed, and undecodable ones;
/// leaves `cursor` where the next call continues (back at the start after the end).
///
/// Keys start with their issue time, so this walks oldest first; bounding each call keeps
/// the owning actor responsive however large the tree grows.
fn sweep_slice(
    tree: &sled::Tree,
    cursor: &std::cell::RefCell<Vec<u8>>,
    now: i64,
    limit: usize,
    expires: fn(&[u8]) -> Option<i64>,
) -> Result<usize, StorageError> {
    let mut cursor = cursor.borrow_mut();
    let mut removed = 0;
    let mut seen = 0;
    let mut last = None;
    for kv in tree.range(cursor.as_slice()..) {
        let (k, v) = kv?;
        seen += 1;
        if expires(&v).is_none_or(|exp| exp <= now) {
            tree.remove(&k)?;
            removed += 1;
        }
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
    Ok(removed)
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
    durability: Durability,
    /// Where the incremental sweep continues (the store is owned by one actor).
    sweep_cursor: std::cell::RefCell<Vec<u8>>,
}

impl SledTokenStore {
    /// Opens the token ledger's trees.
    pub fn open(db: &sled::Db, durability: Durability) -> Result<Self, StorageError> {
        Ok(Self {
            tokens: db.open_tree(TOKENS_TREE)?,
            revoked: db.open_tree(REVOKED_GRANTS_TREE)?,
            durability,
            sweep_cursor: std::cell::RefCell::new(Vec::new()),
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

    fn put_revoked_grant(&self, grant: &GrantId, forget_at: i64) -> Result<(), StorageError> {
        self.revoked.insert(grant.0, &forget_at.to_be_bytes()[..])?;
        Ok(())
    }

    fn revoked_grants(&self) -> Result<Vec<(GrantId, i64)>, StorageError> {
        self.revoked
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let id: [u8; 16] = k.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                    tree: REVOKED_GRANTS_TREE,
                    reason: "bad key length".into(),
                })?;
                let t: [u8; 8] = v.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                    tree: REVOKED_GRANTS_TREE,
                    reason: "bad value length".into(),
                })?;
                Ok((GrantId(id), i64::from_be_bytes(t)))
            })
            .collect()
    }

    fn sweep(&self, now: i64, limit: usize) -> Result<usize, StorageError> {
        // Undecodable records are dropped too: they can never validate.
        let removed = sweep_slice(
            &self.tokens,
            &self.sweep_cursor,
            now,
            limit,
            token_expires_at,
        )?;
        for kv in self.revoked.iter() {
            let (k, v) = kv?;
            let forget_at = <[u8; 8]>::try_from(v.as_ref())
                .map(i64::from_be_bytes)
                .unwrap_or(0);
            if forget_at <= now {
                self.revoked.remove(k)?;
            }
        }
        Ok(removed)
    }

    fn count(&self) -> usize {
        self.tokens.len()
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}
