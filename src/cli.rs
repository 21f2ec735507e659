//! The command line: `serve`, `check`, `lookup`, `explain`, `diff` and `ctl`; `man` and
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

use crate::control::client::{self, ClientError};
use crate::control::protocol::{PushItem, Reply, Request, Response};
use crate::control::text::{escape, escape_json};
use crate::daemon::{self, DaemonError, ServeOptions};
use crate::node_state::{NodeStates, StateFileError};
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
        /// docs/control-socket.md).
        #[arg(long, short)]
        socket: Option<PathBuf>,
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

/// Control requests.
#[derive(Debug, Subcommand)]
pub enum CtlRequest {
    /// Version, uptime, data versions and the last reload's result.
    Status,
    /// Every node's effective state and why.
    Nodes,
    /// Force a node up, down or into drain.
    Set {
        /// Node name.
        node: String,
        /// up, down or drain.
        state: String,
        /// Why (shown in `nodes` and `_why`).
        #[arg(long, default_value = "")]
        reason: String,
        /// Lapse after this many seconds (at most ten years; leave it out for no expiry).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::control::server::MAX_EXPIRES_IN))]
        expires: Option<u64>,
    },
    /// Remove a node's admin override.
    Clear {
        /// Node name.
        node: String,
    },
    /// Push states from a monitor: `NODE=STATE[:TTL]` (TTL in seconds, default 60); with
    /// `--load`, loads: `NODE=LOAD[:TTL]` in the maps' capacity unit.
    Push {
        /// Who is pushing.
        #[arg(long, default_value = "monitor")]
        source: String,
        /// The values are loads (for `spread: capacity`), not states.
        #[arg(long)]
        load: bool,
        /// States.
        states: Vec<String>,
    },
    /// Reload configuration, maps and data now.
    Reload {
        /// Accept a reload that the reload guard holds (served names gone, data shrunk).
        #[arg(long)]
        confirm: bool,
    },
    /// Restart without losing a query: a new process (this binary path, the server's
    /// arguments) takes over the sockets, node states and counters; the old one then exits.
    Replace,
    /// Query counters.
    Stats,
    /// Reopen the query log (after logrotate moved it; SIGUSR1 does the same).
    Reopen,
    /// BGP sessions: state, uptime, prefixes per family, last update, last error.
    Bgp,
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
}

impl CliError {
    /// The process exit code for this failure: the one place that decides it.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Invalid(_)
            | CliError::Daemon(_)
            | CliError::StateFile(_)
            | CliError::Bad(_)
            | CliError::Refused(_)
            | CliError::RefusedRaw
            | CliError::Write(..)
            | CliError::Manual(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
        })
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
            println!(
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
            ctl(
                &socket.unwrap_or_else(crate::control::default_socket),
                json,
                timeout,
                request,
            )
        }
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

/// Sends `req` to the server and prints the lines it answers.
fn ask(socket: &std::path::Path, req: Request) -> Result<(), CliError> {
    let (resp, _) = client::request(socket, &req, Duration::from_secs(TIMEOUT_S))
        .map_err(CliError::Unreachable)?;
    if !resp.ok {
        return Err(CliError::Refused(Box::new(resp)));
    }
    if let Reply::Lines { lines } = resp.reply {
        for l in lines {
            println!("{}", escape(&l));
        }
    }
    Ok(())
}

fn lookup(config: Option<PathBuf>, addresses: Vec<String>) -> Result<(), CliError> {
    let cfg = crate::load::config(config.as_deref())?;
    let data = crate::load::client_data(&cfg, None, true)?;
    let list = addresses_or_stdin(addresses);
    let mut bad = Vec::new();
    for a in list {
        match a.parse::<IpAddr>() {
            Ok(ip) => {
                println!("{ip}");
                for line in data.lookup(ip).lines() {
                    println!("  {line}");
                }
            }
            Err(_) => bad.push(format!("{a:?} is not an IP address")),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CliError::Bad(bad.join("\n")))
    }
}

fn explain(
    config: Option<PathBuf>,
    health: Option<PathBuf>,
    ipv6: bool,
    address: IpAddr,
    name: &str,
) -> Result<(), CliError> {
    let (_, snap) =
        crate::load::build_config(crate::load::config(config.as_deref())?, None, &[], true)?;
    if let Some(h) = health {
        NodeStates::load(Some(h))
            .map_err(CliError::StateFile)?
            .apply(&snap);
    }
    let Some(s) = crate::explain::service_named(&snap, name) else {
        return Err(CliError::Bad(format!(
            "{name} is not a service name of this configuration"
        )));
    };
    for line in crate::explain::explain(&snap, s, address, "given on the command line", ipv6) {
        println!("{line}");
    }
    Ok(())
}

