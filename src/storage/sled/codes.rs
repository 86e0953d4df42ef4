//! [`CodeStore`] on sled: the code issuer's tree of authorization codes ([`CODES_TREE`]),
//! live and redeemed, with its bounded sweep.

use super::{walk_slice, Durability, CODES_TREE, OLD_CODE_TREES};
use crate::{
    domain::secrets::TokenKey,
    storage::{
        codec::{code_expires, decode_code, encode_code, encode_used_code},
        ready, CodeRecord, CodeStore, GrantHolder, Persist, Redemption, StorageError, StoreFuture,
        StoredCode, Swept, UsedCodeRecord,
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

impl SledCodeStore {
    fn get_now(&self, key: &TokenKey) -> Result<Option<StoredCode>, StorageError> {
        match self.codes.get(key.0)? {
            Some(v) => decode_code(&v).map(Some).ok_or_else(corrupt_code),
            None => Ok(None),
        }
    }

    fn redeem_now(
        &self,
        key: &TokenKey,
        client_id: &str,
        now: i64,
        forget_at: i64,
    ) -> Result<Redemption, StorageError> {
        let record = match self.get_now(key)? {
            Some(StoredCode::Live(record)) => record,
            Some(StoredCode::Used(used)) if used.forget_at > now => {
                return Ok(Redemption::Replayed(used.grant_id))
            }
            Some(StoredCode::Used(_)) | None => return Ok(Redemption::Invalid),
        };
        if record.expires_at <= now || record.client_id != client_id {
            // Burnt either way: a stolen code presented by another client is gone.
            self.codes.remove(key.0)?;
            return Ok(Redemption::Invalid);
        }
        let marker = UsedCodeRecord {
            grant_id: record.grant_id,
            forget_at,
        };
        self.codes.insert(key.0, encode_used_code(&marker))?;
        Ok(Redemption::Redeemed(record))
    }

    fn remove_live_codes_of_now(&self, holder: &GrantHolder) -> Result<usize, StorageError> {
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

    fn sweep_now(&self, now: i64, limit: usize) -> Result<Swept, StorageError> {
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
                // a code can never be redeemed (`redeem` reports it corrupt), and dropping
                // it would turn a replay into a plain unknown code.
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
}

/// Each intent runs to completion inside the call (the code issuer, the one owner of the
/// tree, handles one message at a time) and answers a ready future.
impl CodeStore for SledCodeStore {
    fn insert(&self, key: &TokenKey, record: CodeRecord) -> StoreFuture<()> {
        ready(
            self.codes
                .insert(key.0, encode_code(&record))
                .map(drop)
                .map_err(StorageError::from),
        )
    }

    fn redeem(
        &self,
        key: &TokenKey,
        client_id: &str,
        now: i64,
        forget_at: i64,
    ) -> StoreFuture<Redemption> {
        ready(self.redeem_now(key, client_id, now, forget_at))
    }

    fn remove_live_codes_of(&self, holder: &GrantHolder) -> StoreFuture<usize> {
        ready(self.remove_live_codes_of_now(holder))
    }

    fn sweep(&self, now: i64, limit: usize) -> StoreFuture<Swept> {
        ready(self.sweep_now(now, limit))
    }

    fn persist(&self) -> Persist {
        self.durability.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{scope::Scopes, secrets::AccessToken};
    use crate::storage::{fixtures::run, GrantId};

    fn code(client: &str, subject: &str) -> CodeRecord {
        CodeRecord {
            grant_id: GrantId::generate(),
            client_id: client.into(),
            redirect_uri: "http://localhost/cb".into(),
            redirect_uri_explicit: true,
            code_challenge: "x".repeat(43),
            scopes: Scopes::parse("mcp:read").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            subject: subject.into(),
            expires_at: 100,
        }
    }

    fn marker(store: &SledCodeStore, key: &TokenKey, forget_at: i64) {
        let used = UsedCodeRecord {
            grant_id: GrantId::generate(),
            forget_at,
        };
        store.codes.insert(key.0, encode_used_code(&used)).unwrap();
    }

    #[test]
    fn removing_live_codes_leaves_others_and_redeemed_markers() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledCodeStore::open(&db, Durability::relaxed()).unwrap();
        let keys: Vec<TokenKey> = (0..3).map(|_| AccessToken::generate().key()).collect();
        run(store.insert(&keys[0], code("app", "alice")));
        run(store.insert(&keys[1], code("app", "bob")));
        marker(&store, &keys[2], 100);
        let alice = GrantHolder::Subject("alice".into());
        assert_eq!(run(store.remove_live_codes_of(&alice)), 1);
        assert!(store.get_now(&keys[0]).unwrap().is_none());
        assert!(store.get_now(&keys[1]).unwrap().is_some());
        assert!(store.get_now(&keys[2]).unwrap().is_some());
        let app = GrantHolder::Client("app".into());
        assert_eq!(run(store.remove_live_codes_of(&app)), 1);
        assert!(store.get_now(&keys[2]).unwrap().is_some(), "markers stay");
    }

    #[test]
    fn a_code_is_redeemed_once_and_then_reports_its_grant_until_forgotten() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledCodeStore::open(&db, Durability::relaxed()).unwrap();
        let key = AccessToken::generate().key();
        let issued = code("app", "alice");
        run(store.insert(&key, issued.clone()));
        let Redemption::Redeemed(record) = run(store.redeem(&key, "app", 50, 500)) else {
            panic!("the first redemption redeems");
        };
        assert_eq!(record.grant_id, issued.grant_id);
        assert!(matches!(
            store.get_now(&key).unwrap(),
            Some(StoredCode::Used(UsedCodeRecord { forget_at: 500, .. }))
        ));
        for client in ["app", "other"] {
            let again = run(store.redeem(&key, client, 60, 500));
            assert!(
                matches!(again, Redemption::Replayed(g) if g == issued.grant_id),
                "{again:?}"
            );
        }
        assert!(matches!(
            run(store.redeem(&key, "app", 500, 900)),
            Redemption::Invalid
        ));
        assert!(matches!(
            run(store.redeem(&AccessToken::generate().key(), "app", 50, 500)),
            Redemption::Invalid
        ));
    }

    #[test]
    fn an_expired_or_foreign_code_is_burnt() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledCodeStore::open(&db, Durability::relaxed()).unwrap();
        let (foreign, expired) = (AccessToken::generate().key(), AccessToken::generate().key());
        run(store.insert(&foreign, code("app", "alice")));
        run(store.insert(&expired, code("app", "alice")));
        assert!(matches!(
            run(store.redeem(&foreign, "other", 50, 500)),
            Redemption::Invalid
        ));
        assert!(matches!(
            run(store.redeem(&expired, "app", 100, 500)),
            Redemption::Invalid
        ));
        assert!(store.get_now(&foreign).unwrap().is_none(), "burnt");
        assert!(store.get_now(&expired).unwrap().is_none(), "burnt");
        assert!(matches!(
            run(store.redeem(&foreign, "app", 50, 500)),
            Redemption::Invalid
        ));
    }

    #[test]
    fn the_code_sweep_keeps_what_it_cannot_read() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = SledCodeStore::open(&db, Durability::relaxed()).unwrap();
        let used = AccessToken::generate().key();
        marker(&store, &used, 10);
        // A marker cut short: its forget time and its grant are gone.
        store
            .codes
            .insert(&[1u8; 40][..], &[2u8, 0, 0][..])
            .unwrap();
        let swept = run(store.sweep(10, 100));
        assert_eq!((swept.removed, swept.undecodable_revocations), (1, 1));
        assert!(store.get_now(&used).unwrap().is_none());
        assert_eq!(store.codes.len(), 1, "the unreadable entry stays");
    }
}
