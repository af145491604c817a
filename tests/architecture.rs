//! The module structure ARCHITECTURE.md describes, checked on the source text: every
//! `crate::` import points down the layers; within a module, subfolders included, no
//! two files import each other (no cycles at all among a module's files); the
//! window's `app/view_model` does not use egui; no source file outside the fused
//! kernels is longer than 500 lines; and ARCHITECTURE.md has a section per module.
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
    &["device"],
    &["inspect"],
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

/// A module's files by their path inside the module folder, without `.rs`
/// (`workbench`, `panes/curves`, `mod`, `panes/mod`).
type Files = BTreeMap<String, PathBuf>;

/// `dir` and `name` joined as a file key (`""` + `a` is `a`, `panes` + `a` is
/// `panes/a`).
fn key_in(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The folder of a file key (`panes/curves` is in `panes`, `workbench` in `""`).
fn folder_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Every item path a `use` or an expression reaches after `prefix`, split into
/// segments, groups expanded (`super::{a::X, b::{c, d}}` gives `a X`, `b c` and
/// `b d`). Each entry carries how many further `super::` came before the path.
fn paths_after(code: &str, prefix: &str) -> Vec<(usize, Vec<String>)> {
    fn expand(text: &str, base: &[String], out: &mut Vec<Vec<String>>) {
        let mut segments = base.to_vec();
        let mut rest = text.trim_start();
        loop {
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            expand(&item, &segments, out);
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                expand(&item, &segments, out);
                return;
            }
            let ident = ident_at(rest);
            if ident.is_empty() {
                break;
            }
            if ident == "self" {
                // `b::{self}` names `b` itself.
                if !segments.is_empty() {
                    out.push(segments);
                }
                return;
            }
            segments.push(ident.to_string());
            rest = &rest[ident.len()..];
            match rest.strip_prefix("::") {
                Some(more) => rest = more.trim_start(),
                None => break,
            }
        }
        if segments.len() > base.len() {
            out.push(segments);
        }
    }
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        // A `super::` right after another is counted with the first.
        if prefix == "super::" && code[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &code[at + prefix.len()..];
        let mut ups = 0;
        while let Some(more) = rest.strip_prefix("super::") {
            ups += 1;
            rest = more;
        }
        let mut paths = Vec::new();
        expand(rest, &[], &mut paths);
        out.extend(paths.into_iter().map(|p| (ups, p)));
    }
    out
}

/// What each folder's `mod.rs` re-exports: (folder, name) -> the path it names,
/// relative to that folder.
fn reexports(files: &Files) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for (key, path) in files {
        let dir = match key.strip_suffix("/mod") {
            Some(dir) => dir,
            None if key == "mod" => "",
            None => continue,
        };
        let code = code_of(path);
        for stmt in code.split(';') {
            let stmt = stmt.trim();
            let Some(rest) = stmt
                .strip_prefix("pub use ")
                .or_else(|| stmt.strip_prefix("pub(crate) use "))
                .or_else(|| stmt.strip_prefix("pub(super) use "))
            else {
                continue;
            };
            let rest = rest.strip_prefix("self::").unwrap_or(rest);
            for (_, segments) in paths_after(&format!("@{rest}"), "@") {
                if let Some(name) = segments.last() {
                    out.insert((dir.to_string(), name.clone()), segments);
                }
            }
        }
    }
    out
}

/// The file a path names from folder `dir`: the file or folder each segment names in
/// turn, else what the folder's `mod.rs` re-exports, else that `mod.rs`.
fn resolve(
    files: &Files,
    exported: &BTreeMap<(String, String), Vec<String>>,
    dir: &str,
    segments: &[String],
    depth: usize,
) -> String {
    let mut dir = dir.to_string();
    for segment in segments {
        let file = key_in(&dir, segment);
        if files.contains_key(&file) {
            return file;
        }
        if files.contains_key(&key_in(&file, "mod")) {
            dir = file;
            continue;
        }
        if let Some(path) = exported.get(&(dir.clone(), segment.clone()))
            && depth < 8
        {
            return resolve(files, exported, &dir, path, depth + 1);
        }
        break;
    }
    key_in(&dir, "mod")
}

/// Whether a file key is a folder's `mod.rs`.
fn is_mod_file(key: &str) -> bool {
    key == "mod" || key.ends_with("/mod")
}