fn diff(config: Option<PathBuf>, old: PathBuf, new: PathBuf) -> Result<(), CliError> {
    let load = |maps: PathBuf| -> Result<crate::snapshot::Snapshot, Errors> {
        let mut c = crate::load::config(config.as_deref())?;
        c.maps = vec![crate::config::DataSource::File(maps)];
        crate::load::build_config(c, None, &[], false).map(|(_, snap)| snap)
    };
    let (o, n) = (load(old)?, load(new)?);
    for line in crate::explain::diff(&o, &n) {
        println!("{line}");
    }
    Ok(())
}

/// The request `signpost ctl` sends for `request`.
fn ctl_request(request: &CtlRequest) -> Result<Request, CliError> {
    Ok(match request {
        CtlRequest::Status => Request::Status {},
        CtlRequest::Nodes => Request::Nodes {},
        CtlRequest::Set {
            node,
            state,
            reason,
            expires,
        } => Request::Set {
            node: node.clone(),
            state: state.clone(),
            reason: Some(reason.clone()),
            expires_in: *expires,
        },
        CtlRequest::Clear { node } => Request::Clear { node: node.clone() },
        CtlRequest::Push {
            source,
            load,
            states,
        } => {
            let mut items = Vec::new();
            for s in states {
                let Some((node, rest)) = s.split_once('=') else {
                    return Err(CliError::Usage(format!(
                        "{s:?}: expected NODE=STATE[:TTL] (or NODE=LOAD[:TTL] with --load)"
                    )));
                };
                let (value, ttl) = match rest.split_once(':') {
                    Some((v, t)) => match t.parse::<u64>() {
                        Ok(t) => (v, t),
                        Err(_) => return Err(CliError::Usage(format!("{s:?}: bad TTL"))),
                    },
                    None => (rest, 60),
                };
                let (state, load) = if *load {
                    match value.parse::<f64>() {
                        Ok(l) if l.is_finite() => (None, Some(l)),
                        _ => {
                            return Err(CliError::Usage(format!(
                                "{s:?}: bad load {value:?} (a finite number)"
                            )));
                        }
                    }
                } else {
                    (Some(value.to_string()), None)
                };
                items.push(PushItem {
                    node: node.into(),
                    state,
                    load,
                    ttl,
                });
            }
            Request::Push {
                source: Some(source.clone()),
                states: items,
            }
        }
        CtlRequest::Reload { confirm } => Request::Reload { confirm: *confirm },
        CtlRequest::Replace => Request::Replace {},
        CtlRequest::Stats => Request::Stats {},
        CtlRequest::Reopen => Request::Reopen {},
        CtlRequest::Bgp => Request::Bgp {},
    })
}

