//! Capacity steering, in one home: each node's load (scraped from its exporter, or pushed over
//! the control socket with a TTL), the controller's state per `spread: capacity` service, and
//! the step that turns loads into the weight factors and overflow fractions the answer path
//! reads ([`crate::snapshot::Steering`]).
//!
//! Load precedence: a pushed load (until its TTL) > a scraped reading (until it is stale) >
//! none. A node without a valid load, and every node of a service before its first step, is
//! answered by its static weight; a region none of whose nodes has a valid load sends nothing
//! on. The arithmetic of one step is [`controller`]; when a step is taken is [`Capacity::step`]:
//! at once when a node of the service went down or came back, else every `interval` once each
//! load used was measured at least one TTL after the last change.

pub mod controller;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::health::State;
use crate::meter::MeterError;
use crate::snapshot::{Service, Snapshot};

use controller::{NodeIn, RegionIn, Shares};

/// The largest pushed load accepted (as [`crate::meter::MAX_LOAD`]).
pub use crate::meter::MAX_LOAD;

/// A scraped load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The load, in the capacity unit.
    pub value: f64,
    /// When it was taken.
    pub at: Instant,
    /// Where its measurement window starts (the previous scrape of a counter).
    pub since: Instant,
}

/// A pushed load.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedLoad {
    /// The load.
    pub value: f64,
    /// Unix time after which it lapses.
    pub expires_at: u64,
    /// Who pushed it.
    pub source: String,
    /// When it arrived.
    pub at: Instant,
}

/// Everything known of one node's load.
#[derive(Debug, Clone, Default)]
pub struct NodeLoad {
    /// The last good scraped reading.
    pub scraped: Option<Reading>,
    /// The pushed load.
    pub pushed: Option<PushedLoad>,
    /// The last scrape's error, if it failed (cleared by a good one).
    pub error: Option<MeterError>,
    /// How long a scraped reading stays valid.
    pub stale_after: Option<Duration>,
    /// The budget of the node's "no reading" lines: a source that alternates between failing
    /// and not causes at most a few a minute.
    pub(crate) log: std::sync::Arc<crate::log_limit::LogLimits>,
}

/// Which load counts for a node, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadStatus {
    /// A pushed load.
    Pushed(f64, Instant),
    /// A scraped reading.
    Scraped(f64, Instant),
    /// The last reading is older than the stale limit.
    Stale(Duration),
    /// The scrapes fail, no valid reading.
    Failing(MeterError),
    /// Nothing known yet.
    Unknown,
}

impl LoadStatus {
    /// The load and the start of its measurement window, when valid.
    pub fn load(&self) -> Option<(f64, Instant)> {
        match *self {
            LoadStatus::Pushed(v, t) | LoadStatus::Scraped(v, t) => Some((v, t)),
            _ => None,
        }
    }
}

impl NodeLoad {
    /// The load that counts at `now` (`unix`: the same instant in Unix seconds).
    pub fn status(&self, now: Instant, unix: u64) -> LoadStatus {
        if let Some(p) = &self.pushed
            && p.expires_at > unix
        {
            return LoadStatus::Pushed(p.value, p.at);
        }
        match (&self.scraped, &self.error) {
            (Some(r), _)
                if now.duration_since(r.at) <= self.stale_after.unwrap_or(Duration::MAX) =>
            {
                LoadStatus::Scraped(r.value, r.since)
            }
            (_, Some(e)) => LoadStatus::Failing(e.clone()),
            (Some(r), None) => LoadStatus::Stale(now.duration_since(r.at)),
            (None, None) => LoadStatus::Unknown,
        }
    }
}

/// The controller's state of one service.
#[derive(Debug, Default, Clone)]
pub struct ServiceState {
    /// Weight factor by node name.
    pub factors: BTreeMap<String, f64>,
    /// Overflow fraction by region name.
    pub overflow: BTreeMap<String, f64>,
    /// The last step.
    pub last_step: Option<Instant>,
    /// The last step that changed anything.
    pub last_change: Option<Instant>,
    /// Nodes up at the last step.
    up: BTreeSet<String>,
    /// Nodes with a valid load at the last step.
    valid: BTreeSet<String>,
    /// Each node's last valid load.
    last_load: BTreeMap<String, f64>,
    /// Loads of nodes that went down, until they have landed on the others.
    pending: BTreeMap<String, (f64, Instant)>,
    /// Nodes that came back up, and when: their clients return over one TTL.
    returned: BTreeMap<String, Instant>,
}

