//! What the binary says about itself: `--version` with the build's git commit, the man pages
//! (`signpost man`, rendered by the real groff), and shell completions (`signpost completions`,
//! loaded and run by the real bash).

mod common;
use common::*;

use std::process::{Command, Stdio};

fn signpost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every subcommand, with its parent (`ctl set` → `ctl-set`).
const COMMANDS: &[&str] = &[
    "serve",
    "check",
    "lookup",
    "explain",
    "diff",
    "ctl",
    "dnssec",
    "man",
    "completions",
];
const CTL: &[&str] = &[
    "status", "nodes", "set", "clear", "push", "reload", "stats", "reopen", "replace", "bgp",
    "anycast",
];

const DNSSEC: &[&str] = &["keygen", "ds"];

/// The short commit of the checkout, when this is one and git runs.
fn git_commit() -> Option<String> {
    if !root().join(".git").exists() {
        return None;
    }
    let out = Command::new("git")
        .current_dir(root())
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_crate_version_and_the_commit() {
    let text = stdout(&signpost(&["--version"]));
    let want = match git_commit() {
        Some(c) => format!("signpost {} ({c})", env!("CARGO_PKG_VERSION")),
        None => format!("signpost {}", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(text.trim(), want);
}

#[test]
fn the_man_page_names_every_subcommand_and_renders() {
    let roff = stdout(&signpost(&["man"]));
    let th = roff
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH in {roff}"));
    assert!(th.starts_with(".TH signpost 1"), "{th}");
    assert!(th.contains(env!("CARGO_PKG_VERSION")), "{th}");
    for sub in COMMANDS {
        assert!(
            roff.contains(&format!("signpost\\-{}", sub.replace('-', "\\-"))),
            "{sub} missing"
        );
    }
    assert!(roff.contains("NOTIFY_SOCKET"), "the environment section");

    // The real formatter renders it, with every warning on, and says nothing.
    let mut groff = Command::new("groff")
        // Plain text: no bold or underline by overstriking.
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff is installed");
    use std::io::Write;
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = groff.wait_with_output().unwrap();
    let text = stdout(&out);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.is_empty(), "groff: {warnings}");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SUBCOMMANDS",
        "ENVIRONMENT",
        "FILES",
        "SEE ALSO",
    ] {
        assert!(
            text.lines().any(|l| l == section),
            "{section} missing:\n{text}"
        );
    }
    for sub in COMMANDS {
        assert!(
            text.contains(&format!("signpost-{sub}(1)")),
            "{sub} missing:\n{text}"
        );
    }
}

#[test]
fn man_dir_writes_one_page_per_subcommand() {
    let dir = TempDir::new("man");
    let out = signpost(&["man", "--dir", dir.0.to_str().unwrap()]);
    stdout(&out);
    let mut pages = vec!["signpost".to_string()];
    pages.extend(COMMANDS.iter().map(|c| format!("signpost-{c}")));
    pages.extend(CTL.iter().map(|c| format!("signpost-ctl-{c}")));
    pages.extend(DNSSEC.iter().map(|c| format!("signpost-dnssec-{c}")));
    for p in &pages {
        let path = dir.path(&format!("{p}.1"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.lines().any(|l| l.starts_with(&format!(".TH {p} 1"))),
            "{p}: {text}"
        );
        // `man -l` reads the file as an installed page would be.
        let out = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .expect("man is installed");
        let shown = stdout(&out);
        assert!(shown.contains("SYNOPSIS"), "{p}: {shown}");
    }
    let count = std::fs::read_dir(&dir.0).unwrap().count();
    assert_eq!(count, pages.len(), "one page per command, no more");
    // A directory that does not exist: exit 1 naming it.
    let out = signpost(&["man", "--dir", "/nonexistent/man1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/man1"));
}

#[test]
fn bash_completion_loads_and_completes() {
    let dir = TempDir::new("completions");
    let script = dir.write(
        "signpost.bash",
        &stdout(&signpost(&["completions", "bash"])),
    );
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Loaded into a shell, it completes subcommands and their options.
    let complete = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
             _signpost signpost '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len().saturating_sub(2)],
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .unwrap();
        stdout(&out)
    };
    let subs = complete("signpost ");
    for sub in COMMANDS {
        assert!(subs.lines().any(|l| l == *sub), "{sub} not offered: {subs}");
    }
    let serve = complete("signpost serve --");
    for opt in ["--config", "--listen", "--control", "--state-file"] {
        assert!(serve.lines().any(|l| l == opt), "{opt}: {serve}");
    }
    let shells = complete("signpost completions ");
    assert!(shells.lines().any(|l| l == "zsh"), "{shells}");
}

#[test]
fn other_shells_get_scripts() {
    for (shell, mark) in [
        ("zsh", "#compdef signpost"),
        ("fish", "complete -c signpost"),
        ("elvish", "signpost"),
        ("powershell", "signpost"),
    ] {
        let text = stdout(&signpost(&["completions", shell]));
        assert!(text.contains(mark), "{shell}: {text}");
        assert!(text.contains("serve"), "{shell}");
    }
    let out = signpost(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