/// Sends a `ctl` request and prints the response. Every string from the server is printed
/// through [`escape`] (or [`escape_json`] for `--json`): a reason or an error may carry
/// characters a terminal would act on.
fn ctl(
    socket: &std::path::Path,
    raw: bool,
    timeout: Duration,
    request: CtlRequest,
) -> Result<(), CliError> {
    let req = ctl_request(&request)?;
    let (resp, line) = client::request(socket, &req, timeout).map_err(CliError::Unreachable)?;
    if raw {
        println!("{}", escape_json(&line));
        return if resp.ok {
            Ok(())
        } else {
            Err(CliError::RefusedRaw)
        };
    }
    if !resp.ok {
        return Err(CliError::Refused(Box::new(resp)));
    }
    match resp.reply {
        Reply::Nodes { nodes } => print_nodes(&nodes),
        Reply::Status(s) => {
            println!("version:     {}", escape(&s.version));
            println!("uptime:      {} s", s.uptime_s);
            println!("data:        {}", escape(&s.data));
            println!("generation:  {}", s.generation);
            println!(
                "last reload: {}",
                match (s.last_reload.ok, s.last_reload.held) {
                    (true, _) => "ok",
                    (false, true) => "HELD (not serving; see below)",
                    (false, false) => "FAILED",
                }
            );
            for e in s.last_reload.errors {
                println!("  {}", escape(&e));
            }
            for n in s.last_reload.notes {
                println!("  note: {}", escape(&n));
            }
        }
        Reply::Stats { stats } => {
            for (k, v) in stats {
                println!("{:<16} {v}", escape(&k));
            }
        }
        Reply::Reopened { reopened } if reopened.is_empty() => {
            println!("no query log configured")
        }
        Reply::Reopened { reopened } => {
            for path in reopened {
                println!("reopened {}", escape(&path));
            }
        }
        Reply::Bgp { sessions, .. } if sessions.is_empty() => {
            println!("no BGP feeds configured (`feeds` in signpost.yaml)")
        }
        Reply::Bgp {
            sessions,
            refused_connections,
        } => {
            println!(
                "{:<16} {:<24} {:<12} {:>9} {:>9} {:>7} {:>9} {:>11} {:>9}  LAST ERROR",
                "PEER",
                "ADDRESS",
                "STATE",
                "IPV4",
                "IPV6",
                "STALE",
                "FOR",
                "LAST UPDATE",
                "MESSAGES"
            );
            for s in sessions {
                let age = s
                    .uptime_s
                    .or(s.down_s)
                    .map(|t| format!("{t} s"))
                    .unwrap_or_else(|| "-".into());
                let update = s
                    .last_update_s
                    .map(|t| format!("{t} s ago"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<16} {:<24} {:<12} {:>9} {:>9} {:>7} {:>9} {:>11} {:>9}  {}",
                    escape(&s.peer),
                    escape(&s.address),
                    escape(&s.state),
                    s.ipv4_prefixes,
                    s.ipv6_prefixes,
                    s.stale_prefixes,
                    age,
                    update,
                    s.messages,
                    escape(s.last_error.as_deref().unwrap_or("-"))
                );
            }
            if refused_connections > 0 {
                println!("connections refused at the listener: {refused_connections}");
            }
        }
        Reply::Lines { lines } => {
            for l in lines {
                println!("{}", escape(&l));
            }
        }
        Reply::Reloaded { data, notes } => {
            println!("reloaded: {}", escape(&data));
            for n in notes {
                println!("note: {}", escape(&n));
            }
        }
        Reply::Replaced { old_pid, new_pid } => {
            println!("replaced: pid {old_pid} -> pid {new_pid}")
        }
        // Every item was accepted (a push is all or nothing): nothing more to say.
        Reply::Pushed { accepted: _ } => println!("ok"),
        // `set` and `clear`: done, nothing more to say.
        Reply::Done {} => println!("ok"),
    }
    Ok(())
}

/// The `ctl nodes` table: state and why; with capacity, load, utilisation and shares.
fn print_nodes(nodes: &[crate::control::protocol::NodeReport]) {
    let steered = nodes.iter().any(|n| n.capacity.is_some());
    if !steered {
        println!("{:<16} {:<6} WHY", "NODE", "STATE");
        for n in nodes {
            println!(
                "{:<16} {:<6} {}",
                escape(&n.name),
                escape(&n.state),
                escape(&n.why)
            );
        }
        return;
    }
    let unit = nodes
        .iter()
        .find_map(|n| n.capacity.as_ref().and_then(|c| c.unit.clone()))
        .map(|u| format!(" ({})", escape(&u)))
        .unwrap_or_default();
    println!(
        "{:<16} {:<6} {:>10} {:>10} {:>6} {:>7} {:>9}  WHY{unit}",
        "NODE", "STATE", "LOAD", "CAPACITY", "UTIL", "SHARE", "OVERFLOW"
    );
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for n in nodes {
        let c = n.capacity.as_ref();
        let share = c.and_then(|c| c.shares.first());
        let mut why = escape(&n.why).into_owned();
        if let Some(c) = c {
            why.push_str("; load: ");
            why.push_str(&escape(&c.load_status));
        }
        println!(
            "{:<16} {:<6} {:>10} {:>10} {:>6} {:>7} {:>9}  {}",
            escape(&n.name),
            escape(&n.state),
            num(c.and_then(|c| c.load)),
            num(c.and_then(|c| c.capacity)),
            c.and_then(|c| c.utilisation)
                .map_or("-".into(), |u| format!("{:.0}%", u * 100.0)),
            share.map_or("-".into(), |s| format!("{:.1}%", s.share * 100.0)),
            share.map_or("-".into(), |s| format!("{:.1}%", s.overflow * 100.0)),
            why
        );
        for s in c.map(|c| &c.shares[..]).unwrap_or_default().iter().skip(1) {
            println!(
                "{:<16} {:<6} {:>10} {:>10} {:>6} {:>7} {:>9}  in {} of {}",
                "",
                "",
                "",
                "",
                "",
                format!("{:.1}%", s.share * 100.0),
                format!("{:.1}%", s.overflow * 100.0),
                escape(&s.region),
                escape(&s.service)
            );
        }
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
