//! Form and query parameters (OAuth 2.1 §3.1, §3.2): parameters sent without a value are
//! treated as omitted, unknown parameters are ignored, and a parameter that appears more
//! than once is an error, so that two components can never read different values.

use std::collections::HashSet;

/// Parsed `application/x-www-form-urlencoded` parameters. `Debug` prints names only: values
/// include passwords, codes and tokens.
#[derive(Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
    duplicates: HashSet<String>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Params {
    /// Parses a query string or form body. Never fails: undecodable bytes are replaced.
    pub fn parse(input: &[u8]) -> Self {
        let mut seen = HashSet::new();
        let mut duplicates = HashSet::new();
        let mut pairs = Vec::new();
        for (k, v) in url::form_urlencoded::parse(input) {
            if v.is_empty() {
                continue;
            }
            if !seen.insert(k.to_string()) {
                duplicates.insert(k.to_string());
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Self { pairs, duplicates }
    }

    /// The value of `name`, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when `name` appeared more than once.
    pub fn is_duplicated(&self, name: &str) -> bool {
        self.duplicates.contains(name)
    }

    /// Some repeated parameter name, if any.
    pub fn any_duplicate(&self) -> Option<&str> {
        self.duplicates.iter().next().map(String::as_str)
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_omitted_and_duplicates_detected() {
        let p = Params::parse(b"a=1&b=&c=x+y&a=2");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert!(p.is_duplicated("a"));
        assert!(!p.is_duplicated("c"));
        assert_eq!(p.any_duplicate(), Some("a"));
    }
}
