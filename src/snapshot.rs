//! The immutable state the answer path reads: zones, services with their compiled route
//! tables, nodes with answers encoded ahead of time, and the health table.
//!
//! One [`Snapshot`] is built by [`crate::compile`] and published through an `ArcSwap`; the
//! answer path loads it once per query. `route` is one binary search over a flat, sorted,
//! non-overlapping table of CIDR blocks, which yields both the decision (rule and region chain)
//! and the ECS scope. `pick` walks the chain's nodes, pre-sorted by weight, and reads health.
//! Nothing here allocates, locks or does I/O on the query path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::health::{HealthTable, State};
use crate::zone::Zone;

/// The most addresses a service can answer with.
pub const MAX_ANSWERS: usize = 8;

/// A node of the maps, ready to answer.
#[derive(Debug, Clone)]
pub struct Node {
    /// Name, unique across the maps.
    pub name: String,
    /// IPv4 addresses.
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub v6: Vec<Ipv6Addr>,
    /// Default weight.
    pub weight: u32,
    /// Only clients of the node's own networks may get it; the bit in `Decision::local_mask`.
    pub local_bit: Option<u32>,
    /// A record bodies (TTL patched per answer).
    pub a: Vec<Box<[u8]>>,
    /// AAAA record bodies.
    pub aaaa: Vec<Box<[u8]>>,
    /// The health check, if any.
    pub check: Option<crate::probe::Check>,
}

impl Node {
    /// The encoded records of the family of `qtype` (A or AAAA).
    pub fn records(&self, v6: bool) -> &[Box<[u8]>] {
        if v6 { &self.aaaa } else { &self.a }
    }
}

/// A region: nodes with weights, heaviest first (ties by name).
#[derive(Debug, Clone)]
pub struct Region {
    /// Region name.
    pub name: String,
    /// (node index, weight), sorted by weight descending then node name.
    pub members: Vec<(usize, u32)>,
}

/// What a route lookup decides for a block of addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Index into `Service::rules` of the rule that matched.
    pub rule: usize,
    /// Region indices, in order of preference.
    pub chain: Box<[usize]>,
    /// Bit i set: local-only node with `local_bit == i` may serve these clients.
    pub local_mask: u64,
}

/// What happens when no node in the chain is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Try every other region of the service, in declaration order.
    AnyRegion,
    /// Weighted round robin over the last-resort nodes, whatever their health.
    LastResort,
    /// Answer SERVFAIL.
    ServFail,
    /// Answer NOERROR with no address.
    Empty,
}

/// A rule as the explanation shows it.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// `prefix`, `asn`, `subdivision`, `country`, `continent` or `default`.
    pub kind: &'static str,
    /// Where it is: `maps/x.yaml:12:5`.
    pub location: String,
}

/// An address as a route table key.
pub trait RouteKey: Ord + Copy {
    /// The top 16 bits.
    fn top16(self) -> usize;
    /// The first address whose top 16 bits are `k`.
    fn from_top16(k: usize) -> Self;
}

impl RouteKey for u32 {
    #[inline]
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
    fn from_top16(k: usize) -> Self {
        (k as u32) << 16
    }
}

impl RouteKey for u128 {
    #[inline]
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
    fn from_top16(k: usize) -> Self {
        (k as u128) << 112
    }
}

/// A flat table of non-overlapping CIDR blocks covering the whole address space, with a
/// directory on the top 16 bits. A bucket that lies inside one block holds its answer in the
/// directory itself (one memory access per lookup); other buckets point at their first block
/// and are searched among their own few blocks.
#[derive(Debug, Clone, Default)]
pub struct RouteTable<T> {
    /// (block start, decision << 8 | prefix length), ascending.
    entries: Vec<(T, u32)>,
    /// Per top-16 bucket (65536, plus one past the end): low 32 bits, the index of the block
    /// holding the bucket's first address; bit 63 set when that block covers the whole bucket,
    /// with the packed decision in bits 32..63.
    dir: Vec<u64>,
}

const DIRECT: u64 = 1 << 63;

/// A directory bucket: answered by the directory word, or by a search among these blocks.
enum Bucket<'a, T> {
    Direct(u32),
    Blocks(&'a [(T, u32)]),
}

impl<T: RouteKey> RouteTable<T> {
    /// Adds a block; blocks must come in ascending order and cover the whole space. At most
    /// 2^23 distinct decisions.
    pub fn push(&mut self, start: T, decision: u32, len: u8) {
        self.entries.push((start, (decision << 8) | len as u32));
    }

