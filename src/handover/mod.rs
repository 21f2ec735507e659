//! Restart without losing a query: a new process (new binary or new configuration) takes over
//! the listening sockets of the running one, with its admin overrides, pushed states and
//! counters, and the old one stops once the new one answers. See `docs/replace.md`.
//!
//! The sockets themselves are passed (`SCM_RIGHTS` over the control socket, [`wire`]), so both
//! processes hold the same kernel sockets and queues: while both hold a UDP socket either may
//! read it, and when the old one stops reading and closes its copy, the socket and whatever is
//! queued on it live on in the new one. Nothing is closed and bound again, so nothing is
//! dropped in between.
//!
//! - [`take`]: the new process (`serve --takeover PATH`): asks for the sockets, serves from
//!   them, says "ready", receives the final states and counters.
//! - [`give`]: the old process: describes and sends its sockets, waits for "ready", lets the
//!   daemon stop, sends the final states; and `ctl replace`, which starts the new process
//!   itself and reports the outcome.
//!
//! This module owns the hand-over protocol only; the daemon decides what to bind, stop and
//! drain. It never touches the answer path.

pub mod give;
pub mod take;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

pub use give::{Handoff, ReplaceError, Replaced};
pub use take::{HandoverError, Taker};
pub use wire::Carried;

use crate::counters::Stats;
use crate::health::State;
use crate::node_state::{NodeStates, Pushed};

/// The node states and counters to carry over, as they stand.
pub fn carried(states: &NodeStates, stats: &Stats) -> Carried {
    Carried {
        admin: states.admin.values().cloned().collect(),
        pushed: states
            .pushed
            .iter()
            .map(|(node, p)| wire::PushedState {
                node: node.clone(),
                state: p.state.as_str().into(),
                expires_at: p.expires_at,
                source: p.source.clone(),
            })
            .collect(),
        counters: stats
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// Replaces the admin overrides and pushed states of `states` with the carried ones (the old
/// process's view is the newer one: it kept taking requests until it stopped).
pub fn apply(states: &mut NodeStates, carried: &Carried) {
    states.admin = carried
        .admin
        .iter()
        .filter(|o| State::parse(&o.state).is_some())
        .map(|o| (o.node.clone(), o.clone()))
        .collect();
    states.pushed = carried
        .pushed
        .iter()
        .filter_map(|p| {
            Some((
                p.node.clone(),
                Pushed {
                    state: State::parse(&p.state)?,
                    expires_at: p.expires_at,
                    source: p.source.clone(),
                },
            ))
        })
        .collect();
}

/// Adds the old process's counters to `stats`, as a starting offset. The one place that knows
/// how counters cross a hand-over (to be switched when the counters change shape).
pub fn carry(stats: &Stats, counters: &BTreeMap<String, u64>) {
    for (name, value) in counters {
        let counter = match name.as_str() {
            "udp_queries" => &stats.udp_queries,
            "tcp_queries" => &stats.tcp_queries,
            "dropped" => &stats.dropped,
            "truncated" => &stats.truncated,
            "formerr" => &stats.formerr,
            "refused" => &stats.refused,
            "nxdomain" => &stats.nxdomain,
            "servfail" => &stats.servfail,
            "tcp_refused" => &stats.tcp_refused,
            "rrl_dropped" => &stats.rrl_dropped,
            "rrl_slipped" => &stats.rrl_slipped,
            _ => continue,
        };
        counter.fetch_add(*value, Ordering::Relaxed);
    }
}

/// Tells systemd (when `$NOTIFY_SOCKET` is set) that this process is now the service's main
/// process. Needs `NotifyAccess=all` in the unit, since the new process is not the one systemd
/// started. A local sender of one datagram; to be switched to the project's sd_notify helpers.
pub fn notify_main_pid() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("MAINPID={}\n", std::process::id());
    let sent = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(message.as_bytes(), &addr)?;
        } else {
            sock.send_to(message.as_bytes(), PathBuf::from(&path))?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd of the new main process: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_state::Override;

    #[test]
    fn states_and_counters_cross_as_data() {
        let mut old = NodeStates::default();
        old.admin.insert(
            "fra1".into(),
            Override {
                node: "fra1".into(),
                state: "down".into(),
                reason: "disk".into(),
                expires_at: None,
            },
        );
        old.pushed.insert(
            "ams1".into(),
            Pushed {
                state: State::Drain,
                expires_at: 99,
                source: "mon".into(),
            },
        );
        let stats = Stats::default();
        stats.udp_queries.store(41, Ordering::Relaxed);
        stats.nxdomain.store(3, Ordering::Relaxed);
        let c = carried(&old, &stats);
        let text = serde_json::to_string(&c).unwrap();
        let back: Carried = serde_json::from_str(&text).unwrap();
        let mut new = NodeStates::default();
        apply(&mut new, &back);
        assert_eq!(new.admin, old.admin);
        assert_eq!(new.pushed, old.pushed);
        let fresh = Stats::default();
        fresh.udp_queries.store(1, Ordering::Relaxed);
        carry(&fresh, &back.counters);
        let after: BTreeMap<_, _> = fresh.snapshot().into_iter().collect();
        assert_eq!(after["udp_queries"], 42);
        assert_eq!(after["nxdomain"], 3);
        // Every counter has a place to go.
        assert_eq!(back.counters.len(), stats.snapshot().len());
        let all = Stats::default();
        carry(
            &all,
            &back.counters.keys().map(|k| (k.clone(), 1)).collect(),
        );
        assert!(all.snapshot().iter().all(|(_, v)| *v == 1));
    }
}
