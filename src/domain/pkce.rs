//! PKCE (RFC 7636), S256 only: OAuth 2.1 §4.1.1 and MCP require it, and `plain` gives no
//! protection against a leaked authorization request.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A validated S256 code challenge: 43 base64url characters (a SHA-256 digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

/// Why a challenge or verifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// Only `S256` is supported.
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
    /// The challenge is not 43-128 unreserved characters, or not a base64url SHA-256 digest.
    #[error("code_challenge is malformed")]
    MalformedChallenge,
    /// The verifier is not 43-128 unreserved characters (RFC 7636 §4.1).
    #[error("code_verifier is malformed")]
    MalformedVerifier,
}

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`, length 43..=128 (RFC 7636 §4.1).
fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl CodeChallenge {
    /// Parses `code_challenge` + `code_challenge_method`. An absent method means `plain`
    /// (RFC 7636 §4.3), which we refuse like any other non-S256 method.
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceError> {
        if method != Some("S256") {
            return Err(PkceError::UnsupportedMethod);
        }
        // An S256 challenge is exactly a base64url (no padding) SHA-256 digest.
        let decoded_ok = URL_SAFE_NO_PAD
            .decode(challenge)
            .map(|d| d.len() == 32)
            .unwrap_or(false);
        if !is_pkce_string(challenge) || challenge.len() != 43 || !decoded_ok {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Rebuilds a challenge read back from storage.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The challenge string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: `BASE64URL(SHA256(ASCII(verifier))) == challenge`, compared in
    /// constant time.
    pub fn verify(&self, verifier: &str) -> Result<bool, PkceError> {
        if !is_pkce_string(verifier) {
            return Err(PkceError::MalformedVerifier);
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Ok(computed.as_bytes().ct_eq(self.0.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_example_verifies() {
        let c = CodeChallenge::parse(CHALLENGE, Some("S256")).unwrap();
        assert!(c.verify(VERIFIER).unwrap());
        assert!(!c.verify(&VERIFIER.replace('d', "e")).unwrap());
    }

    #[test]
    fn refuses_plain_missing_and_malformed() {
        assert_eq!(
            CodeChallenge::parse(CHALLENGE, Some("plain")),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse(CHALLENGE, None),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse("short", Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        let bad = format!("{}!", &CHALLENGE[..42]);
        assert_eq!(
            CodeChallenge::parse(&bad, Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        let c = CodeChallenge::parse(CHALLENGE, Some("S256")).unwrap();
        assert_eq!(c.verify("tooshort"), Err(PkceError::MalformedVerifier));
    }
}
