//! Golden files for the error output of invalid inputs (`testdata/invalid/`).
//!
//! Every `config/NAME.yaml` and every `maps/NAME/signpost.yaml` is checked with the real
//! binary, run from the repository root with a relative `--config` path, and its stderr must
//! equal `NAME.expected` beside the input exactly. Adding a case needs no code: add the input
//! and run `SIGNPOST_BLESS=1 cargo test --test golden` to write its expected file, then read
//! every line of it before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One invalid input: the configuration to check (relative to the repository root) and the
/// file holding what `signpost check` must print on stderr.
struct Case {
    config: String,
    expected: PathBuf,
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

/// Every case under `testdata/invalid/`, and every `.expected` file without an input.
fn cases() -> (Vec<Case>, Vec<String>) {
    let base = root().join("testdata/invalid");
    let mut cases = Vec::new();
    let mut inputs = Vec::new();
    for p in sorted_entries(&base.join("config")) {
        let name = name_of(&p);
        if let Some(stem) = name.strip_suffix(".yaml") {
            cases.push(Case {
                config: format!("testdata/invalid/config/{name}"),
                expected: p.with_file_name(format!("{stem}.expected")),
            });
            inputs.push(format!("config/{stem}"));
        }
    }
    for p in sorted_entries(&base.join("maps")) {
        if p.is_dir() {
            let name = name_of(&p);
            assert!(
                p.join("signpost.yaml").is_file(),
                "testdata/invalid/maps/{name}/ has no signpost.yaml"
            );
            cases.push(Case {
                config: format!("testdata/invalid/maps/{name}/signpost.yaml"),
                expected: base.join("maps").join(format!("{name}.expected")),
            });
            inputs.push(format!("maps/{name}"));
        }
    }
    let mut orphans = Vec::new();
    for sub in ["config", "maps"] {
        for p in sorted_entries(&base.join(sub)) {
            let name = name_of(&p);
            if let Some(stem) = name.strip_suffix(".expected")
                && !inputs.contains(&format!("{sub}/{stem}"))
            {
                orphans.push(format!("testdata/invalid/{sub}/{name}"));
            }
        }
    }
    (cases, orphans)
}

/// Runs `signpost check --config CONFIG` from the repository root: (exit code, stderr with
/// the checkout's absolute path removed, stdout).
fn check(config: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", config])
        .current_dir(root())
        .output()
        .unwrap();
    let prefix = format!("{}/", root().display());
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&prefix, "");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stderr, stdout)
}

/// A line diff (longest common subsequence): `-` expected only, `+` actual only.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out += "(the final newline differs)\n";
    }
    out
}

#[test]
fn invalid_inputs_print_their_golden_errors() {
    let bless = std::env::var_os("SIGNPOST_BLESS").is_some_and(|v| v == "1");
    let (cases, orphans) = cases();
    assert!(
        orphans.is_empty(),
        "expected files without an input: {orphans:?}"
    );
    assert!(cases.len() >= 2, "no cases found under testdata/invalid/");
    // Each check takes tens of milliseconds; run a few at once.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let results: Vec<(Option<i32>, String, String)> = std::thread::scope(|s| {
        let chunks: Vec<_> = cases
            .chunks(cases.len().div_ceil(threads))
            .map(|chunk| {
                s.spawn(move || chunk.iter().map(|c| check(&c.config)).collect::<Vec<_>>())
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (case, (code, stderr, stdout)) in cases.iter().zip(results) {
        let shown = case.expected.strip_prefix(root()).unwrap().display();
        if code != Some(1) {
            failures.push(format!(
                "{}: exit code {code:?}, expected 1\nstdout:\n{stdout}stderr:\n{stderr}",
                case.config
            ));
            continue;
        }
        if bless {
            std::fs::write(&case.expected, &stderr).unwrap();
            continue;
        }
        match std::fs::read_to_string(&case.expected) {
            Ok(expected) if expected == stderr => {}
            Ok(expected) => failures.push(format!(
                "{}: stderr differs from {shown} (- expected, + actual):\n{}",
                case.config,
                diff(&expected, &stderr)
            )),
            Err(_) => failures.push(format!(
                "{}: no {shown}; stderr was:\n{stderr}(write it with SIGNPOST_BLESS=1 after reading every line)",
                case.config
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
