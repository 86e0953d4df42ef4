//! The layer rules of `docs/architecture.md` ("Allowed imports"), checked against the source.
//!
//! Reads every `.rs` file under `src/`, finds every path into the crate — `use` declarations
//! with their grouped lists (`use crate::{a::{b, c}, d}`), `super::` and `self::` resolved
//! against the file's module (and any inline `mod` it sits in), paths written inline in code
//! (`crate::storage::X::new()`), and `crate::` paths inside string literals, which is where
//! attribute arguments such as `#[rtype(result = "...")]` hold them — and fails when a module
//! imports one its layer may not. Comments, doc comments included, are not read.
//!
//! The rules are read from the fenced block under "## Allowed imports" in
//! `docs/architecture.md`, so the documentation and the check cannot disagree.
//!
//! [`KNOWN_VIOLATIONS`] lists the violations tolerated for now (issue 12 emptied it), and is
//! a ratchet: the test fails when a new violation appears, and also when a listed one is
//! gone, so the list is kept exact and can only shrink.

// Test code may panic on failure: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Every import that breaks a rule today, as (file, forbidden top-level module); none since
/// the `/mcp` guard's MCP checks moved to `mcp::guard` (issue 12). An entry would be a known
/// debt, removed in the commit that removes the import.
const KNOWN_VIOLATIONS: &[(&str, &str)] = &[];

#[test]
fn imports_follow_the_layer_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = read_rules(&root.join("docs/architecture.md"));
    let src = root.join("src");
    let reexports = root_reexports(&fs::read_to_string(src.join("lib.rs")).unwrap());

    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(&src, f).first().cloned())
        .collect();
    for m in &modules {
        assert!(
            rules.contains_key(m),
            "src/ has module `{m}` but docs/architecture.md (Allowed imports) has no rule for it"
        );
    }

    // (file, forbidden module) -> first line where it is imported.
    let mut found: BTreeMap<(String, String), usize> = BTreeMap::new();
    for file in &files {
        let path = module_path(&src, file);
        let Some(own) = path.first() else {
            continue; // lib.rs / main.rs: the crate root may name every module.
        };
        let allowed = &rules[own];
        let text = fs::read_to_string(file).unwrap();
        let rel = format!(
            "src/{}",
            file.strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        );
        for (target, line) in crate_imports(&text, &path, &reexports, &modules) {
            if &target == own || allowed.contains(&target) || allowed.contains("*") {
                continue;
            }
            found.entry((rel.clone(), target)).or_insert(line);
        }
    }

    let known: BTreeSet<(String, String)> = KNOWN_VIOLATIONS
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(k, _)| !known.contains(*k))
        .map(|((f, m), line)| format!("  {f}:{line} imports `{m}`"))
        .collect();
    let gone: Vec<String> = known
        .iter()
        .filter(|k| !found.contains_key(*k))
        .map(|(f, m)| format!("  (\"{f}\", \"{m}\"),"))
        .collect();
    let mut message = String::new();
    if !new.is_empty() {
        message += &format!(
            "forbidden imports (see docs/architecture.md, Allowed imports):\n{}\n",
            new.join("\n")
        );
    }
    if !gone.is_empty() {
        message += &format!(
            "fixed violations still listed in KNOWN_VIOLATIONS; remove these entries:\n{}\n",
            gone.join("\n")
        );
    }
    assert!(message.is_empty(), "{message}");
}

/// The rules: module -> modules it may import. Read from the first fenced block after the
/// "## Allowed imports" heading; each line is `module: allowed allowed ...` (`-` for none,
/// `*` for any).
fn read_rules(doc: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let text = fs::read_to_string(doc).unwrap();
    let section = text
        .split("\n## Allowed imports")
        .nth(1)
        .expect("docs/architecture.md has a \"## Allowed imports\" section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the Allowed imports section has a fenced block");
    let mut rules = BTreeMap::new();
    for line in block.lines().skip(1) {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (module, allowed) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("rule line without `:`: {line}"));
        let allowed = allowed
            .split([' ', ','])
            .filter(|s| !s.is_empty() && *s != "-")
            .map(str::to_owned)
            .collect();
        rules.insert(module.trim().to_owned(), allowed);
    }
    rules
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` -> `[a, b]`, `src/a/mod.rs` -> `[a]`, `src/lib.rs` and `src/main.rs` -> `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts
}

