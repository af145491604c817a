//! The module structure ARCHITECTURE.md describes, checked on the source text: every
//! `crate::` import points down the layers, and within a module no two files import
//! each other (no cycles at all among a module's files).
//!
//! Run alone with `cargo test --test architecture -- --nocapture` to print the layers
//! and each module's file graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first; a module may use only modules in lower layers.
const LAYERS: &[&[&str]] = &[
    &["attention", "memory", "tasks"],
    &["config"],
    &["model", "records"],
    &["trainer"],
    &["bench", "export"],
    &["app", "cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("readable src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The file's code without comments and without its inline `mod tests` (whose
/// `super::` means the file itself).
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("readable");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every item `prefix` reaches (`super::{a, b::C}` gives
/// `a` and `b`).
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident_at(item.trim()).to_string());
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.push(ident_at(item.trim()).to_string());
        } else {
            out.push(ident_at(rest).to_string());
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

#[test]
fn every_crate_import_points_down_the_layers() {
    let root = src();
    let mut violations = Vec::new();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for path in rust_files(&root) {
        let rel = path.strip_prefix(&root).expect("under src");
        let module = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("a module");
        if module == "main" || module == "lib" {
            continue;
        }
        let own = layer_of(&module)
            .unwrap_or_else(|| panic!("src/{module} is not in a layer: add it to LAYERS"));
        for used in first_segments(&code_of(&path), "crate::") {
            if used == module {
                continue;
            }
            let Some(theirs) = layer_of(&used) else {
                continue;
            };
            edges.insert((module.clone(), used.clone()));
            if theirs >= own {
                violations.push(format!(
                    "{} uses crate::{used} (layer {theirs}) from layer {own}",
                    rel.display()
                ));
            }
        }
    }
    for (from, to) in &edges {
        println!("{from} -> {to}");
    }
    assert!(
        violations.is_empty(),
        "imports that point up or sideways:\n{}",
        violations.join("\n")
    );
}

/// Within each module folder: an edge from file `a` to file `b` when `a` names `b`
/// (or an item `mod.rs` re-exports from `b`) through `super::` or `crate::<module>::`.
#[test]
fn no_module_has_an_import_cycle_between_its_files() {
    let root = src();
    let mut problems = Vec::new();
    for entry in fs::read_dir(&root).expect("src") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let module = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let files: BTreeMap<String, PathBuf> = rust_files(&dir)
            .into_iter()
            .filter(|p| p.parent() == Some(dir.as_path()))
            .map(|p| {
                let stem = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("stem")
                    .to_string();
                (stem, p)
            })
            .collect();
        // Which file each name `mod.rs` re-exports comes from.
        let mut exported: BTreeMap<String, String> = BTreeMap::new();
        if let Some(mod_rs) = files.get("mod") {
            let code = code_of(mod_rs);
            for stmt in code.split(';') {
                let stmt = stmt.trim();
                let Some(rest) = stmt.strip_prefix("pub use ") else {
                    continue;
                };
                let stem = ident_at(rest).to_string();
                if !files.contains_key(&stem) {
                    continue;
                }
                let names = rest[stem.len()..].trim_start_matches("::");
                for name in names
                    .trim_matches(|c| c == '{' || c == '}')
                    .split(',')
                    .map(|n| ident_at(n.trim()).to_string())
                    .filter(|n| !n.is_empty())
                {
                    exported.insert(name, stem.clone());
                }
            }
        }
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (stem, path) in &files {
            if stem == "mod" {
                continue;
            }
            let code = code_of(path);
            let mut used = first_segments(&code, "super::");
            used.extend(first_segments(&code, &format!("crate::{module}::")));
            for name in used {
                let target = if files.contains_key(&name) {
                    name
                } else if let Some(file) = exported.get(&name) {
                    file.clone()
                } else {
                    "mod".to_string()
                };
                if &target != stem {
                    graph.entry(stem.clone()).or_default().insert(target);
                }
            }
        }
        println!("{module}/");
        for (from, to) in &graph {
            println!(
                "  {from} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if let Some(cycle) = find_cycle(&graph) {
            problems.push(format!("src/{module}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles:\n{}",
        problems.join("\n")
    );
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("b".into()).or_default().insert("a".into());
    assert!(find_cycle(&graph).is_some());
    assert_eq!(
        first_segments(
            "use super::{a::X, b, self};\nlet y = super::c::f();",
            "super::"
        ),
        ["a", "b", "c"]
    );
}

/// The window's shell stays split by job (rerun's shape): no file in `src/app` grows
/// past about 400 lines.
#[test]
fn no_app_file_is_a_shell_of_everything() {
    let mut long = Vec::new();
    for path in rust_files(&src().join("app")) {
        let lines = fs::read_to_string(&path).expect("readable").lines().count();
        if lines > 420 {
            long.push(format!("{}: {lines} lines", path.display()));
        }
    }
    assert!(long.is_empty(), "split these by job:\n{}", long.join("\n"));
}
