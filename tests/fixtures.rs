//! Every file under `testdata/` is accounted for in `testdata/README.md`: its SHA-256 is in the
//! `sha256` block (in `sha256sum` format, paths relative to `testdata/`), or it matches a
//! pattern of the `checked-by` block, which names the test that checks those files (golden
//! output). A file with neither, a listed file that is missing, and a hash that does not match
//! all fail. The hashes are computed with `sha256sum` (coreutils).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The lines of the fenced block that opens with ```` ```TAG ````.
fn block<'a>(readme: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("```{tag}\n");
    let start = readme
        .find(&open)
        .unwrap_or_else(|| panic!("testdata/README.md has no ```{tag} block"))
        + open.len();
    let end = readme[start..].find("```").unwrap();
    readme[start..start + end]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Every file under `dir`, relative to `base`, with `/` separators.
fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(base, &p, out);
        } else {
            let rel = p.strip_prefix(base).unwrap();
            out.push(
                rel.components()
                    .map(|c| c.as_os_str().to_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
}

/// A `/`-separated glob: `*` matches within one path segment.
fn glob(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == s.len()
        && p.iter().zip(&s).all(|(p, s)| match p.split_once('*') {
            None => p == s,
            Some((pre, post)) => {
                s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
            }
        })
}

#[test]
fn every_fixture_has_its_hash_in_the_readme() {
    let readme = std::fs::read_to_string(testdata().join("README.md")).unwrap();
    let mut listed = BTreeMap::new();
    let mut problems = Vec::new();
    for line in block(&readme, "sha256") {
        let (hash, path) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("not `HASH  PATH`: {line:?}"));
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "not a SHA-256: {line:?}"
        );
        if listed.insert(path.to_string(), hash.to_string()).is_some() {
            problems.push(format!("{path}: listed twice"));
        }
    }
    let checked_by: Vec<(&str, &str)> = block(&readme, "checked-by")
        .into_iter()
        .map(|l| {
            let (pattern, test) = l
                .split_once("  ")
                .unwrap_or_else(|| panic!("not `PATTERN  TEST`: {l:?}"));
            let test = test.trim();
            assert!(
                testdata().join("..").join(test).is_file(),
                "{pattern}: the test {test} does not exist"
            );
            (pattern, test)
        })
        .collect();

    let mut files = Vec::new();
    walk(&testdata(), &testdata(), &mut files);
    files.sort();
    let mut to_hash = Vec::new();
    for f in &files {
        if f == "README.md" {
            continue; // cannot hold its own hash
        }
        let golden = checked_by.iter().any(|(p, _)| glob(p, f));
        match (listed.contains_key(f), golden) {
            (true, true) => problems.push(format!(
                "{f}: both hashed and covered by a checked-by pattern"
            )),
            (true, false) => to_hash.push(f.clone()),
            (false, true) => {}
            (false, false) => problems.push(format!(
                "{f}: no SHA-256 in testdata/README.md (add `$(sha256sum {f})` to the sha256 block)"
            )),
        }
    }
    for path in listed.keys() {
        if !files.contains(path) {
            problems.push(format!("{path}: listed in testdata/README.md but missing"));
        }
    }
    for (pattern, test) in &checked_by {
        if !files.iter().any(|f| glob(pattern, f)) {
            problems.push(format!("checked-by {pattern} ({test}) matches no file"));
        }
    }

    if !to_hash.is_empty() {
        let out = Command::new("sha256sum")
            .arg("--")
            .args(&to_hash)
            .current_dir(testdata())
            .output()
            .expect("sha256sum (coreutils) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let (actual, path) = line.split_once("  ").unwrap();
            let want = &listed[path];
            if actual != want {
                problems.push(format!(
                    "{path}: SHA-256 is {actual}, testdata/README.md says {want}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "testdata/README.md does not match testdata/:\n{}",
        problems.join("\n")
    );
}
