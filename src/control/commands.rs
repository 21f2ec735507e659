//! What each control command does: one function per request, called by [`execute`] with the
//! serving state. The connection handling (limits, lines, timeouts) is in `server.rs`.

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use super::protocol::{
    AnycastAction, BgpSession, CheckReport, LastReload, NodeReport, PushItem, PushedReport, Reply,
    Request, Response, StatusReply,
};
use super::text;
use crate::counters::Counters;
use crate::health::State;
use crate::node_state::{ClearError, Override, Pushed, now};
use crate::serving::{ReloadOutcome, ReloadRequest, Serving};
use crate::snapshot::Snapshot;

/// The longest `expires_in` accepted: ten years (longer is no expiry; leave it out).
pub const MAX_EXPIRES_IN: u64 = 3650 * 86_400;

/// What the daemon does for `replace` and `takeover`; the control socket only relays them.
pub trait Handover: Send + Sync {
    /// `takeover`: the connection now belongs to the hand-over (a new process asks for the
    /// sockets). Runs on a blocking thread.
    fn takeover(&self, stream: std::os::unix::net::UnixStream);
    /// `replace`: start a new process and wait until it serves; the two process ids.
    fn replace(&self) -> Result<(u32, u32), ReplaceFailed>;
    /// The reply to `replace` has been written.
    fn replied(&self) {}
}

/// Why a replace failed, for the reply.
#[derive(Debug)]
pub struct ReplaceFailed(pub String);

/// What every connection's requests work on.
pub(super) struct Shared {
    /// The serving state.
    pub(super) serving: Arc<Serving>,
    /// The query counters (`stats`).
    pub(super) stats: Arc<Counters>,
    /// When the server started (`status`).
    pub(super) started: Instant,
    /// The hand-over, once the daemon has set it up (`replace`).
    pub(super) handover: std::sync::OnceLock<Arc<dyn Handover>>,
}

/// A command's outcome: a response, or the error text of a failed one.
type Outcome = Result<Response, String>;

/// Carries out `req`.
pub(super) fn execute(shared: &Shared, req: Request) -> Outcome {
    let serving = &shared.serving;
    let snap = serving.published().snapshot();
    match req {
        Request::Status {} => Ok(status(shared, &snap)),
        Request::Nodes {} => Ok(nodes(serving, &snap)),
        Request::Set {
            node,
            state,
            reason,
            expires_in,
        } => set(serving, &snap, node, state, reason, expires_in),
        Request::Clear { node } => clear(serving, &snap, node),
        Request::Push { source, states } => push(serving, &snap, source, &states),
        Request::Reload { confirm } => reload(serving, confirm),
        Request::Bgp {} => Ok(bgp(serving)),
        Request::Anycast { action } => anycast(serving, action),
        Request::Lookup { addresses } => lookup(&snap, &addresses),
        Request::Explain {
            address,
            name,
            ipv6,
        } => explain(&snap, &address, &name, ipv6),
        Request::Reopen {} => reopen(serving),
        Request::Replace {} => replace(shared),
        Request::Takeover {} => Err("this server cannot hand over its sockets".into()),
        Request::Stats {} => Ok(Response::ok(Reply::Stats {
            stats: shared
                .stats
                .stats()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })),
    }
}

/// `Ok` when the serving snapshot has a node `n`.
fn known(snap: &Snapshot, n: &str) -> Result<(), String> {
    match snap.health.index(n) {
        Some(_) => Ok(()),
        None => Err(format!("unknown node {n:?}")),
    }
}

fn status(shared: &Shared, snap: &Snapshot) -> Response {
    let st = shared.serving.reloads().reload_status();
    Response::ok(Reply::Status(StatusReply {
        version: env!("SIGNPOST_VERSION").into(),
        uptime_s: shared.started.elapsed().as_secs(),
        data: snap.versions.clone(),
        generation: st.generation,
        last_reload: LastReload {
            ok: st.ok,
            held: st.held,
            at: st
                .at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            errors: st.errors,
            notes: st.notes,
        },
        anycast: shared.serving.anycast().map(|a| a.status()),
    }))
}

