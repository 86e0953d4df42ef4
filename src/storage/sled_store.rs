//! sled implementations of the store traits. Each actor gets its own store value holding
//! only its own trees; tree names are namespaced and versioned consts.

use serde::{de::DeserializeOwned, Serialize};

use super::{
    codec::{decode_token, encode_token, token_expires_at},
    records::{CodeRecord, GrantId, TokenRecord, UsedCodeRecord},
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
/// Live authorization codes, keyed by [`TokenKey`] (time prefix, then SHA-256 of the code).
pub const CODES_TREE: &str = "oauth.codes.v1";
/// Redeemed codes kept for replay detection, keyed like live codes.
pub const USED_CODES_TREE: &str = "oauth.used_codes.v1";
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

/// [`CodeStore`] on sled.
#[derive(Debug)]
pub struct SledCodeStore {
    codes: sled::Tree,
    used: sled::Tree,
    durability: Durability,
}

impl SledCodeStore {
    /// Opens the code issuer's trees.
    pub fn open(db: &sled::Db, durability: Durability) -> Result<Self, StorageError> {
        Ok(Self {
            codes: db.open_tree(CODES_TREE)?,
            used: db.open_tree(USED_CODES_TREE)?,
            durability,
        })
    }
}

impl CodeStore for SledCodeStore {
    fn insert(&self, key: &TokenKey, record: &CodeRecord) -> Result<(), StorageError> {
        self.codes.insert(key.0, encode(CODES_TREE, record)?)?;
        Ok(())
    }

    fn take(&self, key: &TokenKey) -> Result<Option<CodeRecord>, StorageError> {
        match self.codes.remove(key.0)? {
            Some(v) => Ok(Some(decode(CODES_TREE, &v)?)),
            None => Ok(None),
        }
    }

    fn mark_used(&self, key: &TokenKey, record: &UsedCodeRecord) -> Result<(), StorageError> {
        self.used.insert(key.0, encode(USED_CODES_TREE, record)?)?;
        Ok(())
    }

    fn used(&self, key: &TokenKey) -> Result<Option<UsedCodeRecord>, StorageError> {
        match self.used.get(key.0)? {
            Some(v) => Ok(Some(decode(USED_CODES_TREE, &v)?)),
            None => Ok(None),
        }
    }

    fn sweep(&self, now: i64) -> Result<usize, StorageError> {
        // Both trees only hold short-lived entries, so a full scan stays small.
        let mut removed = 0;
        for kv in self.codes.iter() {
            let (k, v) = kv?;
            let expired = decode::<CodeRecord>(CODES_TREE, &v)
                .map(|r| r.expires_at <= now)
                .unwrap_or(true);
            if expired {
                self.codes.remove(k)?;
                removed += 1;
            }
        }
        for kv in self.used.iter() {
            let (k, v) = kv?;
            let expired = decode::<UsedCodeRecord>(USED_CODES_TREE, &v)
                .map(|r| r.forget_at <= now)
                .unwrap_or(true);
            if expired {
                self.used.remove(k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
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
        let mut cursor = self.sweep_cursor.borrow_mut();
        let mut removed = 0;
        let mut seen = 0;
        let mut last = None;
        for kv in self.tokens.range(cursor.as_slice()..) {
            let (k, v) = kv?;
            seen += 1;
            // Undecodable records are dropped too: they can never validate.
            if token_expires_at(&v).is_none_or(|exp| exp <= now) {
                self.tokens.remove(&k)?;
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
