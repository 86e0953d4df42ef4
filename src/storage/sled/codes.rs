//! [`CodeStore`] on sled: the code issuer's tree of authorization codes ([`CODES_TREE`]),
//! live and redeemed, with its bounded sweep.

use super::{walk_slice, Durability, CODES_TREE, OLD_CODE_TREES};
use crate::{
    domain::secrets::TokenKey,
    storage::{
        codec::{code_expires, decode_code, encode_code, encode_used_code},
        CodeRecord, CodeStore, GrantHolder, Persist, StorageError, StoredCode, Swept,
        UsedCodeRecord,
    },
};

/// [`CodeStore`] on sled: one tree, values in the binary layout of
/// [`codec`](crate::storage::codec).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{scope::Scopes, secrets::AccessToken};
    use crate::storage::GrantId;

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
}
