//! The tree itself: no text file carries a leftover merge conflict marker.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == ".git" || name == "corpus" {
            continue;
        }
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| {
            ["rs", "md", "toml", "sh", "yaml", "yml", "service"].contains(&x.to_str().unwrap_or(""))
        }) {
            out.push(p);
        }
    }
}

#[test]
fn no_conflict_markers() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for d in [
        "src", "tests", "docs", "benches", "fuzz", "maps", "testdata", ".ci",
    ] {
        files(&root.join(d), &mut all);
    }
    all.push(root.join("README.md"));
    all.push(root.join("Cargo.toml"));
    let mut found = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("<<<<<<< ") || line == "=======" || line.starts_with(">>>>>>> ") {
                found.push(format!("{}:{}: {line}", f.display(), i + 1));
            }
        }
    }
    assert!(all.len() > 50, "only {} files found", all.len());
    assert!(found.is_empty(), "conflict markers:\n{}", found.join("\n"));
}
