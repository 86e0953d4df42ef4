//! The layer rules of `docs/architecture.md` ("Allowed imports"), checked against the source.
//!
//! Reads every `.rs` file under `src/`, finds every path into the crate — `use` declarations
//! with their grouped lists (`use crate::{a::{b, c}, d}`), `super::` and `self::` resolved
//! against the file's module (and any inline `mod` it sits in), paths written inline in code
//! (`crate::storage::X::new()`), and `crate::` paths inside string literals, which is where
//! attribute arguments such as `#[rtype(result = "...")]` hold them — and fails when a module
//! imports one its layer may not. Comments, doc comments included, are not read.
//!
//! Files: `main.rs` (the rules, the ratchet and the walk over `src/`), `paths.rs` (a file's
//! paths into the crate, and the parser's own test), `tokens.rs` (the tokenizer).
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

mod paths;
mod tokens;

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
        for (target, line) in paths::crate_imports(&text, &path, &reexports, &modules) {
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
    let tokens = tokens::tokenize(lib);
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].is_ident("use") {
            i += 1;
            for (path, alias) in paths::parse_use(&tokens, &mut i) {
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