/// Loads and controller states.
#[derive(Debug, Default)]
pub struct Capacity {
    /// Loads by node name.
    pub loads: BTreeMap<String, NodeLoad>,
    /// Controller states by service (its first name).
    pub services: BTreeMap<String, ServiceState>,
    /// Shares carried from a previous process (`ctl replace`) are kept as they are until
    /// every node with a load source has a reading again, or until this time.
    pub hold_until: Option<Instant>,
}

/// How long carried shares are held at most while the first readings arrive.
pub const CARRIED_HOLD: Duration = Duration::from_secs(30);

/// Why a pushed load is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum PushError {
    /// NaN, infinite, negative or above [`MAX_LOAD`].
    BadValue(f64),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::BadValue(v) => write!(
                f,
                "load {v} is not a load: it must be a finite number from 0 to {MAX_LOAD:e}"
            ),
        }
    }
}

/// Checks a pushed load value.
pub fn check_push(value: f64) -> Result<(), PushError> {
    if value.is_finite() && (0.0..=MAX_LOAD).contains(&value) {
        Ok(())
    } else {
        Err(PushError::BadValue(value))
    }
}

/// The regions of `s` as the controller sees them: their members, whether a chain uses
/// them and what follows them (fixed at compile time in `steer`).
fn regions_of(s: &Service, steer: &crate::snapshot::Steering) -> Vec<RegionIn> {
    s.regions
        .iter()
        .enumerate()
        .map(|(i, r)| RegionIn {
            members: r.members.iter().map(|&(n, _)| n).collect(),
            next: steer.next(i).to_vec(),
            used: steer.used(i),
        })
        .collect()
}

impl Capacity {
    /// Follows a new snapshot: the stale limit of each scraped node, and forgets loads and
    /// states of nodes and services that left the maps.
    pub fn track(&mut self, snap: &Snapshot) {
        let names: BTreeSet<&str> = snap.nodes.iter().map(|n| n.name.as_str()).collect();
        self.loads.retain(|n, _| names.contains(n.as_str()));
        for n in &snap.nodes {
            if let Some(src) = &n.load {
                self.loads.entry(n.name.clone()).or_default().stale_after = Some(src.stale);
            } else if let Some(l) = self.loads.get_mut(&n.name) {
                l.scraped = None;
                l.error = None;
            }
        }
        let services: BTreeSet<&str> = snap
            .services
            .iter()
            .filter(|s| s.steering.is_some())
            .filter_map(|s| s.names.first().map(String::as_str))
            .collect();
        self.services.retain(|n, _| services.contains(n.as_str()));
    }

    /// Writes every steered service's factors and overflow fractions into `snap`.
    pub fn apply(&self, snap: &Snapshot) {
        for s in &snap.services {
            let Some(steer) = &s.steering else { continue };
            let state = s.names.first().and_then(|n| self.services.get(n));
            for (i, n) in snap.nodes.iter().enumerate() {
                let f = state.and_then(|st| st.factors.get(&n.name)).copied();
                steer.set_factor(i, f.unwrap_or(1.0));
            }
            for (i, r) in s.regions.iter().enumerate() {
                let f = state.and_then(|st| st.overflow.get(&r.name)).copied();
                steer.set_overflow(i, f.unwrap_or(0.0));
            }
        }
    }

    /// The load status of node `name` now.
    pub fn status_now(&self, name: &str) -> LoadStatus {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.status(name, Instant::now(), unix)
    }

    /// The load status of node `name`.
    pub fn status(&self, name: &str, now: Instant, unix: u64) -> LoadStatus {
        self.loads
            .get(name)
            .map_or(LoadStatus::Unknown, |l| l.status(now, unix))
    }

    /// Records a scrape of node `name`: a reading, or why there is none.
    pub fn record_scrape(&mut self, name: &str, result: Result<Reading, MeterError>) {
        let l = self.loads.entry(name.to_string()).or_default();
        match result {
            Ok(r) => {
                l.scraped = Some(r);
                l.error = None;
            }
            // A counter's first scrape or a reset is no fault of the source.
            Err(MeterError::Warming) => {}
            Err(e) => {
                let same = l
                    .error
                    .as_ref()
                    .is_some_and(|old| std::mem::discriminant(old) == std::mem::discriminant(&e));
                if !same {
                    crate::log_limit::limited!(l.log, warn, "load source: no reading", node = %name.escape_debug(), error = %e);
                }
                l.error = Some(e);
            }
        }
    }

