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
/// The HMAC state is keyed once, when the key is made, so computing a MAC cannot fail
/// later (a failure there would have to produce *some* value, which could verify).
#[derive(Clone)]
pub struct ServerKey(Hmac<Sha256>);

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
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return None;
        }
        Hmac::<Sha256>::new_from_slice(bytes).ok().map(Self)
    }

    /// Fresh random key bytes (for a new key file).
    fn random_bytes() -> [u8; MIN_KEY_BYTES] {
        let mut bytes = [0u8; MIN_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    }

    /// A fresh random key (never written anywhere).
    pub fn generate() -> Option<Self> {
        Self::from_bytes(&Self::random_bytes())
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

    /// Writes a new key where no process can see it half-written: the bytes go to a
    /// private temporary file in the same directory, are synced, and the file is then
    /// hard-linked to `path`, which fails if `path` exists. Two processes starting on one
    /// fresh directory therefore agree (the loser reads the winner's complete key), and a
    /// crash leaves either no key file or a whole one, never an empty one.
    fn create(path: &Path) -> Result<Self, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let bytes = Self::random_bytes();
        let temp = dir.join(format!(
            ".{KEY_FILE_NAME}.{}.{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let written = options.open(&temp).and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
        // The temporary name is removed whatever happened; `path`, if linked, keeps the data.
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                // Make the new directory entry itself durable.
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                Self::read(path)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::read(path),
            Err(e) => Err(io_err(e)),
        }
    }

    /// HMAC-SHA256 over `label` and `parts`. Each part is length-prefixed, so
    /// `["ab", "c"]` and `["a", "bc"]` give different MACs.
    pub fn mac(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
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
    fn racing_creators_agree_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || ServerKey::load_or_create(None, &dir).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap().mac("t", &[]))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE_NAME]);
        assert!(ServerKey::generate().is_some());
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
