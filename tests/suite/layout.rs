//! The source tree's shape, checked: no import cycles between files, and
//! every module file opens with a `//!` comment saying what it owns.
//!
//! A file imports another when it names a path into it (`use`, or an
//! inline `crate::` / `super::` / `self::` path, or a child module it
//! declares). A parent `mod.rs` may import its children, so children must
//! not import the parent: what they share lives in a sibling file
//! (`detect/core.rs`, `fwlog/record.rs`, ...). Test-only code
//! (`#[cfg(test)]` modules and files) is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/detect/mod.rs` -> `[detect]`, `src/detect/core.rs` -> `[detect, core]`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("under src").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    if parts == ["main"] {
        parts = vec!["<main>".into()];
    }
    parts
}

/// Removes comments, string and char literals, then `#[cfg(test)]` items.
fn strip(text: &str) -> String {
    drop_test_items(&drop_literals(text))
}

fn drop_literals(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body + rest[body..].find(&close).map_or(rest.len() - body, |e| e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && (rest.starts_with("'\\") || rest.get(2..3) == Some("'")) {
            // A char literal ('{', '\'', '\n'); a lifetime has no closing quote.
            let end = rest[2..].find('\'').map_or(rest.len(), |e| e + 3);
            i += end;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn drop_test_items(text: &str) -> String {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(k) = rest.find(ATTR) {
        out.push_str(&rest[..k]);
        let item = &rest[k + ATTR.len()..];
        // The item runs to its `;` or to the end of its balanced `{ }`.
        let mut depth = 0usize;
        let mut end = item.len();
        for (n, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = n + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = n + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into full paths.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::").trim();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..k], &base, out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
    } else if !tree.is_empty() {
        let name = tree.split(" as ").next().unwrap_or("").trim();
        out.push(if name == "self" { prefix.to_string() } else { join(prefix, name) });
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path the file names that starts at `crate`, `super`, `self` or a
/// child module it declares.
fn paths(code: &str, children: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    // use statements (trees)
    let mut rest = code;
    while let Some(pos) = rest.find("use ") {
        let before_ok = pos == 0 || !is_ident(rest[..pos].chars().last().unwrap_or(' '));
        let after = &rest[pos + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if before_ok {
            expand(&after[..end], "", &mut out);
        }
        rest = &after[end.min(after.len())..];
    }
    // inline paths
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut j = i;
            while j < chars.len() && (is_ident(chars[j]) || (chars[j] == ':' && chars.get(j + 1) == Some(&':'))) {
                j += if chars[j] == ':' { 2 } else { 1 };
            }
            let p: String = chars[i..j].iter().collect::<String>().trim_end_matches(':').to_string();
            let first = p.split("::").next().unwrap_or("");
            if p.contains("::") && (matches!(first, "crate" | "super" | "self") || children.contains(first)) {
                out.push(p);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The module file a path lands in: the longest prefix of it that is a
/// module file. `from` is the module the path is written in.
fn resolve(path: &str, from: &Module, files: &BTreeSet<Module>) -> Option<Module> {
    let parts: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut cur, mut rest): (Module, &[&str]) = match *parts.first()? {
        "crate" => (Vec::new(), &parts[1..]),
        "self" => (from.clone(), &parts[1..]),
        _ => (from.clone(), &parts[..]),
    };
    // `super` pops one level, from `a/b.rs` (module a::b) as from `a/mod.rs` (module a).
    while rest.first() == Some(&"super") {
        cur.pop();
        rest = &rest[1..];
    }
    let mut best = files.contains(&cur).then(|| cur.clone());
    for seg in rest {
        cur.push((*seg).to_string());
        if !files.contains(&cur) {
            break;
        }
        best = Some(cur.clone());
    }
    best
}

struct Tree {
    src: PathBuf,
    files: BTreeMap<Module, PathBuf>,
    edges: BTreeMap<Module, BTreeSet<Module>>,
    /// For each edge, the first path that made it.
    why: BTreeMap<(Module, Module), String>,
}

fn tree() -> Tree {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    rust_files(&src, &mut all);
    let mut files = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for f in &all {
        let text = std::fs::read_to_string(f).expect("read");
        let module = module_of(&src, f);
        // `#[cfg(test)] mod x;` marks x's file test-only.
        for (k, _) in text.match_indices("#[cfg(test)]") {
            let after = text[k + 12..].trim_start();
            let decl = after.strip_prefix("pub ").unwrap_or(after).trim_start();
            if let Some(name) = decl.strip_prefix("mod ").and_then(|d| d.split(';').next()) {
                if !name.contains('{') {
                    let mut m = module.clone();
                    m.push(name.trim().to_string());
                    test_only.insert(m);
                }
            }
        }
        files.insert(module, f.clone());
    }
    files.retain(|m, _| !test_only.contains(m));
    let names: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    let mut why = BTreeMap::new();
    for (m, f) in &files {
        let code = strip(&std::fs::read_to_string(f).expect("read"));
        let is_dir = f.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        // Child modules a `mod.rs` may name without a prefix.
        let children: BTreeSet<String> = if is_dir {
            names.iter().filter(|c| c.len() == m.len() + 1 && c.starts_with(m)).map(|c| c[m.len()].clone()).collect()
        } else {
            BTreeSet::new()
        };
        let mut out = BTreeSet::new();
        for p in paths(&code, &children) {
            let first = p.split("::").next().unwrap_or("");
            if !matches!(first, "crate" | "super" | "self") && !children.contains(first) {
                continue; // another crate, or a name already in scope
            }
            if let Some(t) = resolve(&p, m, &names)
                && t != *m
                && !t.is_empty()
            {
                why.entry((m.clone(), t.clone())).or_insert_with(|| p.clone());
                out.insert(t);
            }
        }
        edges.insert(m.clone(), out);
    }
    Tree { src, files, edges, why }
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct S<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit(s: &mut S, v: &Module) {
        s.index.insert(v.clone(), s.next);
        s.low.insert(v.clone(), s.next);
        s.next += 1;
        s.stack.push(v.clone());
        s.on.insert(v.clone());
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("low");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("low");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                let done = w == *v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = S {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_import_cycles_between_files() {
    let t = tree();
    let found = cycles(&t.edges);
    let show = |m: &Module| {
        let f = &t.files[m];
        f.strip_prefix(&t.src).unwrap_or(f).display().to_string()
    };
    let report: Vec<String> = found
        .iter()
        .map(|comp| {
            let set: BTreeSet<&Module> = comp.iter().collect();
            let arrows: Vec<String> = comp
                .iter()
                .flat_map(|a| t.edges[a].iter().filter(|b| set.contains(b)).map(move |b| (a, b)))
                .map(|(a, b)| format!("{} -> {} ({})", show(a), show(b), t.why[&(a.clone(), b.clone())]))
                .collect();
            arrows.join(", ")
        })
        .collect();
    assert!(report.is_empty(), "import cycles:\n  {}", report.join("\n  "));
}

#[test]
fn the_checker_sees_a_cycle() {
    // Guard against a checker that sees nothing: the real tree has edges,
    // and a made-up back edge makes a cycle.
    let mut t = tree();
    let app = vec!["app".to_string()];
    let detect = vec!["detect".to_string()];
    assert!(t.edges[&app].contains(&detect), "app uses detect: {:?}", t.edges[&app]);
    t.edges.get_mut(&detect).expect("detect").insert(app.clone());
    assert!(!cycles(&t.edges).is_empty());
}

#[test]
fn every_module_says_what_it_owns() {
    let t = tree();
    for f in t.files.values() {
        let text = std::fs::read_to_string(f).expect("read");
        assert!(text.trim_start().starts_with("//!"), "{} does not start with a //! comment", f.display());
    }
}