    /// Records a pushed load.
    pub fn push(&mut self, name: &str, value: f64, expires_at: u64, source: &str, now: Instant) {
        self.loads.entry(name.to_string()).or_default().pushed = Some(PushedLoad {
            value,
            expires_at,
            source: source.to_string(),
            at: now,
        });
    }

    /// Takes a controller step for every steered service of `snap` that is due, and writes
    /// the results into it. Returns true when anything changed.
    pub fn step(&mut self, snap: &Snapshot, now: Instant, unix: u64) -> bool {
        if let Some(until) = self.hold_until {
            let waiting = snap.nodes.iter().any(|n| {
                n.load.is_some()
                    && self
                        .loads
                        .get(&n.name)
                        .is_none_or(|l| l.status(now, unix).load().is_none())
            });
            if waiting && now < until {
                return false;
            }
            self.hold_until = None;
        }
        let mut changed = false;
        for s in &snap.services {
            let (Some(steer), Some(name)) = (&s.steering, s.names.first()) else {
                continue;
            };
            let state = self.services.entry(name.clone()).or_default();
            changed |= step_service(&self.loads, state, snap, s, steer, now, unix);
        }
        changed
    }
}

/// What the controller sees of one service's nodes at one tick.
struct Observed {
    /// Per node of the snapshot (default for nodes outside the service's chains).
    nodes: Vec<NodeIn>,
    /// Nodes of the service's chains in the snapshot.
    in_service: Vec<bool>,
    /// Nodes up.
    up: BTreeSet<String>,
    /// Nodes up with a valid load.
    valid: BTreeSet<String>,
    /// Every load used was measured a TTL after the last change.
    settled: bool,
}

/// Reads the nodes of service `s` (chains `regions`): state, capacity, load, and whether
/// every load is evidence of the last change; remembers each up node's last valid load.
fn observe(
    loads: &BTreeMap<String, NodeLoad>,
    state: &mut ServiceState,
    snap: &Snapshot,
    regions: &[RegionIn],
    ttl: Duration,
    now: Instant,
    unix: u64,
) -> Observed {
    let mut o = Observed {
        nodes: vec![NodeIn::default(); snap.nodes.len()],
        in_service: vec![false; snap.nodes.len()],
        up: BTreeSet::new(),
        valid: BTreeSet::new(),
        settled: true,
    };
    for r in regions.iter().filter(|r| r.used) {
        for &n in &r.members {
            o.in_service[n] = true;
        }
    }
    for (i, n) in snap.nodes.iter().enumerate() {
        if !o.in_service[i] {
            continue;
        }
        let is_up = snap.health.get(i) == State::Up;
        let status = loads
            .get(&n.name)
            .map_or(LoadStatus::Unknown, |l| l.status(now, unix));
        let load = status.load();
        if let (true, Some((_, since))) = (is_up, load)
            && let Some(t) = state.last_change
            && since < t + ttl
        {
            o.settled = false;
        }
        if is_up {
            o.up.insert(n.name.clone());
            if let Some((v, _)) = load {
                state.last_load.insert(n.name.clone(), v);
                o.valid.insert(n.name.clone());
            }
        }
        o.nodes[i] = NodeIn {
            up: is_up,
            capacity: n.capacity.unwrap_or(0.0),
            load: load.map(|(v, _)| v),
            pending: 0.0,
            settling: false,
            local_only: n.local_bit.is_some(),
        };
    }
    o
}