    /// Builds the directory; call once after the last `push`.
    pub fn finish(&mut self) {
        let block_of = |a: T| self.entries.partition_point(|e| e.0 <= a).saturating_sub(1);
        let firsts: Vec<usize> = (0..65536usize)
            .map(|k| block_of(T::from_top16(k)))
            .collect();
        let last = self.entries.len().saturating_sub(1);
        self.dir = (0..=65536usize)
            .map(|k| {
                if k == 65536 {
                    return last as u64;
                }
                let lo = firsts[k];
                // The bucket lies inside block `lo` when no other block starts within it.
                let whole = match self.entries.get(lo + 1) {
                    None => true,
                    Some(next) => k + 1 < 65536 && next.0 >= T::from_top16(k + 1),
                };
                match (whole, self.entries.get(lo)) {
                    (true, Some(e)) => DIRECT | ((e.1 as u64) << 32) | lo as u64,
                    _ => lo as u64,
                }
            })
            .collect();
    }

    /// The directory word [`lookup`](Self::lookup) of `addr` reads first. A batch of
    /// queries reads these in a tight loop before answering, so that their cache misses
    /// overlap.
    #[inline]
    pub fn directory_entry(&self, addr: T) -> Option<&u64> {
        self.dir.get(addr.top16())
    }

    /// Reads the block a binary search for `addr` reads first (nothing when the directory
    /// answers by itself) and returns a value derived from it, for the same purpose as
    /// [`directory_entry`](Self::directory_entry).
    #[inline]
    pub fn warm_blocks(&self, addr: T) -> u64 {
        match self.bucket(addr.top16()) {
            Bucket::Direct(packed) => packed as u64,
            Bucket::Blocks(slice) => slice.get(slice.len() / 2).map_or(0, |e| e.1 as u64),
        }
    }

    /// Where bucket `k`'s answer is: in the directory itself, or among its own blocks.
    #[inline]
    fn bucket(&self, k: usize) -> Bucket<'_, T> {
        match self.dir.get(k) {
            Some(&d) if d & DIRECT != 0 => Bucket::Direct(((d >> 32) & 0x7fff_ffff) as u32),
            Some(&d) => {
                let lo = (d & 0xffff_ffff) as usize;
                let hi = self
                    .dir
                    .get(k + 1)
                    .map(|&n| (n & 0xffff_ffff) as usize + 1)
                    .unwrap_or(self.entries.len());
                Bucket::Blocks(
                    self.entries
                        .get(lo..hi.min(self.entries.len()))
                        .unwrap_or_default(),
                )
            }
            // No directory (an empty table): search everything.
            None => Bucket::Blocks(&self.entries),
        }
    }

    /// Block starts, ascending.
    pub fn starts(&self) -> impl Iterator<Item = T> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    /// The block containing `addr`: (decision index, prefix length).
    #[inline]
    pub fn lookup(&self, addr: T) -> Option<(u32, u8)> {
        let packed = match self.bucket(addr.top16()) {
            Bucket::Direct(packed) => packed,
            Bucket::Blocks(slice) => {
                let i = slice.partition_point(|e| e.0 <= addr);
                slice.get(i.checked_sub(1)?)?.1
            }
        };
        Some((packed >> 8, packed as u8))
    }
}

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
    pub v6: RouteTable<u128>,
    /// Round-robin counter for the last-resort set.
    pub rr: AtomicU64,
}

/// The result of `Service::pick`.
#[derive(Debug, Clone, Copy)]
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
}

impl Pick {
    fn empty() -> Pick {
        Pick {
            nodes: [0; MAX_ANSWERS],
            count: 0,
            region: None,
            degraded: true,
            servfail: false,
            all_down: false,
        }
    }

    /// The chosen nodes.
    pub fn nodes(&self) -> &[usize] {
        &self.nodes[..self.count]
    }
}

