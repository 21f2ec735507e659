//! The command line: `serve`, `check`, `lookup`, `explain`, `diff`, `ctl` and `dnssec`; `man` and
//! `completions` write the manual pages and shell completions generated from these same
//! definitions.
//!
//! Each subcommand parses its arguments here and calls into the library. Every failure is a
//! [`CliError`], and [`CliError::exit_code`] is the one place that maps failures to exit codes:
//! 0 success, 1 the inputs or the request are bad (messages on stderr), 2 usage, 3 the server
//! could not be reached.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

#[macro_use]
mod out;
mod ctl;
mod dnssec;
mod offline;

use ctl::ask;
pub use ctl::{AnycastArg, CtlRequest};
pub use dnssec::{AlgorithmArg, DnssecCommand};
use offline::{diff, explain, lookup};

use crate::control::client::ClientError;
use crate::control::protocol::{Request, Response};
use crate::control::text::escape;
use crate::daemon::{self, DaemonError, ServeOptions};
use crate::node_state::StateFileError;
use crate::source::Errors;

/// The version `--version` prints: the crate's, and the git commit of the build when it was
/// built from a checkout (`0.1.0 (4e9e0ff)`; see `build.rs`).
pub const VERSION: &str = env!("SIGNPOST_VERSION");

/// Signpost: an authoritative DNS server that sends each client of a download hostname to
/// the best healthy node, by GeoIP, BGP origin and operator maps.
#[derive(Debug, Parser)]
#[command(
    name = "signpost",
    version = VERSION,
    propagate_version = true,
    about,
    long_about = None,
    after_long_help = crate::manual::environment_help()
)]
pub struct Cli {
    /// Log level filter (e.g. `info`, `debug`, `signpost=trace`); `RUST_LOG` also works.
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the embedded demo when --config is not given).
    Serve {
        /// Configuration file (signpost.yaml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen on this address (UDP and TCP) instead of the configured ones; repeatable.
        #[arg(long)]
        listen: Vec<SocketAddr>,
        /// Control socket path (overrides the configuration).
        #[arg(long)]
        control: Option<PathBuf>,
        /// Admin override state file (overrides the configuration).
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// Serve Prometheus metrics on this address (overrides `metrics.listen`).
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Take over the listening sockets, node states and counters of the server running
        /// with this control socket, which stops once this one serves (docs/replace.md).
        #[arg(long, value_name = "CONTROL_SOCKET")]
        takeover: Option<PathBuf>,
    },
    /// Validate the configuration, maps and data; print every problem and exit non-zero.
    Check {
        /// Configuration file (the embedded demo when absent).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print what the GeoIP and BGP data say about addresses (or about addresses on stdin).
    Lookup {
        /// Configuration file whose data to use (the embedded demo when absent).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Ask the running server instead (its files and its live BGP feeds).
        #[arg(long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Addresses; read from stdin, one per line, when none are given.
        addresses: Vec<String>,
    },
    /// Explain, offline, which node a client would get for a name.
    Explain {
        /// Configuration file (the embedded demo when absent).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Ask the running server instead (its snapshot, node states and live BGP feeds).
        #[arg(long, conflicts_with_all = ["config", "health"])]
        socket: Option<PathBuf>,
        /// Admin override state file to apply (as written by the server).
        #[arg(long)]
        health: Option<PathBuf>,
        /// Answer AAAA instead of A.
        #[arg(long)]
        ipv6: bool,
        /// The client address.
        address: IpAddr,
        /// The service name.
        name: String,
    },
    /// Show how much address space changes region or node between two map directories.
    Diff {
        /// Configuration file (its `maps` are replaced by OLD and NEW).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The old maps (file or directory).
        old: PathBuf,
        /// The new maps (file or directory).
        new: PathBuf,
    },
    /// Talk to a running server over its control socket.
    Ctl {
        /// The control socket (default: the path `serve` uses without `--control`, see
        /// docs/control-socket.md). Given several times, the request goes to each server in
        /// turn (replicas), each reply under its socket's name.
        #[arg(long, short)]
        socket: Vec<PathBuf>,
        /// Print the raw JSON response.
        #[arg(long)]
        json: bool,
        /// Give up when the whole exchange takes longer than this many seconds (default 10;
        /// 600 for `reload`, which waits for a whole build).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: Option<u64>,
        /// The request.
        #[command(subcommand)]
        request: CtlRequest,
    },
    /// DNSSEC keys: make a key pair in BIND's file format, print DS records for the parent.
    Dnssec {
        /// What to do.
        #[command(subcommand)]
        command: DnssecCommand,
    },
    /// Write the manual page (roff) to stdout, or one page per subcommand into a directory.
    Man {
        /// Write signpost.1, signpost-serve.1, ... into this directory instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Write the completion script for a shell to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The configuration, maps or data are invalid.
    Invalid(Errors),
    /// The server could not run.
    Daemon(DaemonError),
    /// The state file given with `--health` cannot be used.
    StateFile(StateFileError),
    /// An argument is not what the command takes.
    Usage(String),
    /// Some of the input is bad (the rest was processed).
    Bad(String),
    /// The control socket cannot be reached.
    Unreachable(ClientError),
    /// The server refused the request.
    Refused(Box<Response>),
    /// The server refused the request, and the JSON printed already says why.
    RefusedRaw,
    /// Output (a man page, completions) could not be written there.
    Write(String, std::io::Error),
    /// A man page could not be written into the directory.
    Manual(crate::manual::ManualError),
    /// A DNSSEC key could not be made, written or read.
    Key(crate::dnssec::KeyError),
}

impl CliError {
    /// The process exit code for this failure: the one place that decides it.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// The exit code's number (see [`CliError::exit_code`]).
    fn code(&self) -> u8 {
        match self {
            CliError::Invalid(_)
            | CliError::Daemon(_)
            | CliError::StateFile(_)
            | CliError::Bad(_)
            | CliError::Refused(_)
            | CliError::RefusedRaw
            | CliError::Write(..)
            | CliError::Manual(_)
            | CliError::Key(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Invalid(e) => write!(f, "{e}\n{} problem(s) found", e.0.len()),
            CliError::Daemon(e) => write!(f, "{e}"),
            CliError::StateFile(e) => write!(f, "{e}"),
            CliError::Usage(e) | CliError::Bad(e) => write!(f, "{e}"),
            CliError::Unreachable(e) => write!(f, "{e}"),
            CliError::RefusedRaw => Ok(()),
            CliError::Write(to, e) => write!(f, "cannot write {to}: {e}"),
            CliError::Manual(e) => write!(f, "{e}"),
            CliError::Key(e) => write!(f, "{e}"),
            CliError::Refused(r) => {
                write!(
                    f,
                    "error: {}",
                    escape(r.error.as_deref().unwrap_or("unknown"))
                )?;
                for e in &r.errors {
                    write!(f, "\n  {}", escape(e))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CliError {}

impl From<Errors> for CliError {
    fn from(e: Errors) -> CliError {
        CliError::Invalid(e)
    }
}

/// Whether log lines on stderr get ANSI colours: only when stderr is a terminal (not a file, a
/// pipe or the journal), and never when `NO_COLOR` is set to a non-empty value
/// (no-color.org).
pub fn log_colour() -> bool {
    use std::io::IsTerminal;
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            control,
            state_file,
            metrics,
            takeover,
        } => daemon::serve(ServeOptions {
            config,
            listen,
            control,
            state_file,
            metrics,
            takeover,
        })
        .map_err(CliError::Daemon),
        Command::Check { config } => {
            let c = crate::load::config(config.as_deref())?;
            // What `serve` would refuse at start (the query log's file), with the other
            // problems.
            let problems = daemon::start_problems(&c);
            let (c, snap) = match crate::load::build_config(c, None, &[], false) {
                Ok(built) if problems.is_empty() => built,
                Ok(_) => return Err(problems.into()),
                Err(mut e) => {
                    e.extend(problems);
                    return Err(e.into());
                }
            };
            outln!(
                "ok: {} zone(s), {} service(s), {} node(s); {}",
                c.zones.len(),
                snap.services.len(),
                snap.nodes.len(),
                snap.versions
            );
            Ok(())
        }
        Command::Lookup {
            socket: Some(socket),
            addresses,
            ..
        } => ask(
            &socket,
            Request::Lookup {
                addresses: addresses_or_stdin(addresses),
            },
        ),
        Command::Lookup {
            config, addresses, ..
        } => lookup(config, addresses),
        Command::Explain {
            socket: Some(socket),
            ipv6,
            address,
            name,
            ..
        } => ask(
            &socket,
            Request::Explain {
                address: address.to_string(),
                name,
                ipv6,
            },
        ),
        Command::Explain {
            config,
            health,
            ipv6,
            address,
            name,
            ..
        } => explain(config, health, ipv6, address, &name),
        Command::Diff { config, old, new } => diff(config, old, new),
        Command::Ctl {
            socket,
            json,
            timeout,
            request,
        } => {
            let timeout = Duration::from_secs(timeout.unwrap_or(match request {
                CtlRequest::Reload { .. } => RELOAD_TIMEOUT_S,
                // A replace waits for the new process to load and check everything.
                CtlRequest::Replace => REPLACE_TIMEOUT_S,
                _ => TIMEOUT_S,
            }));
            ctl::ctl_each(&socket, json, timeout, &request)
        }
        Command::Dnssec { command } => dnssec::run(command),
        Command::Man { dir } => man(dir),
        Command::Completions { shell } => {
            to_stdout(&crate::manual::completions(shell, Cli::command()))
        }
    }
}

/// Writes the man page of the whole command to stdout, or with `dir` one page per command
/// and subcommand (`signpost.1`, `signpost-ctl-set.1`, ...).
fn man(dir: Option<PathBuf>) -> Result<(), CliError> {
    match dir {
        Some(dir) => crate::manual::pages_to(Cli::command(), &dir)
            .map(|_| ())
            .map_err(CliError::Manual),
        None => {
            let mut out = Vec::new();
            crate::manual::page(Cli::command(), &mut out)
                .map_err(|e| CliError::Write("the man page".into(), e))?;
            to_stdout(&out)
        }
    }
}

/// Writes `bytes` to stdout; a reader that went away early (`| head`) is not an error.
fn to_stdout(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Write("stdout".into(), e))
        }
        _ => Ok(()),
    }
}

/// How long `ctl` (and `lookup`/`explain --socket`) waits for a response by default, in
/// seconds.
const TIMEOUT_S: u64 = 10;

/// How long `ctl reload` waits by default: a build of large tables on a busy machine.
const RELOAD_TIMEOUT_S: u64 = 600;
/// The default `--timeout` of `ctl replace`: the new process loads everything first.
const REPLACE_TIMEOUT_S: u64 = 180;

/// The addresses given, or those on stdin (one per line) when none are.
fn addresses_or_stdin(addresses: Vec<String>) -> Vec<String> {
    if addresses.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        addresses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new(""))));
    }

    #[test]
    fn the_clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
