//! sled implementations of the store traits, one file per owning actor: `clients.rs`
//! ([`SledClientStore`], the client registry's), `codes.rs` ([`SledCodeStore`], the code
//! issuer's) and `tokens/` ([`SledTokenStore`], the token ledger's). Each actor gets its own
//! store value holding only its own trees. This file holds what they share: opening the
//! database and checking its format version (`docs/storage.md`), the namespaced and versioned
//! tree names, [`Durability`], and the bounded sweep walk.

use serde::{de::DeserializeOwned, Serialize};

use super::{GroupCommit, Persist, StorageError};

mod clients;
mod codes;
mod tokens;

pub use clients::SledClientStore;
pub use codes::SledCodeStore;
pub use tokens::SledTokenStore;

/// Registered clients, keyed by client_id.
pub const CLIENTS_TREE: &str = "oauth.clients.v1";
/// Users, keyed by username.
pub const USERS_TREE: &str = "oauth.users.v1";
/// Authorization codes, live and redeemed (kept for replay detection), keyed by
/// [`TokenKey`](crate::domain::secrets::TokenKey) (time prefix, then SHA-256 of the code);
/// binary values.
pub const CODES_TREE: &str = "oauth.codes.v2";
/// Code trees of the first layout (JSON), dropped when found.
const OLD_CODE_TREES: [&str; 2] = ["oauth.codes.v1", "oauth.used_codes.v1"];
/// Tokens, keyed by [`TokenKey`](crate::domain::secrets::TokenKey): the token's time
/// prefix, then its SHA-256.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
