//! A tokenizer just good enough for the layer check: identifiers, `::`, punctuation and
//! string contents, with comments (doc comments included), numbers, char literals and
//! lifetimes dropped, so a path in a comment is never taken for an import.

#[derive(Debug)]
pub(crate) enum Kind {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// The contents of a string literal.
    Str(String),
}

#[derive(Debug)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) line: usize,
}

impl Token {
    pub(crate) fn is_ident(&self, word: &str) -> bool {
        matches!(&self.kind, Kind::Ident(w) if w == word)
    }
}

/// Rust source -> identifiers, `::`, punctuation and string contents; comments, numbers,
/// char literals and lifetimes are dropped.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let c: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut nest = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    nest += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    nest -= 1;
                    i += 2;
                    if nest == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some((open, raw, hashes)) = string_start(&c, i) {
            // String literals: "..", b"..", c"..", r#".."#, br#".."#.
            let start_line = line;
            i = open + 1;
            let mut s = String::new();
            while i < c.len() {
                if c[i] == '\\' && !raw {
                    s.push(c[i]);
                    s.push(at(i + 1));
                    if at(i + 1) == '\n' {
                        line += 1;
                    }
                    i += 2;
                    continue;
                }
                if c[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                if c[i] == '\n' {
                    line += 1;
                }
                s.push(c[i]);
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Str(s),
                line: start_line,
            });
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_alphabetic() || ch == '_' {
            if ch == 'r' && at(i + 1) == '#' {
                i += 2; // a raw identifier, r#type
            }
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            tokens.push(Token {
                kind: Kind::Ident(word),
                line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                if c[i] == '.' && !at(i + 1).is_ascii_digit() {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            tokens.push(Token {
                kind: Kind::PathSep,
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                kind: Kind::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    tokens
}

/// If a string literal ("..", b"..", c"..", r#".."#, br#".."#) starts at `i`: the index of
/// its opening quote, whether it is raw, and its number of `#`s.
fn string_start(c: &[char], i: usize) -> Option<(usize, bool, usize)> {
    let mut j = i;
    if matches!(c.get(j), Some('b' | 'c')) {
        j += 1;
    }
    let raw = c.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    let mut hashes = 0;
    while raw && c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some((j, raw, hashes))
}
