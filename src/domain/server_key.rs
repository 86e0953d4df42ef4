//! The server key: one secret of at least 32 random bytes that keys every value the server
//! must be able to recompute but nobody else may forge (HMAC-SHA256, RFC 2104):
//! the CSRF value of the sign-in and consent forms, bound to the browser's session, and the
//! successors of a refresh token within the grace window, derived from the presented token
//! so that the same input yields the same output. Later it also encrypts signing keys and
//! stored upstream tokens.
//!
//! It is read from `--key-file` or, without one, from `server.key` in the data directory,
//! which is created with 32 fresh random bytes (mode 0600) at first start and reused after.
//! Instances that share a database must be given the same key: a value minted by one must
//! verify on the other.
//!
//! Each use passes its own `label`, so a MAC made for one purpose never verifies for another
//! (domain separation).

use std::{
    fmt,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::Rng as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// Fewest key bytes accepted: HMAC-SHA256 gains nothing from more, and loses from less.
pub const MIN_KEY_BYTES: usize = 32;

/// Most key bytes read: a key file is a small secret, not a data file.
const MAX_KEY_BYTES: usize = 4096;

/// File name of the generated key in the data directory.
pub const KEY_FILE_NAME: &str = "server.key";

/// The server key. `Debug` is redacted; there is no accessor for the bytes, only MACs.
#[derive(Clone)]
pub struct ServerKey(Vec<u8>);

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("server key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The key file exists but is too short or too long.
    #[error("server key {path} must hold between {MIN_KEY_BYTES} and {MAX_KEY_BYTES} bytes (it holds {len}); make one with `head -c 32 /dev/urandom > {path}`")]
    BadLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

impl ServerKey {
    /// A key from given bytes (tests, embedders with their own key store).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (MIN_KEY_BYTES..=MAX_KEY_BYTES)
            .contains(&bytes.len())
            .then(|| Self(bytes.to_vec()))
    }

    /// A fresh random key (never written anywhere).
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; MIN_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads `key_file` if given (it must exist); otherwise reads `server.key` in
    /// `data_dir`, creating it with a fresh key (mode 0600) when it does not exist yet.
    pub fn load_or_create(key_file: Option<&Path>, data_dir: &Path) -> Result<Self, KeyError> {
        match key_file {
            Some(path) => Self::read(path),
            None => {
                let path = data_dir.join(KEY_FILE_NAME);
                match Self::read(&path) {
                    Err(KeyError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        Self::create(&path)
                    }
                    other => other,
                }
            }
        }
    }

    fn read(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes).ok_or(KeyError::BadLength {
            path: path.to_owned(),
            len: bytes.len(),
        })
    }

    /// Writes a new key with `create_new`, so two processes starting on one fresh directory
    /// cannot both write one: the loser reads the winner's key.
    fn create(path: &Path) -> Result<Self, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let key = Self::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(&key.0).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                Ok(key)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::read(path),
            Err(e) => Err(io_err(e)),
        }
    }

    /// HMAC-SHA256 over `label` and `parts`. Each part is length-prefixed, so
    /// `["ab", "c"]` and `["a", "bc"]` give different MACs.
    pub fn mac(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        // `new_from_slice` accepts any key length for HMAC; the error arm cannot happen,
        // and a zero MAC would only ever fail verification, never pass it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return [0u8; 32];
        };
        for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// Whether `candidate` is the MAC of `label` and `parts`, compared in constant time.
    pub fn verify(&self, label: &str, parts: &[&[u8]], candidate: &[u8]) -> bool {
        self.mac(label, parts).ct_eq(candidate).into()
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_file_is_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServerKey::load_or_create(None, dir.path()).unwrap();
        let b = ServerKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(a.mac("t", &[b"x"]), b.mac("t", &[b"x"]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn explicit_file_must_exist_and_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(matches!(
            ServerKey::load_or_create(Some(&path), dir.path()),
            Err(KeyError::Io { .. })
        ));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            ServerKey::load_or_create(Some(&path), dir.path()),
            Err(KeyError::BadLength { len: 5, .. })
        ));
        std::fs::write(&path, [7u8; 32]).unwrap();
        let key = ServerKey::load_or_create(Some(&path), dir.path()).unwrap();
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
        let same = ServerKey::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!(key.mac("t", &[]), same.mac("t", &[]));
    }

    #[test]
    fn macs_are_separated_by_label_key_and_framing() {
        let key = ServerKey::from_bytes(&[1u8; 32]).unwrap();
        let other = ServerKey::from_bytes(&[2u8; 32]).unwrap();
        let m = key.mac("csrf", &[b"ab", b"c"]);
        assert!(key.verify("csrf", &[b"ab", b"c"], &m));
        assert!(!key.verify("csrf", &[b"a", b"bc"], &m));
        assert!(!key.verify("grace", &[b"ab", b"c"], &m));
        assert!(!other.verify("csrf", &[b"ab", b"c"], &m));
        assert!(!key.verify("csrf", &[b"ab", b"c"], &m[..31]));
    }
}