impl Service {
    /// The decision and prefix length of the block holding `addr`.
    #[inline]
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
    /// `client_key` identifies the client's /24 or /48 for `spread`.
    pub fn pick(
        &self,
        decision: &Decision,
        v6: bool,
        client_key: u64,
        nodes: &[Node],
        health: &HealthTable,
    ) -> Pick {
        let eligible = |n: usize| {
            let node = &nodes[n];
            !node.records(v6).is_empty()
                && node
                    .local_bit
                    .is_none_or(|b| decision.local_mask & (1u64 << b) != 0)
        };
        for wanted in [State::Up, State::Drain] {
            for (pos, &r) in decision.chain.iter().enumerate() {
                let region = &self.regions[r];
                let mut pick = self.choose(region, wanted, client_key, &eligible, health);
                if pick.count > 0 {
                    pick.region = Some(r);
                    pick.degraded = pos > 0
                        || wanted == State::Drain
                        || region
                            .members
                            .iter()
                            .any(|&(n, _)| eligible(n) && health.get(n) != State::Up);
                    return pick;
                }
            }
        }
        let mut pick = Pick::empty();
        pick.all_down = true;
        match self.all_down {
            AllDown::AnyRegion => {
                for wanted in [State::Up, State::Drain] {
                    for (r, region) in self.regions.iter().enumerate() {
                        if decision.chain.contains(&r) {
                            continue;
                        }
                        let mut p = self.choose(region, wanted, client_key, &eligible, health);
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

    /// Up to `answers` nodes of `region` in state `wanted`.
    fn choose(
        &self,
        region: &Region,
        wanted: State,
        client_key: u64,
        eligible: &dyn Fn(usize) -> bool,
        health: &HealthTable,
    ) -> Pick {
        let mut pick = Pick::empty();
        let want = self.answers.min(MAX_ANSWERS);
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
            let h = mix(client_key ^ mix(n as u64 + 1));
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = w as f64 / -u.ln();
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

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A 64-bit mixer (splitmix64's finaliser).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The key of a client's /24 (IPv4) or /48 (IPv6), for spreading.
pub fn client_key(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(a) => (u32::from(a) >> 8) as u64,
        IpAddr::V6(a) => (1 << 63) | (u128::from(a) >> 80) as u64,
    }
}

/// Settings of the answer path that come from the daemon configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `id.server` / `hostname.bind`.
    pub server_id: Option<String>,
    /// `version.bind`.
    pub version: Option<String>,
    /// UDP payload cap.
    pub udp_payload_max: u16,
    /// `_why` answered.
    pub why_enabled: bool,
    /// Networks allowed to ask `_why` (empty: all).
    pub why_allow: Vec<ip_network::IpNetwork>,
}

/// Everything the answer path reads, immutable once published.
#[derive(Debug)]
pub struct Snapshot {
    /// Zones, longest apex first.
    pub zones: Vec<Zone>,
    /// Services, indexed by `ZoneNode::service`.
    pub services: Vec<Service>,
    /// Nodes of the maps.
    pub nodes: Vec<Node>,
    /// Node health, shared with writers.
    pub health: Arc<HealthTable>,
    /// Answer-path settings.
    pub settings: Settings,
    /// Client data used to build this snapshot, for explanations.
    pub client: Arc<crate::client::ClientData>,
    /// Human-readable versions of the maps and data in force.
    pub versions: String,
}

impl Snapshot {
    /// The zone holding `name` (lowercase wire form): the longest enclosing apex.
    #[inline]
    pub fn zone_for(&self, name: &[u8]) -> Option<&Zone> {
        self.zones
            .iter()
            .find(|z| crate::zone::is_within(name, &z.apex))
    }

    /// A snapshot that serves nothing (used before the first load and in tests).
    pub fn empty() -> Snapshot {
        Snapshot {
            zones: Vec::new(),
            services: Vec::new(),
            nodes: Vec::new(),
            health: Arc::new(HealthTable::new(Vec::new(), State::Up)),
            settings: Settings {
                server_id: None,
                version: None,
                udp_payload_max: 1232,
                why_enabled: false,
                why_allow: Vec::new(),
            },
            client: Arc::new(crate::client::ClientData::default()),
            versions: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, weight: u32) -> Node {
        Node {
            name: name.into(),
            v4: vec![Ipv4Addr::new(192, 0, 2, 1)],
            v6: vec![],
            weight,
            local_bit: None,
            a: vec![crate::zone::body(1, 60, &[192, 0, 2, 1])],
            aaaa: vec![],
            check: None,
        }
    }

    fn service(spread: bool, answers: usize) -> Service {
        Service {
            names: vec!["dl".into()],
            ttl: 60,
            degraded_ttl: 10,
            answers,
            spread,
            use_ecs: true,
            all_down: AllDown::ServFail,
            last_resort: vec![],
            regions: vec![
                Region {
                    name: "r0".into(),
                    members: vec![(0, 100), (1, 50), (2, 50)],
                },
                Region {
                    name: "r1".into(),
                    members: vec![(3, 10)],
                },
            ],
            rules: vec![],
            decisions: vec![],
            v4: RouteTable::default(),
            v6: RouteTable::default(),
            rr: AtomicU64::new(0),
        }
    }

    #[test]
    fn heaviest_healthy_then_fall_through_then_policy() {
        let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
        let health = HealthTable::new((0..4).map(|i| format!("n{i}")).collect(), State::Up);
        let s = service(false, 1);
        let d = Decision {
            rule: 0,
            chain: vec![0, 1].into(),
            local_mask: 0,
        };
        let p = s.pick(&d, false, 0, &nodes, &health);
        assert_eq!(
            (p.nodes(), p.region, p.degraded),
            (&[0][..], Some(0), false)
        );
        health.set(0, State::Down);
        let p = s.pick(&d, false, 0, &nodes, &health);
        assert_eq!((p.nodes(), p.degraded), (&[1][..], true));
        for i in 0..3 {
            health.set(i, State::Down);
        }
        let p = s.pick(&d, false, 0, &nodes, &health);
        assert_eq!((p.nodes(), p.region), (&[3][..], Some(1)));
        health.set(3, State::Down);
        assert!(s.pick(&d, false, 0, &nodes, &health).servfail);
        health.set(2, State::Drain);
        assert_eq!(s.pick(&d, false, 0, &nodes, &health).nodes(), &[2]);
        assert!(
            s.pick(&d, true, 0, &nodes, &health).servfail,
            "no node has IPv6"
        );
    }

    #[test]
    fn spread_is_stable_and_weighted() {
        let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
        let health = HealthTable::new((0..4).map(|i| format!("n{i}")).collect(), State::Up);
        let s = service(true, 1);
        let d = Decision {
            rule: 0,
            chain: vec![0].into(),
            local_mask: 0,
        };
        let mut counts = [0usize; 3];
        for k in 0..20_000u64 {
            let a = s.pick(&d, false, k, &nodes, &health).nodes()[0];
            assert_eq!(a, s.pick(&d, false, k, &nodes, &health).nodes()[0]);
            counts[a] += 1;
        }
        // Weights 100:50:50 → about 50 % / 25 % / 25 %.
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert!((4_000..6_000).contains(&counts[1]), "{counts:?}");
        // Taking node 1 down moves only node 1's clients.
        let before: Vec<usize> = (0..2000)
            .map(|k| s.pick(&d, false, k, &nodes, &health).nodes()[0])
            .collect();
        health.set(1, State::Down);
        for (k, b) in before.iter().enumerate() {
            let now = s.pick(&d, false, k as u64, &nodes, &health).nodes()[0];
            if *b != 1 {
                assert_eq!(now, *b);
            }
        }
        let two = service(true, 2).pick(&d, false, 5, &nodes, &health);
        assert_eq!(two.count, 2);
        assert_ne!(two.nodes[0], two.nodes[1]);
    }

    #[test]
    fn route_table_lookup() {
        let mut t = RouteTable::default();
        let blocks = [
            (0u32, 0),
            (10, 1),
            (20, 2),
            (0x0001_0000, 3),
            (0x0001_0005, 4),
            (0xffff_0000, 5),
            (0xffff_8000, 6),
        ];
        for (s, d) in blocks {
            t.push(s, d, 8);
        }
        t.finish();
        assert_eq!(t.lookup(0), Some((0, 8)));
        assert_eq!(t.lookup(15), Some((1, 8)));
        assert_eq!(t.lookup(0xffff), Some((2, 8)));
        assert_eq!(t.lookup(0x0001_0004), Some((3, 8)));
        assert_eq!(t.lookup(0x0001_0005), Some((4, 8)));
        assert_eq!(t.lookup(0x0002_0000), Some((4, 8)), "a direct bucket");
        assert_eq!(t.lookup(0xfffe_ffff), Some((4, 8)));
        assert_eq!(t.lookup(0xffff_7fff), Some((5, 8)));
        assert_eq!(t.lookup(u32::MAX), Some((6, 8)));
        // Against a plain search, everywhere near a boundary.
        for (s, _) in blocks {
            for a in [s.saturating_sub(1), s, s.saturating_add(1)] {
                let want = blocks.iter().rev().find(|b| b.0 <= a).unwrap().1;
                assert_eq!(t.lookup(a), Some((want, 8)), "{a:#x}");
            }
        }
        // Unfinished tables still answer (by binary search).
        let mut u = RouteTable::default();
        u.push(0u128, 7, 0);
        assert_eq!(u.lookup(u128::MAX), Some((7, 0)));
    }
}
