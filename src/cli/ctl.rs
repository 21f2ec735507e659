//! `signpost ctl` (and `lookup`/`explain --socket`): the request a subcommand makes, and the
//! reply printed for a person, every free text escaped for the terminal.

use std::time::Duration;

use clap::Subcommand;

use super::{CliError, TIMEOUT_S};
use crate::control::client;
use crate::control::protocol::{
    AnycastAction, AnycastStatus, BgpSession, PushItem, Reply, Request, StatusReply,
};
use crate::control::text::{escape, escape_json};

/// Control requests.
#[derive(Debug, Clone, Subcommand)]
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
    /// The anycast announcement: announced or withdrawn and why; `withdraw` withdraws it
    /// (maintenance; kept across restarts) until `announce`, which announces again once healthy
    /// for the hold-down.
    Anycast {
        /// `withdraw` or `announce`; none shows the state.
        #[arg(value_enum)]
        action: Option<AnycastArg>,
    },
}

/// The operator's word on the anycast announcement (`ctl anycast`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnycastArg {
    /// Withdraw the prefixes until `announce`.
    Withdraw,
    /// End the withdrawal: announce again when healthy, after the hold-down.
    Announce,
}

/// Sends `req` to the server and prints the lines it answers.
pub(super) fn ask(socket: &std::path::Path, req: Request) -> Result<(), CliError> {
    let (resp, _) = client::request(socket, &req, Duration::from_secs(TIMEOUT_S))
        .map_err(CliError::Unreachable)?;
    if !resp.ok {
        return Err(CliError::Refused(Box::new(resp)));
    }
    if let Reply::Lines { lines } = resp.reply {
        for l in lines {
            outln!("{}", escape(&l));
        }
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
        CtlRequest::Anycast { action } => Request::Anycast {
            action: action.map(|a| match a {
                AnycastArg::Withdraw => AnycastAction::Withdraw,
                AnycastArg::Announce => AnycastAction::Announce,
            }),
        },
    })
}

/// Sends the request to each socket in turn (the default socket when none is given): with
/// several, each reply (or error) is printed under a `== SOCKET` line, and the first error is
/// returned once every server was asked.
pub(super) fn ctl_each(
    sockets: &[std::path::PathBuf],
    raw: bool,
    timeout: Duration,
    request: &CtlRequest,
) -> Result<(), CliError> {
    let [one] = sockets else {
        if sockets.is_empty() {
            return ctl(
                &crate::control::default_socket(),
                raw,
                timeout,
                request.clone(),
            );
        }
        let mut first = None;
        for socket in sockets {
            if !raw {
                outln!("== {}", escape(&socket.display().to_string()));
            }
            if let Err(e) = ctl(socket, raw, timeout, request.clone()) {
                eprintln!("{}: {e}", escape(&socket.display().to_string()));
                first.get_or_insert(e);
            }
        }
        return first.map_or(Ok(()), Err);
    };
    ctl(one, raw, timeout, request.clone())
}

/// Sends a `ctl` request and prints the response. Every string from the server is printed
/// through [`escape`] (or [`escape_json`] for `--json`): a reason or an error may carry
/// characters a terminal would act on.
pub(super) fn ctl(
    socket: &std::path::Path,
    raw: bool,
    timeout: Duration,
    request: CtlRequest,
) -> Result<(), CliError> {
    let req = ctl_request(&request)?;
    let (resp, line) = client::request(socket, &req, timeout).map_err(CliError::Unreachable)?;
    if raw {
        outln!("{}", escape_json(&line));
        return if resp.ok {
            Ok(())
        } else {
            Err(CliError::RefusedRaw)
        };
    }
    if !resp.ok {
        return Err(CliError::Refused(Box::new(resp)));
    }
    print_reply(resp.reply);
    Ok(())
}

