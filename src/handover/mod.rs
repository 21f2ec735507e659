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

pub use give::{Handoff, ReplaceError, Replaced};
pub use take::{HandoverError, Taker};
pub use wire::Carried;

use crate::counters::Counters;
use crate::health::State;
use crate::node_state::{NodeStates, Pushed};

/// The node states and counters to carry over, as they stand. `counters` are the totals by
/// name the new process adds as an offset: `ctl stats` names and metric series (see
/// [`Counters::carry`]).
pub fn carried(states: &NodeStates, counters: BTreeMap<String, u64>) -> Carried {
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
        counters,
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

/// Adds the old process's counters to `counters`, as a starting offset: what `ctl stats` and
/// the metrics show goes on from the old process's totals.
pub fn carry(counters: &Counters, carried: &BTreeMap<String, u64>) {
    counters.carry(carried.clone());
}

/// Tells systemd (when `$NOTIFY_SOCKET` is set) that this process is now the service's main
/// process. Needs `NotifyAccess=all` in the unit, since the new process is not the one systemd
/// started.
pub fn notify_main_pid() {
    let pid = std::process::id().to_string();
    if let Err(e) = crate::notify::send(&crate::notify::message(&[("MAINPID", &pid)])) {
        tracing::warn!("cannot tell the service manager the new main process: {e}");
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
        let totals = BTreeMap::from([("udp_queries".to_string(), 41), ("nxdomain".to_string(), 3)]);
        let c = carried(&old, totals);
        let text = serde_json::to_string(&c).unwrap();
        let back: Carried = serde_json::from_str(&text).unwrap();
        let mut new = NodeStates::default();
        apply(&mut new, &back);
        assert_eq!(new.admin, old.admin);
        assert_eq!(new.pushed, old.pushed);
        let fresh = Counters::new(1);
        carry(&fresh, &back.counters);
        let after: BTreeMap<_, _> = fresh.stats().into_iter().collect();
        assert_eq!(after["udp_queries"], 41);
        assert_eq!(after["nxdomain"], 3);
        assert_eq!(after["servfail"], 0);
    }
}
