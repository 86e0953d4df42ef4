//! Scopes (OAuth 2.1 §1.4.1): space-delimited, case-sensitive tokens of
//! `%x21 / %x23-5B / %x5D-7E`. Kept as an ordered set so a granted scope prints canonically.
//!
//! [`OFFLINE_ACCESS`] (OpenID Connect Core §11, MCP SEP-2207) is not a permission on the MCP
//! server but a request for a refresh token: always accepted, kept on the grant (the refresh
//! token's scope), never in an access token's scope ([`Scopes::for_access_token`]).

use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

/// The scope that asks for a refresh token (OpenID Connect Core §11; MCP SEP-2207).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// A set of scope tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes(BTreeSet<String>);

/// A scope string that is not valid syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("scope contains characters outside %x21 / %x23-5B / %x5D-7E")]
pub struct ScopeSyntaxError;

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

impl Scopes {
    /// Parses a space-delimited scope string. Empty tokens (double spaces) are ignored.
    pub fn parse(s: &str) -> Result<Self, ScopeSyntaxError> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(is_scope_char) {
                return Err(ScopeSyntaxError);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Builds a set from configured scope names.
    pub fn from_names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// True when every scope here is also in `other`.
    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    /// True when the set holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// True when there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same set without `offline_access`: the scope an access token carries. The grant
    /// (and so its refresh token) keeps it; the resource server never sees it (SEP-2207).
    pub fn for_access_token(&self) -> Scopes {
        self.without(OFFLINE_ACCESS)
    }

    /// The same set without `scope`.
    pub fn without(&self, scope: &str) -> Scopes {
        let mut set = self.0.clone();
        set.remove(scope);
        Self(set)
    }

    /// The same set with `scope` added.
    pub fn with(&self, scope: &str) -> Scopes {
        let mut set = self.0.clone();
        set.insert(scope.to_owned());
        Self(set)
    }

    /// The scopes here that are also in `known`, plus `offline_access` if present (it is
    /// always known). Used where requested metadata is trimmed to what the server supports
    /// (RFC 7591 §3.2.1).
    pub fn retain_known(&self, known: &Scopes) -> Scopes {
        Self(
            self.0
                .iter()
                .filter(|s| *s == OFFLINE_ACCESS || known.0.contains(*s))
                .cloned()
                .collect(),
        )
    }

    /// The scope tokens, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let s = Scopes::parse("mcp:write  mcp:read").unwrap();
        assert_eq!(s.to_string(), "mcp:read mcp:write");
        assert!(Scopes::parse("a\"b").is_err());
        assert!(Scopes::parse("a\\b").is_err());
        assert!(Scopes::parse("").unwrap().is_empty());
    }

    #[test]
    fn offline_access_is_kept_off_access_tokens() {
        let grant = Scopes::parse("mcp:read offline_access").unwrap();
        assert_eq!(grant.for_access_token().to_string(), "mcp:read");
        assert_eq!(
            grant.with("mcp:write").to_string(),
            "mcp:read mcp:write offline_access"
        );
        let known = Scopes::parse("mcp:read mcp:write").unwrap();
        let asked = Scopes::parse("mcp:* mcp:read offline_access").unwrap();
        assert_eq!(
            asked.retain_known(&known).to_string(),
            "mcp:read offline_access"
        );
    }

    #[test]
    fn subset() {
        let all = Scopes::parse("a b").unwrap();
        assert!(Scopes::parse("a").unwrap().is_subset(&all));
        assert!(!Scopes::parse("a c").unwrap().is_subset(&all));
    }
}
