//! A service's answer logic over its compiled table: [`Service::route`] (one lookup: the
//! decision and the ECS scope), [`Service::pick`] (nodes by weight and health), and the one
//! place that decides an answer's scope and TTL ([`Service::scope`], [`Service::ttl`]), used by
//! real answers and by explanations alike.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{
    AllDown, BEYOND, Decision, MAX_ANSWERS, NO_ROUTE, Node, Region, RouteTable, RuleInfo, Steering,
    V6Table,
};
use crate::hash::mix;
use crate::health::{HealthTable, State};

/// A redirecting service: hostnames answered from the maps.
#[derive(Debug)]
pub struct Service {
    /// The hostnames, as configured (first one is the service's name in messages).
    pub names: Vec<String>,
    /// Answer TTL.
    pub ttl: u32,
    /// TTL while the chosen region is degraded.
    pub degraded_ttl: u32,
    /// Addresses per answer.
    pub answers: usize,
    /// Spread clients over a region's nodes by weight instead of taking the heaviest.
    pub spread: bool,
    /// Use the EDNS Client Subnet when present.
    pub use_ecs: bool,
    /// All-down policy.
    pub all_down: AllDown,
    /// Last-resort nodes with weights.
    pub last_resort: Vec<(usize, u32)>,
    /// Regions.
    pub regions: Vec<Region>,
    /// Rules, for explanations.
    pub rules: Vec<RuleInfo>,
    /// Distinct decisions.
    pub decisions: Vec<Decision>,
    /// IPv4 route table.
    pub v4: RouteTable<u32>,
    /// IPv6 route table.
    pub v6: V6Table,
    /// Round-robin counter for the last-resort set.
    pub rr: AtomicU64,
    /// `spread: capacity`: the weight factors and overflow fractions the capacity controller
    /// publishes (then `spread` is true as well).
    pub steering: Option<Steering>,
    /// Per region: every member is up. Written with the node states ([`Service::note_health`],
    /// beside the health table), read by [`Service::pick`] to answer a decision's usual pick.
    pub region_up: Box<[AtomicBool]>,
}

/// The result of `Service::pick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pick {
    /// Chosen node indices.
    pub nodes: [usize; MAX_ANSWERS],
    /// How many of `nodes` are used.
    pub count: usize,
    /// The region the nodes came from (None for last resort or nothing).
    pub region: Option<usize>,
    /// The chosen region is not the first, or some of its nodes are not up.
    pub degraded: bool,
    /// Answer SERVFAIL.
    pub servfail: bool,
    /// The answer came from the all-down policy.
    pub all_down: bool,
    /// The region of the client's chain that sent the client on for capacity (overflow).
    pub overflowed: Option<usize>,
}

/// How a service answered one query (no allocation: indices into the snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceAnswer {
    /// The service's index in the snapshot.
    pub service: usize,
    /// The rule that decided (index into the service's rules), when the table had one.
    pub rule: Option<usize>,
    /// The region the nodes came from (None: last resort or nothing).
    pub region: Option<usize>,
    /// The nodes answered (indices into the snapshot's nodes).
    pub nodes: [usize; MAX_ANSWERS],
    /// How many of `nodes` are used.
    pub count: usize,
    /// The region is not the first of the client's chain.
    pub fallback: bool,
    /// The answer is degraded (shorter TTL).
    pub degraded: bool,
    /// The all-down policy answered.
    pub all_down: bool,
    /// The decision was made for the ECS address (the scope applies).
    pub ecs_used: bool,
    /// The ECS scope returned (0 without ECS).
    pub scope: u8,
    /// The TTL of the addresses.
    pub ttl: u32,
}

impl ServiceAnswer {
    /// An answer of `service` with nothing decided yet.
    pub fn new(service: usize, ecs_used: bool) -> ServiceAnswer {
        ServiceAnswer {
            service,
            rule: None,
            region: None,
            nodes: [0; MAX_ANSWERS],
            count: 0,
            fallback: false,
            degraded: false,
            all_down: false,
            ecs_used,
            scope: 0,
            ttl: 0,
        }
    }

    /// The nodes answered.
    pub fn nodes(&self) -> &[usize] {
        &self.nodes[..self.count]
    }
}

impl Pick {
    /// No node chosen (and no usual pick, in [`Decision::usual`]).
    pub const fn empty() -> Pick {
        Pick {
            nodes: [0; MAX_ANSWERS],
            count: 0,
            region: None,
            degraded: true,
            servfail: false,
            all_down: false,
            overflowed: None,
        }
    }

