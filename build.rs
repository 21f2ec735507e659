//! Build script: the version `signpost --version` prints, `SIGNPOST_VERSION`: the crate's
//! version, followed by the git commit it was built from (`0.1.0 (4e9e0ff)`) when the source
//! is a git checkout and `git` runs; the crate's version alone otherwise (a source tarball, no
//! git installed).
//!
//! It also warns when the allocator is built without the settings of `.cargo/config.toml`
//! (`JEMALLOC_SYS_WITH_MALLOC_CONF`, the ones measured in docs/benchmarks.md): cargo reads that
//! file only when it runs inside the checkout, so `cargo install --path DIR` from elsewhere, or
//! `cargo install --git`, builds jemalloc with its defaults (docs/operations.md, "Installing").
//! The settings cannot be set from the code instead: jemalloc reads them from an exported
//! symbol, which needs `unsafe`, and this crate forbids it.
//!
//! Cargo runs this again when the commit can have changed: when `HEAD` moves (another branch
//! checked out, a detached commit) and when the branch it points to moves (a new commit). In a
//! worktree, `.git` is a file and `HEAD` lives in the worktree's own git directory while the
//! branches live in the shared one; `git rev-parse` names both.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let full = match commit() {
        Some(c) => format!("{version} ({c})"),
        None => version,
    };
    println!("cargo:rustc-env=SIGNPOST_VERSION={full}");
    allocator_settings();
}

/// Warns when jemalloc is built without the settings `.cargo/config.toml` gives it. The
/// variable is read as tikv-jemalloc-sys reads it: the target's own name first.
fn allocator_settings() {
    const VAR: &str = "JEMALLOC_SYS_WITH_MALLOC_CONF";
    let target = std::env::var("TARGET")
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let prefixed = format!("{target}_{VAR}");
    println!("cargo:rerun-if-env-changed={prefixed}");
    println!("cargo:rerun-if-env-changed={VAR}");
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let config = PathBuf::from(dir).join(".cargo/config.toml");
    watch(&config);
    // The line `JEMALLOC_SYS_WITH_MALLOC_CONF = "..."`.
    let Some(wanted) = std::fs::read_to_string(&config).ok().and_then(|text| {
        text.lines().find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == VAR).then(|| value.trim().trim_matches('"').to_string())
        })
    }) else {
        return;
    };
    let built = std::env::var(&prefixed)
        .or_else(|_| std::env::var(VAR))
        .unwrap_or_default();
    if built != wanted {
        println!(
            "cargo:warning=jemalloc is built with {VAR}={built:?}, not the measured {wanted:?} \
             of .cargo/config.toml (cargo reads it only inside the checkout): run `cargo install \
             --path .` from the checkout, or set {VAR}={wanted:?} (docs/operations.md)"
        );
    }
}

/// Runs `git` in the crate's directory; its trimmed output when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .current_dir(&dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The short commit of `HEAD`, and the files whose change means a new one.
fn commit() -> Option<String> {
    // Only the crate's own checkout counts, not a repository some directory above it.
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if !dir.join(".git").exists() {
        return None;
    }
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let absolute = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { dir.join(p) }
    };
    let git_dir = git(&["rev-parse", "--git-dir"]).map(absolute);
    let common = git(&["rev-parse", "--git-common-dir"]).map(absolute);
    if let Some(g) = &git_dir {
        watch(&g.join("HEAD"));
    }
    // The branch HEAD points to: its loose ref, else the packed refs that hold it.
    if let (Some(c), Some(branch)) = (&common, git(&["symbolic-ref", "-q", "HEAD"])) {
        let loose = c.join(&branch);
        if loose.exists() {
            watch(&loose);
        } else {
            watch(&c.join("packed-refs"));
        }
    }
    Some(commit)
}

/// Asks cargo to run this script again when `path` changes. Only existing files are named: for
/// a missing one cargo would run the script at every build.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
