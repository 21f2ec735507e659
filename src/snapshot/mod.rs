//! The immutable state the answer path reads: zones, services with their compiled route
//! tables, nodes with answers encoded ahead of time, and the health table.
//!
//! One [`Snapshot`] is built by [`crate::compile`] and published through an `ArcSwap`; the
//! answer path loads it once per batch (a UDP worker's `recvmmsg`) or per query (TCP). `route` looks the client up in a flat, sorted,
//! non-overlapping table of CIDR blocks (a directory on the top 16 bits, then a search within
//! that slot; IPv6 blocks longer than /64 in a second table), which yields both the decision
//! (rule and region chain) and the ECS scope. `pick` walks the chain's nodes, pre-sorted by weight, and reads health.
//! Nothing here allocates, locks or does I/O on the query path.

pub mod cookie;
mod route;
mod service;
mod steer;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::health::{HealthTable, State};
use crate::zone::Zone;

pub use route::{NESTED, RouteKey, RouteTable, V6Table};
pub use service::{Pick, Service, ServiceAnswer, client_key};
pub use steer::{SteerSettings, Steering, UNIT};

/// The most addresses a service can answer with.
pub const MAX_ANSWERS: usize = 8;

/// A node of the maps, ready to answer.
#[derive(Debug, Clone)]
pub struct Node {
    /// Name, unique across the maps.
    pub name: String,
    /// [`crate::hash::name_key`] of the name: what spreading hashes the node by.
    pub key: u64,
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
    pub check: Option<crate::check::Check>,
    /// What the node can carry, in the maps' capacity unit.
    pub capacity: Option<f64>,
    /// Where its load is scraped, if anywhere.
    pub load: Option<crate::meter::LoadSource>,
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
    /// How members are ranked before weight.
    pub rank: Ranking,
}

/// How a region ranks its members (`rank:`); every mode ranks by weight last.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Ranking {
    /// By weight only: [`Region::members`] is the order.
    #[default]
    Weight,
    /// By BGP proximity (the AS-path length from each node's own feeds to the client), then
    /// weight: [`Decision::ranks`] holds the order.
    Proximity,
    /// By great-circle distance from the client's GeoIP location, then weight:
    /// [`Decision::ranks`] holds the order, [`BEYOND`] the members past the limit.
    Distance(DistanceRank),
}

impl Ranking {
    /// How an explanation names the ranking of a region, for a client whose location is
    /// known (`located`) or not.
    pub fn label(&self, located: bool) -> String {
        match (self, located) {
            (Ranking::Proximity, _) => " (by proximity)".to_string(),
            (Ranking::Distance(d), true) => match d.limit {
                Some(l) => format!(" (by distance, nearest {l})"),
                None => " (by distance)".to_string(),
            },
            (Ranking::Distance(_), false) => " (by weight: no client coordinates)".to_string(),
            (Ranking::Weight, _) => String::new(),
        }
    }
}

impl Region {
    /// Whether [`Decision::ranks`] orders this region's members (proximity or distance).
    #[inline]
    pub fn ranked(&self) -> bool {
        !matches!(self.rank, Ranking::Weight)
    }

    /// The distance ranking, for a region ranked by distance.
    #[inline]
    pub fn distance(&self) -> Option<&DistanceRank> {
        match &self.rank {
            Ranking::Distance(d) => Some(d),
            _ => None,
        }
    }
}

/// How a region ranked by distance ranks (`rank: distance`).
#[derive(Debug, Clone, PartialEq)]
pub struct DistanceRank {
    /// Each member's `(latitude, longitude)`, in the order of [`Region::members`].
    pub locations: Vec<(f64, f64)>,
    /// Only this many nearest members serve a client (`limit:`); None: all of them.
    pub limit: Option<usize>,
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
    /// Per node index, its rank for these clients in the proximity or distance region of the
    /// chain it belongs to (0 nearest; [`NO_ROUTE`] when none of its feeds has a route;
    /// [`BEYOND`] past a distance region's limit); empty when no region of the service ranks
    /// by proximity or distance.
    pub ranks: Box<[u8]>,
    /// For A (`[0]`) and AAAA (`[1]`): the usual pick, what [`Service::pick`] chooses while every
    /// member of the chain's first region is up, decided when the service is compiled
    /// ([`Service::settle_usual`]); its `count` is 0 where there is none (spread or steered
    /// services, a first region with no node of the family).
    pub usual: [Pick; 2],
}

/// The proximity rank of a node whose feeds have no route to the client: farthest.
pub const NO_ROUTE: u8 = u8::MAX;

/// The rank of a member of a distance region that is not among the `limit` nearest for the
/// client: the region does not use it for them.
pub const BEYOND: u8 = u8::MAX - 1;

/// The highest rank that orders nodes (proximity and distance ranks are capped to it).
pub const MAX_RANK: u8 = BEYOND - 1;

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

/// What a rule selects clients by, most specific first: for an address, the first kind that
/// has a rule for it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleKind {
    /// An operator prefix (`prefixes`, `prefix_file`): the longest one covering the client.
    Prefix,
    /// The origin ASN of the client's longest BGP prefix (`asns`).
    Asn,
    /// The client's ISO 3166-2 subdivision (`subdivisions`).
    Subdivision,
    /// The client's country (`countries`).
    Country,
    /// The client's continent (`continents`).
    Continent,
    /// Everyone else (`default: true`).
    Default,
}

