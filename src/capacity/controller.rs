//! One step of the capacity controller, as arithmetic on plain numbers: per region of a
//! `spread: capacity` service, the node weight factors that even out utilisation among its
//! nodes, and the overflow fraction that sends the excess of its clients to the next region.
//! No clock, no names, no I/O: [`super::Capacity`] gathers the inputs and publishes the output.
//!
//! # Why it is damped this way
//!
//! A changed share is seen in load only after resolvers' caches expire (up to the TTL) and the
//! next load sample is taken. A controller that acted on every sample would push again and
//! again on a load that has not moved yet, overshoot, and swing back. So:
//!
//! - a step is taken only on evidence: every load used was measured over a window that started
//!   at least one TTL after the previous change (the caller checks this, see
//!   [`super::Capacity::step`]);
//! - each step is bounded (`max_step`: a weight changes by at most that factor, an overflow
//!   fraction by at most that much), so that a wrong or noisy reading cannot swing all clients;
//! - differences smaller than `deadband` are left alone (hysteresis): no step chases noise;
//! - the overflow step is estimated, not blind: the region's own demand is its carried load
//!   divided by the fraction it keeps, so one step lands close to the target rather than
//!   creeping toward it.

/// A region as the controller sees it.
#[derive(Debug, Clone)]
pub struct RegionIn {
    /// Member node indices.
    pub members: Vec<usize>,
    /// The regions that follow this one in some chain of the service (where its overflow goes).
    pub next: Vec<usize>,
    /// Whether any chain of the service uses it.
    pub used: bool,
}

/// A node as the controller sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeIn {
    /// Serving (state up).
    pub up: bool,
    /// Its capacity.
    pub capacity: f64,
    /// Its current load, when known and valid.
    pub load: Option<f64>,
    /// The load it carried before it went down, still to land on the others.
    pub pending: f64,
    /// It came back up less than a TTL ago: its clients are still returning, so its load
    /// says nothing yet; it counts in no aggregate and its factor stays as it is.
    pub settling: bool,
    /// Local-only: only its own networks' clients can get it, so its headroom is not the
    /// region's; it counts in no aggregate and keeps its static weight.
    pub local_only: bool,
}

impl NodeIn {
    /// Whether the node's load and capacity count: up, with a capacity and a valid load.
    fn usable(&self) -> Option<(f64, f64)> {
        match self.load {
            Some(l) if self.up && !self.settling && !self.local_only && self.capacity > 0.0 => {
                Some((l, self.capacity))
            }
            _ => None,
        }
    }
}

/// The controller's settings (see [`crate::snapshot::SteerSettings`]).
pub use crate::snapshot::SteerSettings as Settings;

/// The shares a step starts from and produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Shares {
    /// Per node: the factor on its static weight.
    pub factors: Vec<f64>,
    /// Per region: the overflow fraction.
    pub overflow: Vec<f64>,
}

/// The most a weight factor may move away from 1 (either way).
pub const MAX_FACTOR: f64 = 256.0;

/// A region's aggregate: capacity and load of its usable nodes, and the loads pending from
/// nodes that went down.
fn aggregate(r: &RegionIn, nodes: &[NodeIn]) -> (f64, f64) {
    let mut c = 0.0;
    let mut l = 0.0;
    for &n in &r.members {
        if let Some((load, cap)) = nodes[n].usable() {
            c += cap;
            l += load;
        }
        if !nodes[n].up {
            l += nodes[n].pending;
        }
    }
    (c, l)
}