/// `anycast`: the state, after the operator's action if any (kept in the state file first).
fn anycast(serving: &Serving, action: Option<AnycastAction>) -> Outcome {
    let Some(a) = serving.anycast() else {
        return Err("no anycast announcement configured (`anycast` in signpost.yaml)".into());
    };
    let status = match action {
        None => a.status(),
        Some(action) => {
            let withdrawn = action == AnycastAction::Withdraw;
            tracing::info!(?action, "anycast: operator");
            a.set_operator(withdrawn).map_err(|e| e.to_string())?
        }
    };
    Ok(Response::ok(Reply::Anycast { anycast: status }))
}

fn nodes(serving: &Serving, snap: &Snapshot) -> Response {
    let st = serving.published().states();
    let cap = serving.published().capacity();
    let nodes = snap
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeReport {
            name: n.name.clone(),
            state: snap.health.get(i).as_str().into(),
            why: st.effective(&n.name).1,
            admin: st.admin.get(&n.name).cloned(),
            pushed: st.pushed.get(&n.name).map(|p| PushedReport {
                state: p.state.as_str().into(),
                expires_at: p.expires_at,
                source: p.source.clone(),
            }),
            poller: st.checks.get(&n.name).map(|p| CheckReport {
                up: p.up,
                last_error: p.last_error.clone(),
                at: p.at,
                successes: p.successes,
                failures: p.failures,
            }),
            capacity: super::capacity::report(snap, &cap, i),
        })
        .collect();
    Response::ok(Reply::Nodes { nodes })
}

fn set(
    serving: &Serving,
    snap: &Snapshot,
    node: String,
    state: String,
    reason: Option<String>,
    expires_in: Option<u64>,
) -> Outcome {
    known(snap, &node)?;
    let state = State::parse(&state)
        .ok_or_else(|| format!("bad state {state:?}; expected up, down or drain"))?;
    let reason = reason.unwrap_or_default();
    text::check("reason", &reason, text::MAX_REASON).map_err(|e| e.to_string())?;
    let expires_at = match expires_in {
        None => None,
        Some(s @ 1..=MAX_EXPIRES_IN) => Some(now().saturating_add(s)),
        Some(_) => {
            return Err(format!(
                "`expires_in` must be 1..={MAX_EXPIRES_IN} seconds (ten years; leave \
                 it out for no expiry)"
            ));
        }
    };
    // All or nothing: the override applies only once the state file has it.
    serving
        .published()
        .update_states(|st, _| {
            st.set_override(Override {
                node: node.clone(),
                state,
                reason,
                expires_at,
            })
        })
        .map_err(|e| format!("{e}; the override was not applied"))?;
    Ok(Response::ok(Reply::Done {}))
}

fn clear(serving: &Serving, snap: &Snapshot, node: String) -> Outcome {
    // An override kept for a node the maps no longer have can still be cleared.
    serving
        .published()
        .update_states(|st, _| st.clear_override(&node))
        .map_err(|e| match e {
            ClearError::NoOverride if known(snap, &node).is_err() => {
                format!("unknown node {node:?}")
            }
            ClearError::NoOverride => format!("no admin override for {node:?}"),
            ClearError::StateFile(e) => format!("{e}; the override stays in force"),
        })?;
    Ok(Response::ok(Reply::Done {}))
}