/// Names re-exported at the crate root (`pub use app::{Services, ...}` in lib.rs) -> the
/// module they come from, so `crate::Services` counts as an import of that module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let tokens = tokenize(lib);
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].is_ident("use") {
            i += 1;
            for (path, alias) in parse_use(&tokens, &mut i) {
                let path: Vec<&String> = path
                    .iter()
                    .skip_while(|s| *s == "crate" || *s == "self")
                    .collect();
                if let (Some(first), Some(name)) = (path.first(), alias) {
                    if path.len() > 1 {
                        map.insert(name, (*first).clone());
                    }
                }
            }
        }
        i += 1;
    }
    map
}

/// Every crate module (top level) that `text`, the file of module `path`, refers to, with
/// the line of the reference.
fn crate_imports(
    text: &str,
    path: &[String],
    reexports: &BTreeMap<String, String>,
    modules: &BTreeSet<String>,
) -> Vec<(String, usize)> {
    let tokens = tokenize(text);
    let mut out = Vec::new();
    // Inline `mod name {` blocks: (name, brace depth inside the block).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let top_of = |absolute: &[String]| -> Option<String> {
        let first = absolute.first()?;
        if modules.contains(first) {
            Some(first.clone())
        } else {
            reexports.get(first).cloned()
        }
    };
    let mut i = 0;
    while i < tokens.len() {
        let current: Vec<String> = path
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        let t = &tokens[i];
        match &t.kind {
            Kind::Punct('{') => depth += 1,
            Kind::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Kind::Str(s) => {
                // `crate::` paths in string literals (attribute arguments).
                for (pos, _) in s.match_indices("crate::") {
                    let before = s[..pos].chars().last();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                        continue;
                    }
                    let name: String = s[pos + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if let Some(top) = top_of(&[name]) {
                        out.push((top, t.line));
                    }
                }
            }
            Kind::Ident(w) if w == "mod" => {
                if let (Some(name), Some(open)) = (tokens.get(i + 1), tokens.get(i + 2)) {
                    if let (Kind::Ident(n), Kind::Punct('{')) = (&name.kind, &open.kind) {
                        depth += 1;
                        inline.push((n.clone(), depth));
                        i += 3;
                        continue;
                    }
                }
            }
            Kind::Ident(w) if w == "use" => {
                let line = t.line;
                i += 1;
                for (p, _) in parse_use(&tokens, &mut i) {
                    if let Some(abs) = resolve(&p, &current) {
                        if let Some(top) = top_of(&abs) {
                            out.push((top, line));
                        }
                    }
                }
                continue;
            }
            Kind::Ident(w) if w == "crate" || w == "super" || w == "self" => {
                // An inline path: `crate::a::b`, `super::super::a`, `self::a`.
                let mut segs = Vec::new();
                let mut j = i;
                while let (Some(Kind::Ident(s)), Some(Kind::PathSep)) = (
                    tokens.get(j).map(|t| &t.kind),
                    tokens.get(j + 1).map(|t| &t.kind),
                ) {
                    segs.push(s.clone());
                    j += 2;
                    if s != "super" && s != "crate" && s != "self" {
                        break;
                    }
                }
                if let Some(Kind::Ident(s)) = tokens.get(j).map(|t| &t.kind) {
                    if segs
                        .last()
                        .is_some_and(|l| l == "super" || l == "crate" || l == "self")
                    {
                        segs.push(s.clone());
                    }
                }
                if !segs.is_empty() {
                    if let Some(abs) = resolve(&segs, &current) {
                        if let Some(top) = top_of(&abs) {
                            out.push((top, t.line));
                        }
                    }
                    i = j.max(i + 1);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A path as written -> the absolute path from the crate root, if it starts at the crate
/// (`crate`, `super`, `self`); `None` for external crates and names in scope.
fn resolve(path: &[String], current: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" | "super" => current.to_vec(),
        _ => return None,
    };
    let mut rest = path.iter().peekable();
    if first == "crate" || first == "self" {
        rest.next();
    }
    while rest.peek().is_some_and(|s| *s == "super") {
        rest.next();
        base.pop()?;
    }
    base.extend(rest.cloned());
    Some(base)
}

/// Parses the use tree after `use` up to its `;`, leaving `i` after it. Returns every leaf
/// path (grouped lists expanded) with its name in scope (`as` alias or last segment).
fn parse_use(tokens: &[Token], i: &mut usize) -> Vec<(Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    parse_tree(tokens, i, &[], &mut out);
    while *i < tokens.len() && !matches!(tokens[*i].kind, Kind::Punct(';')) {
        *i += 1;
    }
    *i += 1;
    out
}

fn parse_tree(
    tokens: &[Token],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut path = prefix.to_vec();
    if matches!(tokens.get(*i).map(|t| &t.kind), Some(Kind::PathSep)) {
        *i += 1; // a leading `::` (an external crate)
    }
    loop {
        match tokens.get(*i).map(|t| &t.kind) {
            Some(Kind::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
                if matches!(tokens.get(*i).map(|t| &t.kind), Some(Kind::PathSep)) {
                    *i += 1;
                    continue;
                }
                let mut alias = path.last().cloned();
                if tokens.get(*i).is_some_and(|t| t.is_ident("as")) {
                    alias = tokens.get(*i + 1).and_then(|t| match &t.kind {
                        Kind::Ident(a) => Some(a.clone()),
                        _ => None,
                    });
                    *i += 2;
                }
                if alias.as_deref() == Some("self") {
                    alias = path.iter().rev().nth(1).cloned();
                }
                out.push((path, alias));
                return;
            }
            Some(Kind::Punct('{')) => {
                *i += 1;
                loop {
                    match tokens.get(*i).map(|t| &t.kind) {
                        None => return,
                        Some(Kind::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Kind::Punct(',')) => *i += 1,
                        _ => parse_tree(tokens, i, &path, out),
                    }
                }
            }
            Some(Kind::Punct('*')) => {
                *i += 1;
                out.push((path, None));
                return;
            }
            _ => {
                *i += 1;
                return;
            }
        }
    }
}

#[derive(Debug)]
enum Kind {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// The contents of a string literal.
    Str(String),
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    line: usize,
}

impl Token {
    fn is_ident(&self, word: &str) -> bool {
        matches!(&self.kind, Kind::Ident(w) if w == word)
    }
}

/// Rust source -> identifiers, `::`, punctuation and string contents; comments, numbers,
/// char literals and lifetimes are dropped.
fn tokenize(text: &str) -> Vec<Token> {
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

/// The parser itself, on the shapes the check must see through.
#[test]
fn the_parser_reads_grouped_nested_and_inline_paths() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d", "e", "f", "g", "h", "me"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let reexports: BTreeMap<String, String> =
        [("Thing".to_owned(), "h".to_owned())].into_iter().collect();
    let text = r##"
        //! crate::z in a doc comment is not an import
        use crate::{a::{x, y as _}, b, self as _};
        use super::super::c::Z;
        use std::collections::HashMap;
        /* crate::z in a block /* nested */ comment */
        fn f() {
            let s = "crate::d::X";
            let r = r#"not "crate::" a path"#;
            let ch = '"';
            let _ = crate::e::make();
            let _ = <crate::Thing as Default>::default();
        }
        #[cfg(test)]
        mod tests {
            use super::super::f;
            fn g<'a>(x: &'a str) -> &'a str { super::super::super::g::id(x) }
        }
    "##;
    let path = vec!["me".to_owned(), "sub".to_owned()];
    let mut got: Vec<String> = crate_imports(text, &path, &reexports, &modules)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got, ["a", "b", "c", "d", "e", "g", "h", "me"]);
}
