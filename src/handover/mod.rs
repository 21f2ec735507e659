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
//!   daemon stop, sends the final states and the established BGP sessions (their connected
//!   sockets and [`CarriedSession`] state, see [`Final`]); and `ctl replace`, which starts the
//!   new process itself and reports the outcome.
//!
//! This module owns the hand-over protocol only; the daemon decides what to bind, stop and
//! drain. It never touches the answer path.

pub mod give;
pub mod take;
pub mod wire;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

pub use give::{Handoff, ReplaceError, Replaced};
pub use take::{HandoverError, Taker};
pub use wire::Carried;

use crate::capacity::Capacity;
use crate::counters::Counters;
use crate::health::State;
use crate::live::CarriedSession;
use crate::node_state::{NodeStates, Pushed};

/// What the old process sends once it has stopped: the final node states and counters, and
/// the established BGP sessions (their state and connected sockets), which the new process
/// resumes without a new OPEN.
#[derive(Debug, Default)]
pub struct Final {
    /// Node states, capacity shares and counters.
    pub carried: Carried,
    /// The BGP sessions handed over.
    pub sessions: Vec<Session>,
}

/// A BGP session handed over: its state and its connected socket.
pub type Session = (CarriedSession, OwnedFd);

/// The node states, capacity shares and counters to carry over, as they stand. `counters`
/// are the totals by name the new process adds as an offset: `ctl stats` names and metric
/// series (see [`Counters::carry`]).
pub fn carried(
    states: &NodeStates,
    capacity: &Capacity,
    counters: BTreeMap<String, u64>,
) -> Carried {
    Carried {
        steering: capacity
            .services
            .iter()
            .map(|(service, st)| wire::SteeringState {
                service: service.clone(),
                factors: st.factors.clone(),
                overflow: st.overflow.clone(),
            })
            .collect(),
        pushed_loads: capacity
            .loads
            .iter()
            .filter_map(|(node, l)| {
                let p = l.pushed.as_ref()?;
                Some(wire::PushedLoad {
                    node: node.clone(),
                    load: p.value,
                    expires_at: p.expires_at,
                    source: p.source.clone(),
                })
            })
            .collect(),
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

/// Takes over the old process's capacity shares and pushed loads: the new process answers
/// with the shares the old one had reached instead of starting again from static weights.
/// Bad values (not finite, out of range) are dropped.
pub fn apply_capacity(capacity: &mut Capacity, carried: &Carried) {
    for s in &carried.steering {
        let st = capacity.services.entry(s.service.clone()).or_default();
        st.factors = s
            .factors
            .iter()
            .filter(|(_, f)| f.is_finite() && **f > 0.0)
            .map(|(n, f)| (n.clone(), *f))
            .collect();
        st.overflow = s
            .overflow
            .iter()
            .filter(|(_, f)| (0.0..=1.0).contains(*f))
            .map(|(n, f)| (n.clone(), *f))
            .collect();
    }
    let now = std::time::Instant::now();
    capacity.hold_until = Some(now + crate::capacity::CARRIED_HOLD);
    for p in &carried.pushed_loads {
        if crate::capacity::check_push(p.load).is_ok() {
            capacity.push(&p.node, p.load, p.expires_at, &p.source, now);
        }
    }
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

/// The BGP feeds' tables as the old process sends them.
pub fn feed_routes(tables: &[crate::live::FeedTable]) -> Vec<wire::FeedRoutes> {
    tables
        .iter()
        .map(|t| wire::FeedRoutes {
            peer: t.peer.clone(),
            v4: t
                .v4
                .iter()
                .map(|&(s, l, r)| (s, l, r.origin, r.path_len))
                .collect(),
            v6: t
                .v6
                .iter()
                .map(|&(s, l, r)| (s, l, r.origin, r.path_len))
                .collect(),
        })
        .collect()
}

/// One feed's routes as received, as a table whose routes are all stale: they stand until the
/// new process's own session with the peer announces them again (or its stale time passes).
fn feed_table(routes: &wire::FeedRoutes) -> crate::live::FeedTable {
    let route = |origin, path_len| crate::live::Route {
        origin,
        path_len,
        stale: true,
    };
    crate::live::FeedTable {
        peer: routes.peer.clone(),
        v4: routes
            .v4
            .iter()
            .map(|&(s, l, o, p)| (s, l, route(o, p)))
            .collect(),
        v6: routes
            .v6
            .iter()
            .map(|&(s, l, o, p)| (s, l, route(o, p)))
            .collect(),
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
                state: State::Down,
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
        let mut cap = Capacity::default();
        cap.push("fra1", 412.5, u64::MAX, "lb", std::time::Instant::now());
        cap.services
            .entry("dl".into())
            .or_default()
            .factors
            .insert("fra1".into(), 0.5);
        cap.services
            .get_mut("dl")
            .unwrap()
            .overflow
            .insert("europe".into(), 0.25);
        let c = carried(&old, &cap, totals);
        let text = serde_json::to_string(&c).unwrap();
        let back: Carried = serde_json::from_str(&text).unwrap();
        let mut new = NodeStates::default();
        apply(&mut new, &back);
        assert_eq!(new.admin, old.admin);
        assert_eq!(new.pushed, old.pushed);
        let mut cap2 = Capacity::default();
        apply_capacity(&mut cap2, &back);
        assert_eq!(cap2.services["dl"].factors["fra1"], 0.5);
        assert_eq!(cap2.services["dl"].overflow["europe"], 0.25);
        assert_eq!(cap2.loads["fra1"].pushed.as_ref().unwrap().value, 412.5);
        // An older process sends no capacity fields: they default to none.
        let old_text = r#"{"admin":[],"pushed":[],"counters":{}}"#;
        let older: Carried = serde_json::from_str(old_text).unwrap();
        assert!(older.steering.is_empty() && older.pushed_loads.is_empty());
        let fresh = Counters::new(1);
        carry(&fresh, &back.counters);
        let after: BTreeMap<_, _> = fresh.stats().into_iter().collect();
        assert_eq!(after["udp_queries"], 41);
        assert_eq!(after["nxdomain"], 3);
        assert_eq!(after["servfail"], 0);
    }
}
