//! The architecture's rules, checked on the crate's own source (in the manner
//! of rust-analyzer's tidy tests). Each failure names the rule it breaks and
//! why the rule exists, so whoever trips it knows what to change.
//!
//! - Layers: a top-level module imports only from layers below its own.
//! - Only `store` runs SQL.
//! - No import cycle between top-level modules.
//!
//! The checks are plain functions over (path, text) pairs, so the last test
//! feeds them a small tree that breaks every rule and asserts each is caught.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers, bottom first. A module may import from any module of a lower layer.
const LAYERS: &[(&str, &[&str])] = &[
    ("leaves", &["config", "time", "os", "linalg", "metrics"]),
    (
        "engines (import nothing of the product but the leaves)",
        &["llm", "embed", "extract", "audit", "accounts", "pii"],
    ),
    ("the store (all SQL)", &["store"]),
    ("the derived indexes", &["index"]),
    ("the library", &["library"]),
    ("use cases", &["ingest", "rag"]),
    (
        "the web server and the command line's definitions",
        &["web", "cli"],
    ),
    ("the commands", &["cmd"]),
];

/// What counts as running SQL: these calls outside `store/`.
const SQL_CALLS: &[&str] = &[
    ".conn()",
    ".conn_mut()",
    "execute(",
    "execute_batch(",
    "prepare(",
    "prepare_cached(",
    "query_row(",
    "transaction(",
    "transaction_with_behavior(",
];

/// Modules that are not layered: the binary's entry and the crate root.
const ROOTS: &[&str] = &["main", "lib"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The top-level module a file under `src/` belongs to.
fn module_of(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without its comments (line comments and doc comments;
/// enough for this crate, which has no block comments in code).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules a file names through `crate::…`, including inside
/// `use crate::{a, b::c}` groups.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// `files` are (path relative to `src/`, text). Returns one message per broken rule.
fn check(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let module = module_of(path);
        if ROOTS.contains(&module.as_str()) {
            continue;
        }
        let code = code(text);
        let Some(layer) = layer_of(&module) else {
            problems.push(format!(
                "src/{path}: module `{module}` is in no layer. Rule: every top-level module \
                 has a place in the layers (tests/it/architecture.rs, LAYERS; ARCHITECTURE.md) \
                 so that what it may import is written down."
            ));
            continue;
        };
        for target in imports(&code) {
            if target == module {
                continue;
            }
            graph
                .entry(module.clone())
                .or_default()
                .insert(target.clone());
            match layer_of(&target) {
                Some(t) if t < layer => {}
                Some(t) => problems.push(format!(
                    "src/{path}: `{module}` ({}) imports `crate::{target}` ({}). Rule: a module \
                     imports only from layers below its own, so the core never depends on the \
                     web server or the commands and each layer can be read and tested alone.",
                    LAYERS[layer].0, LAYERS[t].0
                )),
                None => {}
            }
        }
        if module != "store" {
            for call in SQL_CALLS {
                if let Some(line) = code.lines().position(|l| l.contains(call)) {
                    problems.push(format!(
                        "src/{path}:{}: `{call}` outside `store`. Rule: only the store runs SQL \
                         (one place knows the schema); add a function to the table family's file \
                         under src/store/ and call it.",
                        line + 1
                    ));
                }
            }
        }
    }
    for cycle in cycles(&graph) {
        problems.push(format!(
            "import cycle between top-level modules: {}. Rule: no cycles, so every module \
             can be understood from the ones it imports.",
            cycle.join(" → ")
        ));
    }
    problems
}

/// Each strongly connected group of more than one module, as a path.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph.keys().chain(graph.values().flatten()).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in graph.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for n in nodes {
        if found.iter().any(|c| c.contains(n)) {
            continue;
        }
        let from_n = reach(n);
        if !from_n.contains(n) {
            continue;
        }
        let mut group: Vec<String> = from_n
            .into_iter()
            .filter(|m| reach(m).contains(n))
            .collect();
        group.sort();
        group.push(group[0].clone());
        found.push(group);
    }
    found
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn the_crate_keeps_its_layers_sql_in_the_store_and_no_cycles() {
    let src = crate::common::repo_root().join("src");
    let mut files = Vec::new();
    source_files(&src, &src, &mut files);
    assert!(files.len() > 50, "read {} files from src/", files.len());
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "{} architecture rule(s) broken:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn every_rule_catches_a_tree_that_breaks_it() {
    let file = |p: &str, t: &str| (p.to_string(), t.to_string());
    let broken = [
        // The core reaching up into the web layer.
        file(
            "library/mod.rs",
            "use crate::web::state::AppState;\nuse crate::index::Mode;",
        ),
        // SQL outside the store (a comment mentioning it is fine).
        file(
            "rag/plan.rs",
            "// db.conn() is not allowed here\nfn f(c: &Connection) { c.execute(\"DELETE FROM x\", []); }",
        ),
        // A cycle (and an upward import) between two layers.
        file("index/mod.rs", "use crate::{library, config::Config};"),
        // A module nobody placed.
        file("utils.rs", "pub fn helper() {}"),
        file(
            "store/mod.rs",
            "fn ok(c: &Connection) { c.execute(\"…\", []); }",
        ),
    ];
    let problems = check(&broken);
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has("`library` (the library) imports `crate::web`"),
        "{problems:#?}"
    );
    assert!(
        has("src/rag/plan.rs:2: `execute(` outside `store`"),
        "{problems:#?}"
    );
    assert!(
        !has("rag/plan.rs:1"),
        "comments are not code: {problems:#?}"
    );
    assert!(
        has("import cycle between top-level modules: index → library → index"),
        "{problems:#?}"
    );
    assert!(has("module `utils` is in no layer"), "{problems:#?}");
    assert!(
        !problems.iter().any(|p| p.starts_with("src/store/")),
        "{problems:#?}"
    );
    // The tree as it should be passes.
    let fine = [
        file("library/mod.rs", "use crate::store::Store;"),
        file(
            "store/mod.rs",
            "use crate::audit::Entry;\nfn ok(c: &Connection) { c.execute(\"…\", []); }",
        ),
    ];
    assert_eq!(check(&fine), Vec::<String>::new());
}
