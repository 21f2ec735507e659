//! The command line: `serve`, `check`, `lookup`, `explain`, `diff` and `ctl`.
//!
//! Each subcommand parses its arguments here and calls into the library; exit codes: 0
//! success, 1 the inputs or the request are bad (messages on stderr), 2 usage, 3 the server
//! could not be reached.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::daemon::{self, ServeOptions};

/// Signpost: an authoritative DNS server that sends each client of a download hostname to
/// the best healthy node, by GeoIP, BGP origin and operator maps.
#[derive(Debug, Parser)]
#[command(name = "signpost", version, about, long_about = None)]
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
        /// Addresses; read from stdin, one per line, when none are given.
        addresses: Vec<String>,
    },
    /// Explain, offline, which node a client would get for a name.
    Explain {
        /// Configuration file (the embedded demo when absent).
        #[arg(long, short)]
        config: Option<PathBuf>,
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
        /// The control socket.
        #[arg(long, short, default_value = "/run/signpost/control.sock")]
        socket: PathBuf,
        /// Print the raw JSON response.
        #[arg(long)]
        json: bool,
        /// The request.
        #[command(subcommand)]
        request: CtlRequest,
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
        /// Lapse after this many seconds.
        #[arg(long)]
        expires: Option<u64>,
    },
    /// Remove a node's admin override.
    Clear {
        /// Node name.
        node: String,
    },
    /// Push states from a monitor: `NODE=STATE[:TTL]` (TTL in seconds, default 60).
    Push {
        /// Who is pushing.
        #[arg(long, default_value = "monitor")]
        source: String,
        /// States.
        states: Vec<String>,
    },
    /// Reload configuration, maps and data now.
    Reload,
    /// Query counters.
    Stats,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            config,
            listen,
            control,
            state_file,
        } => match daemon::serve(ServeOptions {
            config,
            listen,
            control,
            state_file,
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Command::Check { config } => match crate::reload::load(config.as_deref(), None) {
            Ok((c, snap)) => {
                println!(
                    "ok: {} zone(s), {} service(s), {} node(s); {}",
                    c.zones.len(),
                    snap.services.len(),
                    snap.nodes.len(),
                    snap.versions
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{} problem(s) found", e.0.len());
                ExitCode::from(1)
            }
        },
        Command::Lookup { config, addresses } => lookup(config, addresses),
        Command::Explain {
            config,
            health,
            ipv6,
            address,
            name,
        } => explain(config, health, ipv6, address, &name),
        Command::Diff { config, old, new } => diff(config, old, new),
        Command::Ctl {
            socket,
            json,
            request,
        } => ctl(&socket, json, request),
    }
}

fn lookup(config: Option<PathBuf>, addresses: Vec<String>) -> ExitCode {
    let cfg = match config {
        Some(p) => crate::config::Config::load(&p),
        None => crate::config::Config::embedded(),
    };
    let data = match cfg.and_then(|c| crate::client::ClientData::load(&c.geoip, &c.bgp)) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let list: Vec<String> = if addresses.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        addresses
    };
    let mut bad = false;
    for a in list {
        match a.parse::<IpAddr>() {
            Ok(ip) => {
                println!("{ip}");
                for line in data.lookup(ip).lines() {
                    println!("  {line}");
                }
            }
            Err(_) => {
                eprintln!("{a:?} is not an IP address");
                bad = true;
            }
        }
    }
    if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn explain(
    config: Option<PathBuf>,
    health: Option<PathBuf>,
    ipv6: bool,
    address: IpAddr,
    name: &str,
) -> ExitCode {
    let snap = match crate::reload::load(config.as_deref(), None) {
        Ok((_, s)) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Some(h) = health {
        match crate::control::NodeStates::load(Some(h)) {
            Ok(st) => st.apply(&snap),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        }
    }
    let wanted = name.trim_end_matches('.').to_ascii_lowercase();
    let Some(s) = snap.services.iter().position(|s| {
        s.names
            .iter()
            .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&wanted))
    }) else {
        eprintln!("{name} is not a service name of this configuration");
        return ExitCode::from(1);
    };
    for line in crate::compile::explain(&snap, s, address, "given on the command line", ipv6) {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

fn diff(config: Option<PathBuf>, old: PathBuf, new: PathBuf) -> ExitCode {
    let load = |maps: PathBuf| -> Result<crate::snapshot::Snapshot, crate::source::Errors> {
        let mut c = match &config {
            Some(p) => crate::config::Config::load(p)?,
            None => crate::config::Config::embedded()?,
        };
        c.maps = vec![crate::config::DataSource::File(maps)];
        let client = std::sync::Arc::new(crate::client::ClientData::load(&c.geoip, &c.bgp)?);
        let texts = crate::compile::read_maps(&c)?;
        crate::compile::build(
            &c,
            crate::compile::Inputs {
                client,
                maps: &texts,
                previous_health: None,
            },
        )
    };
    match (load(old), load(new)) {
        (Ok(o), Ok(n)) => {
            for line in crate::compile::diff(&o, &n) {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn ctl(socket: &std::path::Path, raw: bool, request: CtlRequest) -> ExitCode {
    let req = match &request {
        CtlRequest::Status => json!({"cmd": "status"}),
        CtlRequest::Nodes => json!({"cmd": "nodes"}),
        CtlRequest::Set {
            node,
            state,
            reason,
            expires,
        } => {
            json!({"cmd": "set", "node": node, "state": state, "reason": reason, "expires_in": expires})
        }
        CtlRequest::Clear { node } => json!({"cmd": "clear", "node": node}),
        CtlRequest::Push { source, states } => {
            let mut items = Vec::new();
            for s in states {
                let Some((node, rest)) = s.split_once('=') else {
                    eprintln!("{s:?}: expected NODE=STATE[:TTL]");
                    return ExitCode::from(2);
                };
                let (state, ttl) = match rest.split_once(':') {
                    Some((st, t)) => match t.parse::<u64>() {
                        Ok(t) => (st, t),
                        Err(_) => {
                            eprintln!("{s:?}: bad TTL");
                            return ExitCode::from(2);
                        }
                    },
                    None => (rest, 60),
                };
                items.push(json!({"node": node, "state": state, "ttl": ttl}));
            }
            json!({"cmd": "push", "source": source, "states": items})
        }
        CtlRequest::Reload => json!({"cmd": "reload"}),
        CtlRequest::Stats => json!({"cmd": "stats"}),
    };
    let resp = match crate::control::request(socket, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(3);
        }
    };
    let ok = resp["ok"].as_bool().unwrap_or(false);
    if raw {
        println!("{resp}");
    } else if !ok {
        eprintln!("error: {}", resp["error"].as_str().unwrap_or("unknown"));
        if let Some(errs) = resp["errors"].as_array() {
            for e in errs {
                eprintln!("  {}", e.as_str().unwrap_or_default());
            }
        }
    } else {
        match request {
            CtlRequest::Nodes => {
                println!("{:<16} {:<6} WHY", "NODE", "STATE");
                for n in resp["nodes"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:<6} {}",
                        n["name"].as_str().unwrap_or(""),
                        n["state"].as_str().unwrap_or(""),
                        n["why"].as_str().unwrap_or("")
                    );
                }
            }
            CtlRequest::Status => {
                println!("version:     {}", resp["version"].as_str().unwrap_or(""));
                println!("uptime:      {} s", resp["uptime_s"]);
                println!("data:        {}", resp["data"].as_str().unwrap_or(""));
                println!("generation:  {}", resp["generation"]);
                let lr = &resp["last_reload"];
                println!(
                    "last reload: {}",
                    if lr["ok"].as_bool().unwrap_or(false) {
                        "ok"
                    } else {
                        "FAILED"
                    }
                );
                for e in lr["errors"].as_array().into_iter().flatten() {
                    println!("  {}", e.as_str().unwrap_or(""));
                }
            }
            CtlRequest::Stats => {
                for (k, v) in resp["stats"].as_object().into_iter().flatten() {
                    println!("{k:<14} {v}");
                }
            }
            _ => println!("ok"),
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