/// What an ordinary file names inside its module, as (folder the path starts from,
/// segments): through `super::` (the file's folder; each further `super::` one up) and
/// `crate::<module>::`.
fn file_imports(key: &str, code: &str, module: &str) -> Vec<(String, Vec<String>)> {
    let mut used = Vec::new();
    for (ups, segments) in paths_after(code, "super::") {
        let mut from = folder_of(key);
        for _ in 0..ups {
            from = folder_of(from);
        }
        used.push((from.to_string(), segments));
    }
    for (_, segments) in paths_after(code, &format!("crate::{module}::")) {
        used.push((String::new(), segments));
    }
    used
}

/// What a folder's `mod.rs` names beyond declaring and re-exporting its children:
/// `use` statements that are not `pub`, and paths in its own code through its
/// children (`child::f()`), `self::`, `super::` (the folder above) and
/// `crate::<module>::`. A `mod.rs` that calls into a child that uses the `mod.rs`
/// makes a cycle like any other file.
fn mod_file_imports(key: &str, code: &str, module: &str) -> Vec<(String, Vec<String>)> {
    let dir = key.strip_suffix("/mod").unwrap_or("");
    let declares_or_reexports = |stmt: &str| {
        let stmt = stmt.trim_start();
        let stmt = stmt
            .strip_prefix("#[cfg(test)]")
            .unwrap_or(stmt)
            .trim_start();
        [
            "mod ",
            "pub mod ",
            "pub(crate) mod ",
            "pub use ",
            "pub(crate) use ",
            "pub(super) use ",
        ]
        .iter()
        .any(|p| stmt.starts_with(p))
    };
    let children: Vec<String> = code
        .split(';')
        .filter_map(|stmt| {
            let stmt = stmt.trim_start();
            let rest = stmt
                .strip_prefix("mod ")
                .or_else(|| stmt.strip_prefix("pub mod "))
                .or_else(|| stmt.strip_prefix("pub(crate) mod "))?;
            Some(ident_at(rest).to_string())
        })
        .collect();
    // A `use` of another crate (`use burn::backend::{ops::Ops}`) names no file here.
    let other_crate = |stmt: &str| {
        let Some(path) = stmt.trim_start().strip_prefix("use ") else {
            return false;
        };
        let path = path.trim_start();
        !(["self::", "super::", "crate::"]
            .iter()
            .any(|p| path.starts_with(p))
            || children.iter().any(|c| path.starts_with(&format!("{c}::"))))
    };
    let own: String = code
        .split_inclusive(';')
        .filter(|stmt| !declares_or_reexports(stmt) && !other_crate(stmt))
        .collect();
    let mut used = Vec::new();
    for child in &children {
        let prefix = format!("{child}::");
        for (at, _) in own.match_indices(&prefix) {
            let before = own[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            // The path alone: up to the statement's end, no `@` of a pattern binding.
            let path = own[at..].split(';').next().unwrap_or("").replace('@', " ");
            for (_, segments) in paths_after(&format!("@{path}"), "@") {
                used.push((dir.to_string(), segments));
            }
        }
    }
    for (_, segments) in paths_after(&own, "self::") {
        used.push((dir.to_string(), segments));
    }
    if !dir.is_empty() {
        for (ups, segments) in paths_after(&own, "super::") {
            let mut from = folder_of(dir);
            for _ in 0..ups {
                from = folder_of(from);
            }
            used.push((from.to_string(), segments));
        }
    }
    for (_, segments) in paths_after(&own, &format!("crate::{module}::")) {
        used.push((String::new(), segments));
    }
    used
}

/// Within each module (its folder, subfolders included): an edge from file `a` to
/// file `b` when `a` names `b`, a folder `b` is in, or an item a `mod.rs` re-exports
/// from `b`, through `super::` or `crate::<module>::`. Files in a subfolder (`app/panes/
/// curves.rs`) are nodes of their module's graph like any other, so a cycle through a
/// subfolder is found too; a `mod.rs` points where its own code points
/// ([`mod_file_imports`]), its declarations and re-exports aside.
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
        let files: Files = rust_files(&dir)
            .into_iter()
            .map(|p| {
                let rel = p.strip_prefix(&dir).expect("under the module");
                let key = rel
                    .with_extension("")
                    .components()
                    .filter_map(|c| c.as_os_str().to_str())
                    .collect::<Vec<_>>()
                    .join("/");
                (key, p)
            })
            .collect();
        let exported = reexports(&files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (key, path) in &files {
            let used = if is_mod_file(key) {
                mod_file_imports(key, &code_of(path), &module)
            } else {
                file_imports(key, &code_of(path), &module)
            };
            for (from, segments) in used {
                let target = resolve(&files, &exported, &from, &segments, 0);
                if &target != key {
                    graph.entry(key.clone()).or_default().insert(target);
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
    let paths = paths_after(
        "use super::{a::X, b::{c, d::E}, self};\nlet y = super::super::f::g();",
        "super::",
    );
    let paths: Vec<(usize, String)> = paths.into_iter().map(|(u, p)| (u, p.join("::"))).collect();
    assert_eq!(
        paths,
        [
            (0, "a::X".to_string()),
            (0, "b::c".to_string()),
            (0, "b::d::E".to_string()),
            (1, "f::g".to_string()),
        ]
    );
    let files: Files = [
        "mod",
        "shell",
        "panes/mod",
        "panes/curves",
        "view_model/mod",
    ]
    .iter()
    .map(|k| (k.to_string(), PathBuf::from(k)))
    .collect();
    let mut exported = BTreeMap::new();
    exported.insert(
        ("".to_string(), "Curves".to_string()),
        vec!["panes".to_string(), "Curves".to_string()],
    );
    exported.insert(
        ("panes".to_string(), "Curves".to_string()),
        vec!["curves".to_string(), "Curves".to_string()],
    );
    let path = |p: &str| p.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(
        resolve(&files, &exported, "", &path("panes::curves::f"), 0),
        "panes/curves"
    );
    assert_eq!(
        resolve(&files, &exported, "", &path("Curves"), 0),
        "panes/curves"
    );
    assert_eq!(
        resolve(&files, &exported, "panes", &path("curves::f"), 0),
        "panes/curves"
    );
    assert_eq!(
        resolve(&files, &exported, "", &path("shell::x"), 0),
        "shell"
    );
    assert_eq!(
        resolve(&files, &exported, "", &path("view_model::Y"), 0),
        "view_model/mod"
    );
    assert_eq!(resolve(&files, &exported, "", &path("nothing"), 0), "mod");
}

/// The words of `path`'s code, comment lines and trailing comments left out (its
/// tests included).
fn words_of(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).expect("readable");
    let mut words = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        words.extend(
            code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(String::from),
        );
    }
    words
}

/// The window's state and numbers (`app/view_model`) are tested without a window:
/// no file there names egui or a crate built on it.
#[test]
fn the_view_model_does_not_use_egui() {
    let dir = src().join("app").join("view_model");
    let files = rust_files(&dir);
    assert!(!files.is_empty(), "no files under {}", dir.display());
    let mut uses = Vec::new();
    for path in files {
        let named: BTreeSet<String> = words_of(&path)
            .into_iter()
            .filter(|w| w == "egui" || w == "eframe" || w.starts_with("egui_"))
            .collect();
        if !named.is_empty() {
            uses.push(format!(
                "{} uses {}",
                path.display(),
                named.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    assert!(
        uses.is_empty(),
        "view_model must not use egui (move the drawing into the pane that uses it):\n{}",
        uses.join("\n")
    );
}

/// Most lines in one file under `src/` (outside `model/fused/`, whose kernels keep
/// each ISA variant of a pass together). Functions are held to 80 lines by clippy's
/// `too_many_lines` (clippy.toml), so this cap only stops a file from becoming a
/// shell of many jobs; a file that is one coherent unit (a pane, a task with its
/// tests) may be long, and its unit tests stay inline.
const MAX_LINES: usize = 700;

/// A file is one unit of a size a reader takes in: none under `src/` beyond
/// [`MAX_LINES`] lines, except the fused kernels.
#[test]
fn no_source_file_is_longer_than_the_limit() {
    let root = src();
    let fused = root.join("model").join("fused");
    let mut long = Vec::new();
    for path in rust_files(&root) {
        if path.starts_with(&fused) {
            continue;
        }
        let lines = fs::read_to_string(&path).expect("readable").lines().count();
        if lines > MAX_LINES {
            let rel = path.strip_prefix(&root).expect("under src");
            long.push(format!("src/{}: {lines} lines", rel.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by job):\n{}",
        long.join("\n")
    );
}

/// The window's shell stays split by job (rerun's shape): no file of the shell itself
/// (directly in `src/app`: the frame loop, actions, menus, tiles) grows past about
/// 400 lines. Panes and view models are one unit each, held to [`MAX_LINES`].
#[test]
fn no_app_file_is_a_shell_of_everything() {
    let mut long = Vec::new();
    let app = src().join("app");
    for path in rust_files(&app)
        .into_iter()
        .filter(|p| p.parent() == Some(&app))
    {
        let lines = fs::read_to_string(&path).expect("readable").lines().count();
        if lines > 420 {
            long.push(format!("{}: {lines} lines", path.display()));
        }
    }
    assert!(long.is_empty(), "split these by job:\n{}", long.join("\n"));
}

/// Every folder below a module's own (`app/panes`, `config/fields/table`), relative to
/// `src/`, sorted: each gets a `###` section of its own in ARCHITECTURE.md.
fn subfolders() -> Vec<String> {
    let root = src();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("readable src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                let rel = path.strip_prefix(&root).expect("under src");
                if rel.components().count() >= 2 {
                    let parts: Vec<&str> = rel
                        .components()
                        .filter_map(|c| c.as_os_str().to_str())
                        .collect();
                    out.push(parts.join("/"));
                }
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The paths ARCHITECTURE.md's headings name: `(level, path)` for every `##` or `###`
/// heading whose first code span starts with `src/`.
fn architecture_headings() -> Vec<(usize, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md");
    let text = fs::read_to_string(path).expect("ARCHITECTURE.md");
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !(2..=3).contains(&level) {
            continue;
        }
        let title = line[level..].trim();
        let Some(rest) = title.strip_prefix('`') else {
            continue;
        };
        let Some(end) = rest.find('`') else {
            continue;
        };
        if rest[..end].starts_with("src/") {
            out.push((level, rest[..end].to_string()));
        }
    }
    out
}

/// ARCHITECTURE.md has one section per module and per subfolder: a level-2 heading
/// naming `src/NAME/` (or `src/NAME.rs`) in backticks for every top-level entry under
/// `src/` but `lib.rs` and `main.rs`, a level-3 heading naming `src/a/b/` for every
/// folder below a module's own ([`subfolders`]), and no such heading naming a path
/// that does not exist.
#[test]
fn architecture_md_has_a_section_per_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let headings = architecture_headings();
    let mut wanted: Vec<(usize, String)> = Vec::new();
    for entry in fs::read_dir(src()).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        if path.is_dir() {
            wanted.push((2, format!("src/{name}/")));
        } else if name.ends_with(".rs") && name != "lib.rs" && name != "main.rs" {
            wanted.push((2, format!("src/{name}")));
        }
    }
    wanted.extend(subfolders().into_iter().map(|d| (3, format!("src/{d}/"))));
    wanted.sort();
    let mut problems = Vec::new();
    for (level, path) in &wanted {
        if !headings.contains(&(*level, path.clone())) {
            problems.push(format!("no heading `{} `{path}``", "#".repeat(*level)));
        }
    }
    for (level, path) in &headings {
        let on_disk = root.join(path.trim_end_matches('/'));
        let exists = if path.ends_with('/') {
            on_disk.is_dir()
        } else {
            on_disk.is_file()
        };
        if !exists {
            problems.push(format!(
                "heading `{} `{path}`` names a path that does not exist",
                "#".repeat(*level)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md and src/ disagree:\n{}",
        problems.join("\n")
    );
}

/// A `mod.rs` is read for what its own code uses: a call into a child and a private
/// `use` of one are edges; declarations, re-exports and other crates' paths are not.
#[test]
fn a_mod_file_s_own_imports_are_edges() {
    let code = "mod a;\nmod b;\npub use a::Thing;\nuse burn::backend::{grads::G, b::Nope};\n\
                use self::b::Helper;\nfn f() { a::call(); }";
    let mut used: Vec<String> = mod_file_imports("panes/mod", code, "app")
        .into_iter()
        .map(|(from, segments)| format!("{from}:{}", segments.join("::")))
        .collect();
    used.sort();
    used.dedup();
    assert_eq!(used, ["panes:a::call", "panes:b::Helper"]);
}