/// One controller step. `settled`: every load was measured after the last change had taken
/// effect; otherwise (a node just went down or came back) only the overflow moves, by the
/// loads known and pending, and weights wait for evidence.
pub fn step(
    settings: &Settings,
    regions: &[RegionIn],
    nodes: &[NodeIn],
    now: &Shares,
    settled: bool,
) -> Shares {
    let mut out = now.clone();
    let step = settings.max_step.max(0.0);
    let agg: Vec<(f64, f64)> = regions.iter().map(|r| aggregate(r, nodes)).collect();
    // Overflow: each region keeps what it can carry at the target, or, when everything
    // downstream is past the target too, what evens out utilisation with it.
    for (i, r) in regions.iter().enumerate() {
        let (c, l) = agg[i];
        let f = now.overflow[i];
        if !r.used || c <= 0.0 {
            out.overflow[i] = 0.0;
            continue;
        }
        let (mut cd, mut ld) = (0.0, 0.0);
        for &j in r.next.iter().filter(|&&j| j != i) {
            cd += agg[j].0;
            ld += agg[j].1;
        }
        let keep = if cd > 0.0 {
            c * settings.target.max((l + ld) / (c + cd))
        } else {
            f64::INFINITY
        };
        let u = l / c;
        let goal_u = keep / c;
        let wanted = if l <= 0.0 || keep.is_infinite() {
            0.0
        } else {
            (1.0 - keep * (1.0 - f) / l).clamp(0.0, settings.max_overflow)
        };
        // Hysteresis: near the goal, nothing moves; an overflow is released only once the
        // region is clearly below it.
        if (u - goal_u).abs() <= settings.deadband && !(keep.is_infinite() && f > 0.0) {
            continue;
        }
        // Sending on may grow by `max_step`; coming back is gradual, a quarter of that per
        // step, so that clients returning to a region with headroom do not overshoot it.
        let next = f + (wanted - f).clamp(-step / 4.0, step);
        out.overflow[i] = if next < 1e-3 { 0.0 } else { next };
    }
    // Weights: within each region, a node busier than the region's average gets a smaller
    // factor, a quieter one a larger, so that utilisation evens out; each node follows the
    // first used region it is a member of.
    // A region one of whose up nodes has no valid load is answered by static weights, at
    // once: factors balanced against a load nobody knows would mean nothing.
    let mut blind = vec![false; regions.len()];
    for (i, r) in regions.iter().enumerate().filter(|(_, r)| r.used) {
        blind[i] = r.members.iter().any(|&n| {
            let x = &nodes[n];
            x.up && !x.settling && !x.local_only && x.load.is_none()
        });
        if blind[i] {
            for &n in &r.members {
                if nodes[n].up && !nodes[n].settling {
                    out.factors[n] = 1.0;
                }
            }
        }
    }
    for (n, x) in nodes.iter().enumerate() {
        if x.local_only {
            out.factors[n] = 1.0;
        }
    }
    let mut done = vec![false; nodes.len()];
    for (_, r) in regions
        .iter()
        .enumerate()
        .filter(|&(i, r)| r.used && settled && !blind[i])
    {
        let usable: Vec<(usize, f64, f64)> = r
            .members
            .iter()
            .filter(|&&n| !done[n])
            .filter_map(|&n| nodes[n].usable().map(|(l, c)| (n, l, c)))
            .collect();
        if usable.len() < 2 {
            for &(n, _, _) in &usable {
                done[n] = true;
            }
            continue;
        }
        let (lsum, csum) = usable
            .iter()
            .fold((0.0, 0.0), |(a, b), &(_, l, c)| (a + l, b + c));
        let mean = lsum / csum;
        for &(n, l, c) in &usable {
            done[n] = true;
            let u = l / c;
            if (u - mean).abs() <= settings.deadband {
                continue;
            }
            let ratio = (mean.max(0.01) / u.max(0.01)).clamp(1.0 / (1.0 + step), 1.0 + step);
            out.factors[n] = (now.factors[n] * ratio).clamp(1.0 / MAX_FACTOR, MAX_FACTOR);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            target: 0.8,
            max_step: 0.5,
            deadband: 0.05,
            max_overflow: 0.95,
            ..Settings::default()
        }
    }

    fn node(load: f64) -> NodeIn {
        NodeIn {
            up: true,
            capacity: 600.0,
            load: Some(load),
            pending: 0.0,
            settling: false,
            local_only: false,
        }
    }

    /// Two regions that overflow into each other: na (nodes 0, 1) and eu (2, 3, 4).
    fn world() -> Vec<RegionIn> {
        vec![
            RegionIn {
                members: vec![0, 1],
                next: vec![1],
                used: true,
            },
            RegionIn {
                members: vec![2, 3, 4],
                next: vec![0],
                used: true,
            },
        ]
    }

    fn flat() -> Shares {
        Shares {
            factors: vec![1.0; 5],
            overflow: vec![0.0; 2],
        }
    }

    #[test]
    fn busier_nodes_lose_weight_within_bounds() {
        let nodes = [
            node(540.0),
            node(300.0),
            node(300.0),
            node(300.0),
            node(300.0),
        ];
        let out = step(&settings(), &world(), &nodes, &flat(), true);
        assert!(out.factors[0] < 1.0 && out.factors[1] > 1.0, "{out:?}");
        assert!(out.factors[0] >= 1.0 / 1.5 - 1e-9, "bounded: {out:?}");
        assert_eq!(&out.factors[2..], &[1.0; 3], "even region untouched");
        assert_eq!(out.overflow, vec![0.0, 0.0], "na at 70 %: under target");
    }

    #[test]
    fn deadband_holds_still() {
        let nodes = [
            node(480.0),
            node(470.0),
            node(300.0),
            node(310.0),
            node(290.0),
        ];
        assert_eq!(step(&settings(), &world(), &nodes, &flat(), true), flat());
    }

    #[test]
    fn overflow_sends_the_excess_and_comes_back_gradually() {
        // na at 1100 / 1200, eu at 900 / 1800: na keeps 960 (80 %) and sends the rest on.
        let nodes = [
            node(550.0),
            node(550.0),
            node(300.0),
            node(300.0),
            node(300.0),
        ];
        let out = step(&settings(), &world(), &nodes, &flat(), true);
        assert!(
            (out.overflow[0] - (1.0 - 960.0 / 1100.0)).abs() < 1e-9,
            "{out:?}"
        );
        assert_eq!(out.overflow[1], 0.0);
        // A failed node's load is pending: na must send on (1000 - 480) / 1000 = 52 %,
        // bounded by max_step to 50 % in one step.
        let mut down = [
            node(500.0),
            node(500.0),
            node(300.0),
            node(300.0),
            node(300.0),
        ];
        down[0] = NodeIn {
            up: false,
            load: None,
            pending: 500.0,
            ..down[0]
        };
        let out = step(&settings(), &world(), &down, &flat(), true);
        assert!((out.overflow[0] - 0.5).abs() < 1e-9, "{out:?}");
        // Demand falls (na's own demand is 400 / 0.5 = 800, under 960): the overflow shrinks
        // by at most a quarter of max_step per step.
        let calm = [
            node(200.0),
            node(200.0),
            node(300.0),
            node(300.0),
            node(300.0),
        ];
        let mut s = flat();
        s.overflow[0] = 0.5;
        let slow = Settings {
            max_step: 0.25,
            ..settings()
        };
        let out = step(&slow, &world(), &calm, &s, true);
        assert!((out.overflow[0] - 0.4375).abs() < 1e-9, "{out:?}");
        let mut out = out;
        for _ in 0..7 {
            out = step(&slow, &world(), &calm, &out, true);
        }
        assert_eq!(out.overflow[0], 0.0, "{out:?}");
    }

    #[test]
    fn everything_past_target_evens_out_instead_of_ping_pong() {
        // na at 100 %, eu at 90 %: even utilisation is (1200 + 1620) / 3000 = 94 %.
        let nodes = [
            node(600.0),
            node(600.0),
            node(540.0),
            node(540.0),
            node(540.0),
        ];
        let out = step(&settings(), &world(), &nodes, &flat(), true);
        assert!(out.overflow[0] > 0.0 && out.overflow[0] < 0.1, "{out:?}");
        assert_eq!(out.overflow[1], 0.0, "eu does not send back");
    }

    #[test]
    fn a_local_only_node_counts_in_no_aggregate() {
        // eu3 is local-only with all the headroom: eu1 and eu2 at 100 % must still overflow.
        let mut nodes = [
            node(400.0),
            node(400.0),
            node(600.0),
            node(600.0),
            node(0.0),
        ];
        nodes[4].local_only = true;
        let out = step(&settings(), &world(), &nodes, &flat(), true);
        assert!(out.overflow[1] > 0.0, "{out:?}");
        assert_eq!(out.factors[4], 1.0);
    }

    #[test]
    fn a_node_back_from_down_counts_only_once_its_clients_are_back() {
        // na1 just came back: its load of 0 must neither raise its factor nor release na's
        // overflow.
        let mut nodes = [
            node(0.0),
            node(550.0),
            node(300.0),
            node(300.0),
            node(300.0),
        ];
        nodes[0].settling = true;
        let mut s = flat();
        s.factors[0] = 0.9;
        s.overflow[0] = 0.1;
        let out = step(&settings(), &world(), &nodes, &s, true);
        assert_eq!(out.factors[0], 0.9);
        assert!(out.overflow[0] >= 0.1, "{out:?}");
    }

    #[test]
    fn no_load_falls_back_to_static_weight_and_no_overflow() {
        let mut nodes = [
            node(500.0),
            node(500.0),
            node(300.0),
            node(300.0),
            node(300.0),
        ];
        nodes[1].load = None;
        let mut s = flat();
        s.factors[1] = 3.0;
        let out = step(&settings(), &world(), &nodes, &s, true);
        assert_eq!(out.factors[1], 1.0);
        // A region whose nodes all lack loads sends nothing on.
        nodes[0].load = None;
        s.overflow[0] = 0.3;
        let out = step(&settings(), &world(), &nodes, &s, true);
        assert_eq!(out.overflow[0], 0.0);
        // The last region of a chain has nowhere to send.
        let alone = [RegionIn {
            members: vec![0, 1],
            next: vec![],
            used: true,
        }];
        let hot = [node(700.0), node(700.0)];
        let out = step(
            &settings(),
            &alone,
            &hot,
            &Shares {
                factors: vec![1.0; 2],
                overflow: vec![0.0],
            },
            true,
        );
        assert_eq!(out.overflow, vec![0.0]);
        // A lapsed load gives the static weight back even between settled steps.
        let mut nodes = [
            node(500.0),
            node(500.0),
            node(300.0),
            node(300.0),
            node(300.0),
        ];
        nodes[1].load = None;
        let mut s = flat();
        s.factors[1] = 1.5;
        let out = step(&settings(), &world(), &nodes, &s, false);
        assert_eq!(out.factors[1], 1.0);
    }
}