/// Prints a reply for a person. Every kind has its arm (no catch-all): a new kind does not
/// compile without one.
fn print_reply(reply: Reply) {
    match reply {
        Reply::Nodes { nodes } => print_nodes(&nodes),
        Reply::Status(s) => print_status(s),
        Reply::Anycast { anycast } => print_anycast(&anycast),
        Reply::Stats { stats } => {
            for (k, v) in stats {
                outln!("{:<16} {v}", escape(&k));
            }
        }
        Reply::Reopened { reopened } if reopened.is_empty() => {
            outln!("no query log configured")
        }
        Reply::Reopened { reopened } => {
            for path in reopened {
                outln!("reopened {}", escape(&path));
            }
        }
        Reply::Bgp { sessions, .. } if sessions.is_empty() => {
            outln!("no BGP feeds configured (`feeds` in signpost.yaml)")
        }
        Reply::Bgp {
            sessions,
            refused_connections,
        } => print_bgp(&sessions, refused_connections),
        Reply::Lines { lines } => {
            for l in lines {
                outln!("{}", escape(&l));
            }
        }
        Reply::Reloaded { data, notes } => {
            outln!("reloaded: {}", escape(&data));
            for n in notes {
                outln!("note: {}", escape(&n));
            }
        }
        Reply::Replaced { old_pid, new_pid } => {
            outln!("replaced: pid {old_pid} -> pid {new_pid}")
        }
        // Every item was accepted (a push is all or nothing): nothing more to say.
        Reply::Pushed { accepted: _ } => outln!("ok"),
        // `set` and `clear`: done, nothing more to say.
        Reply::Done {} => outln!("ok"),
    }
}

/// The lines of `ctl status`.
fn print_status(s: StatusReply) {
    outln!("version:     {}", escape(&s.version));
    outln!("uptime:      {} s", s.uptime_s);
    outln!("data:        {}", escape(&s.data));
    outln!("generation:  {}", s.generation);
    outln!(
        "last reload: {}",
        match (s.last_reload.ok, s.last_reload.held) {
            (true, _) => "ok",
            (false, true) => "HELD (not serving; see below)",
            (false, false) => "FAILED",
        }
    );
    for e in s.last_reload.errors {
        outln!("  {}", escape(&e));
    }
    for n in s.last_reload.notes {
        outln!("  note: {}", escape(&n));
    }
    if let Some(a) = s.anycast {
        print_anycast(&a);
    }
}

/// The table of `ctl bgp`.
fn print_bgp(sessions: &[BgpSession], refused_connections: u64) {
    outln!(
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
        outln!(
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
        outln!("connections refused at the listener: {refused_connections}");
    }
}

/// The anycast lines of `ctl status` and `ctl anycast`.
fn print_anycast(a: &AnycastStatus) {
    let state = match (a.announced, a.reason) {
        (true, _) => "announced".to_string(),
        (false, Some(r)) => format!("WITHDRAWN ({r})"),
        (false, None) => "WITHDRAWN".to_string(),
    };
    outln!("anycast:     {state}, for {} s", a.since_ms / 1000);
    outln!("  prefixes: {}", escape(&a.prefixes.join(", ")));
    if a.operator_withdrawn {
        outln!("  withdrawn by the operator (`ctl anycast announce` ends it)");
    }
    if let Some(ms) = a.hold_down_left_ms {
        outln!("  hold-down: {} ms left", ms);
    }
}

/// The `ctl nodes` table: state and why; with capacity, load, utilisation and shares.
fn print_nodes(nodes: &[crate::control::protocol::NodeReport]) {
    let steered = nodes.iter().any(|n| n.capacity.is_some());
    if !steered {
        outln!("{:<16} {:<6} WHY", "NODE", "STATE");
        for n in nodes {
            outln!(
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
    outln!(
        "{:<16} {:<6} {:>10} {:>10} {:>6} {:>7} {:>9}  WHY{unit}",
        "NODE",
        "STATE",
        "LOAD",
        "CAPACITY",
        "UTIL",
        "SHARE",
        "OVERFLOW"
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
        outln!(
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
            outln!(
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
