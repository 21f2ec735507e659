//! Build script: the version `signpost --version` prints, `SIGNPOST_VERSION`: the crate's
//! version, followed by the git commit it was built from (`0.1.0 (4e9e0ff)`) when the source
//! is a git checkout and `git` runs; the crate's version alone otherwise (a source tarball, no
//! git installed).
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