    /// The chosen nodes.
    pub fn nodes(&self) -> &[usize] {
        &self.nodes[..self.count]
    }
}

impl Service {
    /// The ECS scope of an answer for `client` from a route-table block of `block` bits: the
    /// block itself, widened to the client's /24 or /48 when nodes are spread per client.
    #[inline]
    pub fn scope(&self, block: u8, client: IpAddr) -> u8 {
        if self.spread {
            block.max(if client.is_ipv4() { 24 } else { 48 })
        } else {
            block
        }
    }

    /// The TTL of an answer with `pick`: shorter while the answer is degraded.
    #[inline]
    pub fn ttl(&self, pick: &Pick) -> u32 {
        if pick.degraded {
            self.degraded_ttl
        } else {
            self.ttl
        }
    }

    /// The decision and prefix length of the block holding `addr`.
    #[inline(always)]
    pub fn route(&self, addr: IpAddr) -> Option<(&Decision, u8)> {
        let (d, len) = match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a))?,
            IpAddr::V6(a) => self.v6.lookup(u128::from(a))?,
        };
        Some((self.decisions.get(d as usize)?, len))
    }

    /// The directory word `route(addr)` reads first (see [`RouteTable::directory_entry`]).
    #[inline]
    pub fn directory_entry(&self, addr: IpAddr) -> Option<&u64> {
        match addr {
            IpAddr::V4(a) => self.v4.directory_entry(u32::from(a)),
            IpAddr::V6(a) => self.v6.directory_entry(u128::from(a)),
        }
    }

    /// Reads the first block `route(addr)` searches (see [`RouteTable::warm_blocks`]).
    #[inline]
    pub fn warm_blocks(&self, addr: IpAddr) -> u64 {
        match addr {
            IpAddr::V4(a) => self.v4.warm_blocks(u32::from(a)),
            IpAddr::V6(a) => self.v6.warm_blocks(u128::from(a)),
        }
    }

    /// Chooses the nodes for a client with `decision`, answering `v6` (AAAA) or A.
    /// `client_key` identifies the client's /24 or /48 for `spread` (and for the capacity
    /// steering's weight factors and overflow of a `spread: capacity` service).
    ///
    /// While every member of the chain's first region is up, the answer is the decision's
    /// usual pick, decided when the service was compiled (one flag read instead of choosing).
    #[inline]
    pub fn pick(
        &self,
        decision: &Decision,
        v6: bool,
        client_key: u64,
        nodes: &[Node],
        health: &HealthTable,
    ) -> Pick {
        let mut chosen = None;
        *self.pick_in(decision, v6, client_key, nodes, health, &mut chosen)
    }

    /// [`Service::pick`] without copying the usual pick: it is answered by reference, and a
    /// pick that has to be made is made into `chosen`.
    #[inline]
    pub fn pick_in<'a>(
        &self,
        decision: &'a Decision,
        v6: bool,
        client_key: u64,
        nodes: &[Node],
        health: &HealthTable,
        chosen: &'a mut Option<Pick>,
    ) -> &'a Pick {
        let usual = &decision.usual[usize::from(v6)];
        if usual.count > 0
            && let Some(&first) = decision.chain.first()
            && self
                .region_up
                .get(first)
                .is_some_and(|up| up.load(Ordering::Relaxed))
        {
            return usual;
        }
        chosen.insert(self.pick_with(
            decision,
            v6,
            client_key,
            nodes,
            health,
            self.steering.as_ref(),
        ))
    }

    /// Decides each decision's usual pick ([`Decision::usual`]): what choosing (`pick_with`)
    /// gives for it with every node up (`all_up`), where that comes from the chain's first
    /// region undegraded. Only a service that neither spreads clients nor is steered has one:
    /// otherwise the answer depends on the client or on the controller's shares.
    pub fn settle_usual(&mut self, nodes: &[Node], all_up: &HealthTable) {
        if self.spread || self.steering.is_some() {
            return;
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        for d in &mut decisions {
            for v6 in [false, true] {
                let p = self.pick_with(d, v6, 0, nodes, all_up, None);
                let usual = p.count > 0
                    && p.region == d.chain.first().copied()
                    && !(p.degraded || p.servfail || p.all_down)
                    && p.overflowed.is_none();
                d.usual[usize::from(v6)] = if usual { p } else { Pick::empty() };
            }
        }
        self.decisions = decisions;
    }

    /// Forgets which regions are all up (called before the node states are written, so that
    /// no query answers a usual pick with a node already written down: until
    /// [`Service::note_health`], queries choose).
    pub fn forget_health(&self) {
        for up in self.region_up.iter() {
            up.store(false, Ordering::Release);
        }
    }

    /// Notes, for each region, whether every member is up in `health` (called after the node
    /// states are written into it).
    pub fn note_health(&self, health: &HealthTable) {
        for (region, up) in self.regions.iter().zip(self.region_up.iter()) {
            let all = region
                .members
                .iter()
                .all(|&(n, _)| health.get(n) == State::Up);
            up.store(all, Ordering::Relaxed);
        }
    }

    /// What [`Service::pick`] would choose with static weights and no overflow: for
    /// explanations of what capacity steering changed.
    pub fn pick_unsteered(
        &self,
        decision: &Decision,
        v6: bool,
        client_key: u64,
        nodes: &[Node],
        health: &HealthTable,
    ) -> Pick {
        self.pick_with(decision, v6, client_key, nodes, health, None)
    }

    #[inline(always)]
    fn pick_with(
        &self,
        decision: &Decision,
        v6: bool,
        client_key: u64,
        nodes: &[Node],
        health: &HealthTable,
        steer: Option<&Steering>,
    ) -> Pick {
        let eligible = |n: usize| {
            let node = &nodes[n];
            !node.records(v6).is_empty()
                && node
                    .local_bit
                    .is_none_or(|b| decision.local_mask & (1u64 << b) != 0)
        };
        let by = By {
            client_key,
            eligible: &eligible,
            health,
            steer,
            nodes,
        };
        // A region that overflows sends this client on to the next region of the chain; when
        // no later region has a node up, the client stays with the region after all.
        let mut overflowed = None;
        for wanted in [State::Up, State::Drain] {
            for (pos, &r) in decision.chain.iter().enumerate() {
                if wanted == State::Up
                    && pos + 1 < decision.chain.len()
                    && let Some(s) = steer
                    && s.overflows(r, client_key)
                {
                    overflowed.get_or_insert(pos);
                    continue;
                }
                let region = &self.regions[r];
                let mut pick = self.choose(region, decision, wanted, &by);
                if pick.count > 0 {
                    pick.region = Some(r);
                    pick.degraded = pos > 0
                        || wanted == State::Drain
                        || region.members.iter().any(|&(n, _)| {
                            health.get(n) != State::Up
                                && eligible(n)
                                && !beyond(region, decision, n)
                        });
                    pick.overflowed = overflowed.map(|p| decision.chain[p]);
                    return pick;
                }
            }
            if let Some(pos) = overflowed.take() {
                let r = decision.chain[pos];
                let region = &self.regions[r];
                let mut pick = self.choose(region, decision, wanted, &by);
                if pick.count > 0 {
                    pick.region = Some(r);
                    pick.degraded = true;
                    return pick;
                }
            }
        }
        self.all_down_pick(decision, &by)
    }

    /// What the all-down policy answers when no node of `decision`'s chain is usable.
    #[cold]
    fn all_down_pick(&self, decision: &Decision, by: &By<'_>) -> Pick {
        let eligible = by.eligible;
        let mut pick = Pick::empty();
        pick.all_down = true;
        match self.all_down {
            AllDown::AnyRegion => {
                for wanted in [State::Up, State::Drain] {
                    for (r, region) in self.regions.iter().enumerate() {
                        if decision.chain.contains(&r) {
                            continue;
                        }
                        let mut p = self.choose(region, decision, wanted, by);
                        if p.count > 0 {
                            p.region = Some(r);
                            p.degraded = true;
                            p.all_down = true;
                            return p;
                        }
                    }
                }
            }
            AllDown::LastResort => {
                let total: u64 = self
                    .last_resort
                    .iter()
                    .filter(|&&(n, _)| eligible(n))
                    .map(|&(_, w)| w as u64)
                    .sum();
                if total > 0 {
                    let want = self.answers.min(MAX_ANSWERS);
                    // Stride through the weight space with a step coprime to the total, near
                    // the golden ratio: every `total` queries visit each unit of weight once, and
                    // consecutive queries alternate between nodes.
                    let mut step = (total * 618 / 1000).max(1);
                    while gcd(step, total) != 1 {
                        step -= 1;
                    }
                    let n = self.rr.fetch_add(1, Ordering::Relaxed);
                    let mut tick = (n % total) * step % total;
                    let start = self
                        .last_resort
                        .iter()
                        .position(|&(n, w)| {
                            if !eligible(n) {
                                return false;
                            }
                            if tick < w as u64 {
                                true
                            } else {
                                tick -= w as u64;
                                false
                            }
                        })
                        .unwrap_or(0);
                    let len = self.last_resort.len();
                    for k in 0..len {
                        let (n, _) = self.last_resort[(start + k) % len];
                        if pick.count < want && eligible(n) {
                            pick.nodes[pick.count] = n;
                            pick.count += 1;
                        }
                    }
                }
            }
            AllDown::ServFail => pick.servfail = true,
            AllDown::Empty => {}
        }
        pick
    }

    /// Up to `answers` nodes of `region` in state `wanted`: for a proximity or distance
    /// region, the nearest first (by `decision`'s ranks; members [`BEYOND`] the limit are
    /// left out), by weight or spread within each rank.
    fn choose(&self, region: &Region, decision: &Decision, wanted: State, by: &By<'_>) -> Pick {
        let want = self.answers.min(MAX_ANSWERS);
        let (eligible, health) = (by.eligible, by.health);
        if !region.ranked() || decision.ranks.is_empty() {
            return self.choose_n(region, wanted, by, want);
        }
        let rank = |n: usize| decision.ranks.get(n).copied().unwrap_or(NO_ROUTE);
        let mut pick = Pick::empty();
        let mut floor: u16 = 0;
        while pick.count < want {
            // The nearest rank not taken yet among the usable members.
            let Some(tier) = region
                .members
                .iter()
                .filter(|&&(n, _)| {
                    eligible(n) && health.get(n) == wanted && !beyond(region, decision, n)
                })
                .map(|&(n, _)| rank(n))
                .filter(|&r| r as u16 >= floor)
                .min()
            else {
                break;
            };
            let in_tier = |n: usize| eligible(n) && rank(n) == tier;
            let tier_by = By {
                eligible: &in_tier,
                ..*by
            };
            let more = self.choose_n(region, wanted, &tier_by, want - pick.count);
            for &n in more.nodes() {
                pick.nodes[pick.count] = n;
                pick.count += 1;
            }
            floor = tier as u16 + 1;
        }
        pick
    }

    /// Up to `want` nodes of `region` in state `wanted`, by weight (or spread by client).
    #[inline(always)]
    fn choose_n(&self, region: &Region, wanted: State, by: &By<'_>, want: usize) -> Pick {
        let (eligible, health) = (by.eligible, by.health);
        let mut pick = Pick::empty();
        if !self.spread {
            for &(n, _) in &region.members {
                if eligible(n) && health.get(n) == wanted {
                    pick.nodes[pick.count] = n;
                    pick.count += 1;
                    if pick.count == want {
                        break;
                    }
                }
            }
            return pick;
        }
        // Weighted rendezvous hashing: each (client, node) pair gets a score; the highest
        // scores win. A client keeps its node while that node is healthy, and when a node
        // goes down only its own clients move.
        let mut scores = [0f64; MAX_ANSWERS];
        for &(n, w) in &region.members {
            if !eligible(n) || health.get(n) != wanted || w == 0 {
                continue;
            }
            let w = match by.steer {
                Some(s) => w as f64 * s.factor(n),
                None => w as f64,
            };
            // By the node's name, not its position: adding or moving other nodes in the maps
            // moves no client.
            let h = mix(by.client_key ^ by.nodes[n].key);
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = w / -u.ln();
            // Insert into the top-`want` list.
            let mut i = pick.count;
            if i < want {
                pick.count += 1;
            } else if score <= scores[want - 1] {
                continue;
            } else {
                i = want - 1;
            }
            while i > 0 && scores[i - 1] < score {
                scores[i] = scores[i - 1];
                pick.nodes[i] = pick.nodes[i - 1];
                i -= 1;
            }
            scores[i] = score;
            pick.nodes[i] = n;
        }
        pick
    }
}

/// What a pick chooses by, besides the region: the client, which nodes may serve it, their
/// health, and the capacity steering in force (none: static weights).
#[derive(Clone, Copy)]
struct By<'a> {
    client_key: u64,
    eligible: &'a dyn Fn(usize) -> bool,
    health: &'a HealthTable,
    steer: Option<&'a Steering>,
    nodes: &'a [Node],
}

/// Whether `decision` leaves member `n` of `region` out: past a distance region's limit.
#[inline(always)]
fn beyond(region: &Region, decision: &Decision, n: usize) -> bool {
    region.distance().is_some() && decision.ranks.get(n) == Some(&BEYOND)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The key of a client's /24 (IPv4) or /48 (IPv6), for spreading.
pub fn client_key(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(a) => (u32::from(a) >> 8) as u64,
        IpAddr::V6(a) => (1 << 63) | (u128::from(a) >> 80) as u64,
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