/// One tick of the controller for service `s`: a step when one is due, its result written
/// into `steer` and `state`. True when a share changed.
fn step_service(
    loads: &BTreeMap<String, NodeLoad>,
    state: &mut ServiceState,
    snap: &Snapshot,
    s: &Service,
    steer: &crate::snapshot::Steering,
    now: Instant,
    unix: u64,
) -> bool {
    let settings = steer.settings;
    let ttl = Duration::from_secs(s.ttl as u64);
    let regions = regions_of(s, steer);
    let Observed {
        mut nodes,
        in_service,
        up,
        valid,
        settled,
    } = observe(loads, state, snap, &regions, ttl, now, unix);
    // The first look at a service (at start, or with shares carried by `ctl replace`) records
    // who is up and starts the evidence clock: nothing has changed yet.
    if state.last_step.is_none() && state.up.is_empty() {
        state.up = up;
        state.valid = valid;
        state.last_step = Some(now);
        state.last_change = Some(now);
        return false;
    }
    // A node that went down: the load it carried is about to land on the others. A node
    // whose load became valid or invalid is an event too (the static weight applies at once).
    let membership = up != state.up;
    let event = membership || valid != state.valid;
    state.valid = valid;
    for gone in state.up.difference(&up) {
        if let Some(&l) = state.last_load.get(gone) {
            state.pending.insert(gone.clone(), (l, now + ttl));
        }
    }
    state
        .pending
        .retain(|n, (_, until)| *until > now && !up.contains(n));
    if !state.up.is_empty() {
        for back in up.difference(&state.up) {
            state.returned.insert(back.clone(), now);
        }
    }
    state.returned.retain(|n, _| up.contains(n));
    for (i, n) in snap.nodes.iter().enumerate() {
        // Pending loads count only in the step a failure triggers: a later step waits for
        // readings taken after they landed, which carry them already.
        if event && let Some(&(l, _)) = state.pending.get(&n.name) {
            nodes[i].pending = l;
        }
        // Back from down: settling until a load measured a TTL after its return. Without a
        // valid load at all it is answered by its static weight instead.
        if let Some(&at) = state.returned.get(&n.name) {
            let st = loads.get(&n.name).map(|l| l.status(now, unix));
            match st.as_ref().and_then(|st| st.load()) {
                Some((_, since)) if since < at + ttl => nodes[i].settling = true,
                _ => {
                    state.returned.remove(&n.name);
                }
            }
        }
    }
    state.up = up;
    let due = state
        .last_step
        .is_none_or(|t| now.duration_since(t) >= settings.interval);
    if !(event || due && settled) {
        return false;
    }
    state.last_step = Some(now);
    let before = Shares {
        factors: snap
            .nodes
            .iter()
            .map(|n| state.factors.get(&n.name).copied().unwrap_or(1.0))
            .collect(),
        overflow: s
            .regions
            .iter()
            .map(|r| state.overflow.get(&r.name).copied().unwrap_or(0.0))
            .collect(),
    };
    let after = controller::step(&settings, &regions, &nodes, &before, settled);
    // A node going down or coming back changes where clients are, like a step: the next
    // settled step waits for readings a TTL after it.
    if membership {
        state.last_change = Some(now);
    }
    if after == before {
        return false;
    }
    state.last_change = Some(now);
    let name = s.names.first().map_or("", String::as_str);
    for (i, r) in s.regions.iter().enumerate() {
        let (b, a) = (before.overflow[i], after.overflow[i]);
        if b == 0.0 && a > 0.0 {
            tracing::warn!(service = %name, region = %r.name, overflow = a, "region at capacity: overflowing to the next region");
        } else if b > 0.0 && a == 0.0 {
            tracing::info!(service = %name, region = %r.name, "region no longer overflowing");
        }
        state.overflow.insert(r.name.clone(), a);
        steer.set_overflow(i, a);
    }
    for (i, n) in snap.nodes.iter().enumerate() {
        if in_service[i] {
            state.factors.insert(n.name.clone(), after.factors[i]);
            steer.set_factor(i, after.factors[i]);
        }
    }
    true
}

/// A node's share of its region in a steered service: its effective weight over the sum of
/// the up members' (0 when it is not up). Local-only members count only in their own share
/// (the region's other clients cannot get them).
pub fn share(snap: &Snapshot, s: &Service, region: usize, node: usize) -> f64 {
    let Some(steer) = &s.steering else { return 0.0 };
    let w = |n: usize, w: u32| {
        let local = snap.nodes[n].local_bit.is_some() && n != node;
        if snap.health.get(n) == State::Up && !local {
            w as f64 * steer.factor(n)
        } else {
            0.0
        }
    };
    let members = &s.regions[region].members;
    let total: f64 = members.iter().map(|&(n, wt)| w(n, wt)).sum();
    let mine: f64 = members
        .iter()
        .filter(|&&(n, _)| n == node)
        .map(|&(n, wt)| w(n, wt))
        .sum();
    if total > 0.0 { mine / total } else { 0.0 }
}
