//! The crate's top-level modules form a layered graph: no two of them import each other,
//! directly or through others (test code aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The non-test source of one top-level module: `src/NAME.rs` or every file under `src/NAME/`,
/// each cut at its first `#[cfg(test)]`, skipping `tests.rs` and `testing.rs` files.
fn module_source(src: &Path, name: &str) -> String {
    let mut files = vec![src.join(format!("{name}.rs"))];
    let mut stack = vec![src.join(name)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let is_test = |p: &PathBuf| p.file_stem().is_some_and(|s| s == "tests" || s == "testing");
    files
        .iter()
        .filter(|p| !is_test(p))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.split("#[cfg(test)]").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn top_level_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    assert!(modules.len() > 10, "lib.rs lists {modules:?}");
    let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for &m in &modules {
        let text = module_source(&src, m);
        let used = modules
            .iter()
            .copied()
            .filter(|&other| {
                other != m
                    && ["::", ";"]
                        .iter()
                        .any(|end| text.contains(&format!("crate::{other}{end}")))
            })
            .collect();
        deps.insert(m, used);
    }
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit<'a>(
        m: &'a str,
        deps: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|&p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m);
        for &d in &deps[m] {
            visit(d, deps, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for &m in &modules {
        visit(m, &deps, &mut Vec::new(), &mut done);
    }
}
