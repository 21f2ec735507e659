//! The allocator's settings: the binary runs with the ones `.cargo/config.toml` gives jemalloc
//! (the measured ones, docs/benchmarks.md), as jemalloc itself reports them, and
//! docs/operations.md gives them, verbatim, for builds outside the checkout (cargo reads that
//! file only inside it; the code cannot set them without `unsafe`).

mod common;
use common::*;

/// The value of `JEMALLOC_SYS_WITH_MALLOC_CONF` in `.cargo/config.toml`, and its line.
fn measured() -> (String, String) {
    let text = std::fs::read_to_string(root().join(".cargo/config.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("JEMALLOC_SYS_WITH_MALLOC_CONF"))
        .expect("JEMALLOC_SYS_WITH_MALLOC_CONF in .cargo/config.toml")
        .to_string();
    let value = line.split_once('=').unwrap().1.trim().trim_matches('"');
    (value.to_string(), line)
}

#[test]
fn the_binary_runs_with_the_measured_allocator_settings() {
    let (value, _) = measured();
    // jemalloc prints its options at exit when asked to (the prefixed variable: the symbols
    // are prefixed `_rjem_`).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for setting in value.split(',') {
        let (key, want) = setting.split_once(':').unwrap();
        let got = stats
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("opt.{key}: ")))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no opt.{key} in jemalloc's statistics:\n{stats}"));
        assert_eq!(got, want, "opt.{key}");
    }
}

#[test]
fn the_install_path_is_documented_with_the_measured_settings() {
    let (_, line) = measured();
    let ops = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    assert!(
        ops.contains(&line),
        "docs/operations.md does not quote {line:?}"
    );
    for words in ["cargo install --path .", "_RJEM_MALLOC_CONF"] {
        assert!(ops.contains(words), "docs/operations.md: {words}");
    }
}