impl RuleKind {
    /// Every kind, most specific first.
    pub const ALL: [RuleKind; 6] = [
        RuleKind::Prefix,
        RuleKind::Asn,
        RuleKind::Subdivision,
        RuleKind::Country,
        RuleKind::Continent,
        RuleKind::Default,
    ];

    /// The name used in explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Prefix => "prefix",
            RuleKind::Asn => "asn",
            RuleKind::Subdivision => "subdivision",
            RuleKind::Country => "country",
            RuleKind::Continent => "continent",
            RuleKind::Default => "default",
        }
    }
}

impl std::fmt::Display for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule as the explanation shows it.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// What it selects by.
    pub kind: RuleKind,
    /// Where it is: `maps/x.yaml:12:5`.
    pub location: String,
    /// Its `prefix_file`, if it has one: for the reload guard.
    pub prefix_file: Option<PrefixFile>,
}

/// A rule's `prefix_file` as a build read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixFile {
    /// The file, as messages name it.
    pub file: String,
    /// The prefixes it held, per family (IPv4, IPv6).
    pub counts: [u64; 2],
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
    /// UDP payload cap for a query without a valid server cookie: `udp_payload_max`, or
    /// `cookies.max_nocookie_response` when that is lower.
    pub udp_nocookie_max: u16,
    /// `_why` answered.
    pub why_enabled: bool,
    /// Networks allowed to ask `_why` (empty: all).
    pub why_allow: Vec<ip_network::IpNetwork>,
    /// DNS Cookies: the secrets and the limit for UDP answers without a valid cookie.
    pub cookies: cookie::Cookies,
    /// The TCP idle timeout in units of 100 ms, for edns-tcp-keepalive (RFC 7828).
    pub tcp_idle_timeout: u16,
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
    /// The live BGP tables used to build this snapshot, for explanations.
    pub live: Arc<crate::live::LiveData>,
    /// Human-readable versions of the maps and data in force.
    pub versions: String,
    /// The answer counters of this snapshot's services (no rows until it is published, see
    /// [`Snapshot::attach_tally`]); laid out by [`cells`].
    pub tally: Arc<crate::tally::Tally>,
    /// Where each service's cells start in `tally`.
    pub cell_base: Vec<usize>,
    /// The unit of nodes' capacity and load (`capacity_unit` in the maps), for people.
    pub capacity_unit: Option<String>,
}

/// The layout of a snapshot's answer counters: for each service, [`NODES`](cells::NODES)
/// cells for the rarer outcomes, then one per node of the snapshot, then one per combination
/// of region (or none) × decided by ECS or not × rule kind (or none). An answer adds one to
/// its combination and one per node answered, and to the first cells only when it is one of
/// those outcomes; the answers, ECS answers, rule kinds and regions of a service are sums of
/// combination cells, which the readers make ([`crate::counters`]).
pub mod cells {
    /// Answers without an address (NOERROR, empty).
    pub const NODATA: usize = 0;
    /// Answers from a region that is not the first of the client's chain.
    pub const FALLBACK: usize = 1;
    /// Answers while the chosen region is degraded (the shorter TTL applies).
    pub const DEGRADED: usize = 2;
    /// Answers from the all-down policy.
    pub const ALL_DOWN: usize = 3;
    /// SERVFAIL by the all-down policy.
    pub const SERVFAIL: usize = 4;
    /// Cells before the nodes.
    pub const NODES: usize = 5;
    /// Rule kinds in a combination, with one for answers without a rule.
    pub const KINDS: usize = super::RuleKind::ALL.len() + 1;
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
                udp_nocookie_max: 1232,
                why_enabled: false,
                why_allow: Vec::new(),
                cookies: cookie::Cookies::default(),
                tcp_idle_timeout: 100,
            },
            client: Arc::new(crate::client::ClientData::default()),
            live: Arc::default(),
            versions: String::new(),
            tally: Arc::default(),
            cell_base: Vec::new(),
            capacity_unit: None,
        }
    }

    /// Cells per service: see [`cells`].
    pub fn service_cells(&self, service: &Service) -> usize {
        cells::NODES + self.nodes.len() + (service.regions.len() + 1) * 2 * cells::KINDS
    }

    /// Gives the snapshot answer counters with `rows` rows (one per DNS worker), laid out by
    /// [`cells`]. Done when it is published.
    pub fn attach_tally(&mut self, rows: usize) {
        let mut base = Vec::with_capacity(self.services.len());
        let mut next = 0;
        for s in &self.services {
            base.push(next);
            next += self.service_cells(s);
        }
        self.cell_base = base;
        self.tally = Arc::new(crate::tally::Tally::new(rows, next));
    }

    /// The combination cell of an answer of service `s` from `region` (None: no region),
    /// decided by ECS or not, by a rule of `kind` (None: no rule), relative to its base.
    #[inline]
    pub fn answer_cell(
        &self,
        s: &Service,
        region: Option<usize>,
        ecs: bool,
        kind: Option<RuleKind>,
    ) -> usize {
        let region = region.unwrap_or(s.regions.len());
        let kind = kind.map_or(cells::KINDS - 1, |k| k as usize);
        cells::NODES + self.nodes.len() + (region * 2 + usize::from(ecs)) * cells::KINDS + kind
    }

    /// The cell of node `node` of a service, relative to its base.
    #[inline]
    pub fn node_cell(&self, node: usize) -> usize {
        cells::NODES + node
    }
}
