//! The man pages and the shell completions, generated from the command-line definitions (a
//! `clap::Command`, from [`crate::cli`]) so that they cannot drift from the options the binary
//! takes: `clap_mangen` writes the pages, `clap_complete` the completion scripts. The main
//! page adds what clap does not know: the environment variables, the files and where to read
//! further.
//!
//! This module knows nothing of the commands themselves; the caller hands it the definitions.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variables the program reads, and what for.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SIGNPOST_CONTROL",
        "the control socket of serve and ctl when neither the command line nor the configuration names one",
    ),
    (
        "XDG_RUNTIME_DIR",
        "for a user other than root, the default control socket is signpost/control.sock under it (else /tmp/signpost-UID/control.sock)",
    ),
    (
        "NOTIFY_SOCKET",
        "set by systemd for Type=notify: READY=1, RELOADING=1 and STOPPING=1 are sent there",
    ),
    (
        "RUST_LOG",
        "the log filter when --log is not given (default info)",
    ),
    (
        "NO_COLOR",
        "when set and not empty, log lines have no colour codes (without it, colour only on a terminal)",
    ),
];

/// The files of an installation as `docs/systemd/signpost.service` lays it out.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/signpost/signpost.yaml",
        "the configuration (serve --config)",
    ),
    (
        "/run/signpost/control.sock",
        "the control socket (the default of root)",
    ),
    (
        "/var/lib/signpost/state.json",
        "admin overrides kept across restarts (serve --state-file)",
    ),
];

/// Why a page could not be written.
#[derive(Debug)]
pub struct ManualError {
    /// Where it was to go.
    pub to: PathBuf,
    /// What went wrong.
    pub error: std::io::Error,
}

impl std::fmt::Display for ManualError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {}: {}", self.to.display(), self.error)
    }
}

impl std::error::Error for ManualError {}

/// The text `--help` ends with: the environment variables, and where operations are
/// documented.
pub fn environment_help() -> String {
    let mut out = String::from("Environment:\n");
    for (name, what) in ENVIRONMENT {
        out.push_str(&format!("  {name:<17} {what}\n"));
    }
    out.push_str(
        "\nRunning it as a service (systemd, port 53, files, sockets): docs/operations.md",
    );
    out
}

/// The man page of the top command (its options and a list of its subcommands, then the
/// environment, the files and related pages).
pub fn page(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    // The environment gets a section of its own here instead of clap's "EXTRA".
    let cmd = cmd
        .disable_help_subcommand(true)
        .after_long_help(None::<&str>);
    clap_mangen::Man::new(cmd).render(w)?;
    w.write_all(extra_sections().as_bytes())
}

/// Writes `NAME.1` for the top command (as [`page`]) and one page for every subcommand,
/// nested ones included (`signpost-ctl-set.1`) into `dir`; returns the paths written.
pub fn pages_to(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, ManualError> {
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building gives every subcommand its full name (`signpost-ctl-set`).
    cmd.build();
    let mut written = Vec::new();
    let top = dir.join(format!("{}.1", cmd.get_name()));
    write_file(&top, |w| page(cmd.clone(), w))?;
    written.push(top);
    let mut pending: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
    while let Some(sub) = pending.pop() {
        if sub.is_hide_set() {
            continue;
        }
        pending.extend(sub.get_subcommands().cloned());
        let man = clap_mangen::Man::new(sub);
        let path = dir.join(man.get_filename());
        write_file(&path, |w| man.render(w))?;
        written.push(path);
    }
    Ok(written)
}

/// The completion script of `shell` for the command `cmd` names.
pub fn completions(shell: clap_complete::Shell, mut cmd: clap::Command) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

fn write_file(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), ManualError> {
    let failed = |error| ManualError {
        to: path.to_path_buf(),
        error,
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(failed)?);
    render(&mut file).map_err(failed)?;
    file.flush().map_err(failed)
}

/// ENVIRONMENT, FILES and SEE ALSO, in roff.
fn extra_sections() -> String {
    let mut roff = roff::Roff::new();
    let mut list = |title: &str, items: &[(&str, &str)]| {
        roff.control("SH", [title]);
        for (name, what) in items {
            roff.control("TP", []);
            roff.text([roff::bold(*name)]);
            roff.text([roff::roman(*what)]);
        }
    };
    list("ENVIRONMENT", ENVIRONMENT);
    list("FILES", FILES);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        roff::bold("systemd.service"),
        roff::roman("(5), "),
        roff::bold("sd_notify"),
        roff::roman(
            "(3); in the source: docs/operations.md (the systemd unit, port 53, files and \
             sockets), docs/configuration.md, docs/control-socket.md",
        ),
    ]);
    roff.to_roff()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> clap::Command {
        clap::Command::new("tool")
            .version("1.2")
            .about("a tool")
            .arg(clap::Arg::new("verbose").long("verbose").num_args(0))
            .subcommand(
                clap::Command::new("run")
                    .about("run it")
                    .subcommand(clap::Command::new("fast").about("quickly")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn the_page_has_the_extra_sections_after_clap_s() {
        let mut out = Vec::new();
        page(cmd(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
        assert!(at(".TH tool 1") < at(".SH SUBCOMMANDS"));
        assert!(at(".SH SUBCOMMANDS") < at(".SH ENVIRONMENT"));
        assert!(at(".SH ENVIRONMENT") < at(".SH FILES"));
        assert!(text.contains("\\fBNOTIFY_SOCKET\\fR"), "{text}");
        // Hyphens are escaped (roff would otherwise break lines at them or draw dashes).
        assert!(text.contains("\\-\\-log"), "{text}");
        assert!(!text.contains("tool\\-help"), "{text}");
    }

    #[test]
    fn one_page_per_visible_command() {
        let dir = std::env::temp_dir().join(format!("signpost-manual-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut names: Vec<String> = pages_to(cmd(), &dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["tool-run-fast.1", "tool-run.1", "tool.1"]);
        let e = pages_to(cmd(), &dir.join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn help_lists_every_variable() {
        let help = environment_help();
        for (name, _) in ENVIRONMENT {
            assert!(help.contains(name), "{name}");
        }
    }
}
