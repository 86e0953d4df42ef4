//! Secret values: authorization codes, access and refresh tokens, client secrets and
//! passwords. Each is a newtype with a redacted `Debug`, no `PartialEq` (compare digests in
//! constant time instead) and a `secret()` accessor, after oauth2-rs.
//!
//! Bearer values are 256 random bits (codes too: RFC 6749 §10.10 asks for at least 128),
//! base64url without padding. At rest only their SHA-256 [`Digest`] is kept, so a copy of
//! the database yields no usable credential.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A SHA-256 digest of a secret value: the only form in which secrets are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `value`.
    pub fn of(value: &[u8]) -> Self {
        let out = Sha256::digest(value);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(out.as_slice());
        Self(bytes)
    }

    /// Constant-time equality, for comparing a presented secret with a stored digest.
    pub fn ct_eq(&self, other: &Digest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(serde::de::Error::custom)?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("digest must be 32 bytes"))?;
        Ok(Self(arr))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not a secret, but printing it helps nobody and invites log greps.
        f.write_str("Digest([redacted])")
    }
}

/// `n` bytes from the thread-local CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// 256 random bits, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Length of an ordered bearer token before encoding: an 8-byte time prefix and 32 random
/// bytes.
const ORDERED_LEN: usize = 40;

/// A bearer token whose first 8 bytes are the issue time in microseconds (big-endian), then
/// 256 random bits; 54 base64url characters. The prefix is not secret (the random part
/// carries all the entropy); it makes storage keys of tokens issued close in time sort
/// together, so inserts go to the newest B-tree leaves and recent tokens stay cached,
/// instead of every insert landing on a random, likely uncached leaf.
pub fn ordered_token() -> String {
    let micros = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    ordered_token_with(micros, &random_bytes::<32>())
}

/// A token in the [`ordered_token`] format with a given time prefix and body: for tokens
/// that must be recomputable (the refresh successors of the grace window, whose body is a
/// MAC under the server key, as unpredictable as random bytes to anyone without the key).
pub fn ordered_token_with(issued_micros: u64, body: &[u8; 32]) -> String {
    let mut bytes = [0u8; ORDERED_LEN];
    bytes[..8].copy_from_slice(&issued_micros.to_be_bytes());
    bytes[8..].copy_from_slice(body);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Storage key of a bearer token: the token's time prefix, then the SHA-256 of the whole
/// token. Only the digest identifies the token; the prefix only orders. A value that is not
/// an ordered token gets a zero prefix (and will simply not be found).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey(pub [u8; 40]);

impl TokenKey {
    /// The key of `token`.
    pub fn of(token: &str) -> Self {
        let mut key = [0u8; 40];
        if token.len() == 54 {
            if let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) {
                if let Some(prefix) = bytes.get(..8) {
                    key[..8].copy_from_slice(prefix);
                }
            }
        }
        key[8..].copy_from_slice(&Digest::of(token.as_bytes()).0);
        Self(key)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// Wraps a presented value.
            pub fn new(value: String) -> Self {
                Self(value)
            }

            /// The plaintext. Call only to put it on the wire.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// The SHA-256 digest under which the value is stored.
            pub fn digest(&self) -> Digest {
                Digest::of(self.0.as_bytes())
            }

            /// The storage key, for bearer tokens (see [`TokenKey`]).
            pub fn key(&self) -> TokenKey {
                TokenKey::of(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An authorization code (RFC 6749 §4.1.2).
    AuthorizationCode
);
secret_type!(
    /// An opaque access token (RFC 6750).
    AccessToken
);
secret_type!(
    /// An opaque refresh token (OAuth 2.1 §4.3).
    RefreshToken
);
secret_type!(
    /// A client secret, as presented or as minted at registration.
    ClientSecret
);
secret_type!(
    /// A user's password, as typed into the login form.
    Password
);
secret_type!(
    /// Any bearer value presented to /revoke or /introspect, type unknown.
    PresentedToken
);

impl AuthorizationCode {
    /// A fresh code (see [`ordered_token`]; 256 random bits after the time prefix).
    pub fn generate() -> Self {
        Self(ordered_token())
    }
}
impl AccessToken {
    /// A fresh access token (see [`ordered_token`]).
    pub fn generate() -> Self {
        Self(ordered_token())
    }
}
impl RefreshToken {
    /// A fresh refresh token (see [`ordered_token`]).
    pub fn generate() -> Self {
        Self(ordered_token())
    }
}
impl ClientSecret {
    /// A fresh random client secret (256 bits).
    pub fn generate() -> Self {
        Self(random_token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let t = AccessToken::new("very-secret".into());
        assert!(!format!("{t:?}").contains("very-secret"));
        assert!(!format!("{:?}", t.digest()).contains('0'));
    }

    #[test]
    fn tokens_are_256_bit_and_unique() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn ordered_tokens_sort_by_issue_time_and_key_by_digest() {
        let a = ordered_token();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ordered_token();
        assert_eq!(a.len(), 54);
        let (ka, kb) = (TokenKey::of(&a), TokenKey::of(&b));
        assert!(ka.0 < kb.0, "later tokens sort later");
        assert_eq!(&ka.0[8..], &Digest::of(a.as_bytes()).0);
        // Garbage still gets a key, which matches nothing stored.
        assert_eq!(&TokenKey::of("x").0[..8], &[0u8; 8]);
    }

    #[test]
    fn digest_compare() {
        let a = Digest::of(b"x");
        assert!(a.ct_eq(&Digest::of(b"x")));
        assert!(!a.ct_eq(&Digest::of(b"y")));
    }
}