fn push(
    serving: &Serving,
    snap: &Snapshot,
    source: Option<String>,
    states: &[PushItem],
) -> Outcome {
    let source = source.unwrap_or_else(|| "monitor".into());
    text::check("source", &source, text::MAX_SOURCE).map_err(|e| e.to_string())?;
    if states.is_empty() {
        return Err("`push` needs at least one state".into());
    }
    // Validate the whole batch first: it is applied entirely or not at all.
    let mut parsed = Vec::new();
    for it in states {
        known(snap, &it.node)?;
        let s = match &it.state {
            Some(st) => Some(
                State::parse(st).ok_or_else(|| format!("bad state {:?} for {}", st, it.node))?,
            ),
            None => None,
        };
        if let Some(l) = it.load {
            crate::capacity::check_push(l).map_err(|e| format!("{}: {e}", it.node))?;
        }
        if s.is_none() && it.load.is_none() {
            return Err(format!(
                "push for {} needs a `state`, a `load` or both",
                it.node
            ));
        }
        if it.ttl == 0 || it.ttl > 86_400 {
            return Err(format!("ttl for {} must be 1..=86400 seconds", it.node));
        }
        parsed.push((it.node.clone(), s, it.load, it.ttl));
    }
    let loads: Vec<_> = parsed
        .iter()
        .filter_map(|(n, _, l, ttl)| l.map(|l| (n.clone(), l, *ttl)))
        .collect();
    if !loads.is_empty() {
        let at = std::time::Instant::now();
        serving.published().update_capacity(|cap, _| {
            for (node, load, ttl) in loads {
                cap.push(&node, load, now() + ttl, &source, at);
            }
        });
    }
    serving.published().update_states(|st, _| {
        for (node, state, _, ttl) in parsed {
            let Some(state) = state else { continue };
            st.pushed.insert(
                node,
                Pushed {
                    state,
                    expires_at: now() + ttl,
                    source: source.clone(),
                },
            );
        }
    });
    Ok(Response::ok(Reply::Pushed {
        accepted: states.len(),
    }))
}

fn reload(serving: &Serving, confirm: bool) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let request = if confirm {
        ReloadRequest::Confirm(tx)
    } else {
        ReloadRequest::Control(tx)
    };
    if !serving.reloads().request_reload(request) {
        return Err("the reload thread has stopped".into());
    }
    match rx.recv() {
        Ok(ReloadOutcome::Published(data)) => Ok(Response::ok(Reply::Reloaded {
            data,
            notes: serving.reloads().reload_status().notes,
        })),
        Ok(ReloadOutcome::Failed(errors)) => Ok(Response::failed(
            "reload failed; previous data still serving",
            errors,
        )),
        Ok(ReloadOutcome::Held(lines)) => Ok(Response::failed(
            "reload held: the new data take away served names or shrink too much; \
             previous data still serving (confirm with `signpost ctl reload --confirm`)",
            lines,
        )),
        Err(_) => Err("the reload thread has stopped".into()),
    }
}

fn bgp(serving: &Serving) -> Response {
    Response::ok(Reply::Bgp {
        sessions: serving
            .feeds()
            .map(|f| f.status().iter().map(BgpSession::from).collect())
            .unwrap_or_default(),
        refused_connections: serving.feeds().map_or(0, |f| f.refused_connections()),
    })
}

fn lookup(snap: &Snapshot, addresses: &[String]) -> Outcome {
    let mut lines = Vec::new();
    for a in addresses {
        let ip: std::net::IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        lines.push(ip.to_string());
        for l in crate::explain::client_lines(snap, ip) {
            lines.push(format!("  {l}"));
        }
    }
    Ok(Response::ok(Reply::Lines { lines }))
}

fn explain(snap: &Snapshot, address: &str, name: &str, ipv6: bool) -> Outcome {
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let s = crate::explain::service_named(snap, name)
        .ok_or_else(|| format!("{name} is not a service name of this server"))?;
    Ok(Response::ok(Reply::Lines {
        lines: crate::explain::explain(snap, s, ip, "given in the request", ipv6),
    }))
}

fn reopen(serving: &Serving) -> Outcome {
    match serving.reopen_logs() {
        None => Ok(Response::ok(Reply::Reopened {
            reopened: Vec::new(),
        })),
        Some(Ok(path)) => Ok(Response::ok(Reply::Reopened {
            reopened: vec![path.display().to_string()],
        })),
        Some(Err(e)) => Err(format!(
            "cannot reopen: {e}; still writing to the file opened before"
        )),
    }
}

fn replace(shared: &Shared) -> Outcome {
    let h = shared
        .handover
        .get()
        .ok_or("this server cannot replace itself")?;
    match h.replace() {
        Ok((old_pid, new_pid)) => Ok(Response::ok(Reply::Replaced { old_pid, new_pid })),
        Err(ReplaceFailed(why)) => Err(format!("replace failed, still serving: {why}")),
    }
}
