//! Reading a source file's paths into the crate: `use` trees with their grouped lists,
//! `super::`/`self::` resolved against the file's module and its inline `mod`s, paths written
//! inline in code, and `crate::` paths inside string literals (attribute arguments).

use std::collections::{BTreeMap, BTreeSet};

use crate::tokens::{tokenize, Kind, Token};

/// Every crate module (top level) that `text`, the file of module `path`, refers to, with
/// the line of the reference.
pub(crate) fn crate_imports(
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
pub(crate) fn parse_use(tokens: &[Token], i: &mut usize) -> Vec<(Vec<String>, Option<String>)> {
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
