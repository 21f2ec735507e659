//! The map file format (`maps/*.yaml`): nodes, regions and services, as operators write them.
//!
//! These `*Spec` types only describe the files; they are deserialised with unknown keys
//! refused, and [`crate::compile`] validates them as a whole set and turns them into the
//! runtime model. Several files may each hold any of the three sections.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ip_network::IpNetwork;
use serde::Deserialize;
use serde_yaml::Value;

use crate::source::{Choice, Choices, listed, quote};

/// One map file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MapFileSpec {
    /// Nodes; decoded one by one.
    #[serde(default)]
    pub nodes: Value,
    /// Regions; decoded one by one.
    #[serde(default)]
    pub regions: Value,
    /// Services; decoded one by one.
    #[serde(default)]
    pub services: Value,
    /// The unit of nodes' `capacity` and load (`Mbit/s`, `connections`): a label for people,
    /// the same in every map file that gives it.
    pub capacity_unit: Option<String>,
}

/// A node: one server (or load-balanced address set) that can serve clients.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique name.
    pub name: String,
    /// IPv4 addresses answered for A queries.
    #[serde(default)]
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses answered for AAAA queries.
    #[serde(default)]
    pub ipv6: Vec<Ipv6Addr>,
    /// Weight, 1..=65535; default 100.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Where the node is (shown by tools; `rank: distance` regions measure from it).
    pub location: Option<LocationSpec>,
    /// The node's own ASNs (sponsor networks).
    #[serde(default)]
    pub asns: Vec<u32>,
    /// The node's own prefixes.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Serve only clients inside `asns` / `prefixes`.
    #[serde(default)]
    pub local_only: bool,
    /// The node's health check (else its first region's default check, else none).
    pub check: Option<CheckSpec>,
    /// What the node can carry, in the maps' capacity unit (`spread: capacity` services).
    pub capacity: Option<f64>,
    /// Where the node's current load is read (else it comes only from pushes).
    pub load: Option<LoadSpec>,
}

/// Where a node's load is scraped: a series of its Prometheus exporter.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// The exporter's URL (`http://host:port/path`).
    pub url: String,
    /// The metric name.
    pub metric: String,
    /// Labels a series must carry (all of them); the matching series are summed.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `counter` (the load is its rate per second) or `gauge` (the load is its value).
    #[serde(rename = "type")]
    pub kind: LoadKind,
    /// Multiplies the rate or value into the capacity unit (bytes/s to Mbit/s: 0.000008).
    #[serde(default = "unit_scale")]
    pub scale: f64,
    /// Milliseconds between scrapes.
    #[serde(default = "load_interval")]
    pub interval_ms: u64,
    /// Milliseconds before a scrape counts as failed; 2000, or `interval_ms` when shorter.
    pub timeout_ms: Option<u64>,
    /// Milliseconds after which the last reading is stale and the node falls back to its
    /// static weight; three intervals when absent.
    pub stale_ms: Option<u64>,
}

/// How an exporter's series becomes a load.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    /// A monotonic counter: the load is its rate between two scrapes.
    Counter,
    /// A gauge: the load is its value.
    Gauge,
}

fn unit_scale() -> f64 {
    1.0
}
fn load_interval() -> u64 {
    5000
}

/// A health check.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// What is probed.
    pub kind: Choice<CheckKind>,
    /// Address to probe; the node's first IPv4 (else IPv6) address when absent.
    pub address: Option<IpAddr>,
    /// Port; 80 for http and 443 for https when absent.
    pub port: Option<u16>,
    /// HTTP path.
    #[serde(default = "slash")]
    pub path: String,
    /// HTTP Host header (and, for https, the name the certificate must carry); the address
    /// when absent.
    pub host: Option<String>,
    /// Acceptable HTTP status codes.
    #[serde(default = "ok200")]
    pub expect_status: Vec<u16>,
    /// A string the HTTP body must contain.
    pub expect_body: Option<String>,
    /// Milliseconds between checks.
    #[serde(default = "interval")]
    pub interval_ms: u64,
    /// Milliseconds before a check counts as failed.
    #[serde(default = "timeout")]
    pub timeout_ms: u64,
    /// Up to this many milliseconds added to each interval, so checks do not move in step.
    #[serde(default = "jitter")]
    pub jitter_ms: u64,
    /// Consecutive successes to go up.
    #[serde(default = "rise")]
    pub rise: u32,
    /// Consecutive failures to go down.
    #[serde(default = "fall")]
    pub fall: u32,
    /// https: accept any certificate (private CAs, self-signed).
    #[serde(default)]
    pub insecure: bool,
}

/// What a health check probes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// An HTTP request.
    Http,
    /// An HTTP request over TLS.
    Https,
    /// A TCP connection.
    Tcp,
}

impl Choices for CheckKind {
    fn refusal(found: &str, names: &[&str]) -> String {
        format!(
            "unknown check kind {}; expected {}",
            quote(found),
            listed(names, "")
        )
    }
}

fn slash() -> String {
    "/".into()
}
fn ok200() -> Vec<u16> {
    vec![200]
}
fn interval() -> u64 {
    5000
}
fn timeout() -> u64 {
    2000
}
fn jitter() -> u64 {
    500
}
fn rise() -> u32 {
    2
}
fn fall() -> u32 {
    3
}

fn default_weight() -> u32 {
    100
}

/// Latitude and longitude.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct LocationSpec {
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
}

/// A node reference inside a region or a last-resort set: a name, or a name and a weight.
#[derive(Debug)]
pub enum MemberSpec {
    /// The node with its own weight.
    Name(String),
    /// The node with a weight for this group.
    Weighted(WeightedSpec),
}

/// A node with a weight for one group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedSpec {
    /// Node name.
    pub node: String,
    /// Weight in this group.
    pub weight: u32,
}

impl<'de> Deserialize<'de> for MemberSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::source::string_or_map(
            d,
            "a node name, or {node, weight}",
            MemberSpec::Name,
            MemberSpec::Weighted,
        )
    }
}

impl MemberSpec {
    /// The node name.
    pub fn node(&self) -> &str {
        match self {
            MemberSpec::Name(n) => n,
            MemberSpec::Weighted(w) => &w.node,
        }
    }

    /// The weight given here, if any.
    pub fn weight(&self) -> Option<u32> {
        match self {
            MemberSpec::Name(_) => None,
            MemberSpec::Weighted(w) => Some(w.weight),
        }
    }
}

/// A named group of nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Unique name.
    pub name: String,
    /// Members.
    pub nodes: Vec<MemberSpec>,
    /// Default health check of members that have none.
    pub check: Option<CheckSpec>,
    /// How members are ranked.
    #[serde(default)]
    pub rank: Choice<Rank>,
    /// With `rank: distance`: only this many nearest members serve a client.
    pub limit: Option<u64>,
}

/// How a region ranks its members (`rank:`); every mode ranks by weight last.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Rank {
    /// Heaviest first.
    #[default]
    Weight,
    /// The node whose own BGP feeds have the shortest AS path to the client first.
    Proximity,
    /// The node nearest the client's GeoIP location first (`limit:` keeps the nearest few).
    Distance,
}

impl Choices for Rank {}

/// A redirecting service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Host names, each inside a served zone.
    pub names: Vec<String>,
    /// Answer TTL.
    #[serde(default = "default_service_ttl")]
    pub ttl: u32,
    /// TTL while degraded; `ttl` when absent.
    pub degraded_ttl: Option<u32>,
    /// Addresses per answer (1..=8).
    #[serde(default = "one")]
    pub answers: usize,
    /// How answers are spread over a region's nodes.
    #[serde(default)]
    pub spread: Choice<Spread>,
    /// With `spread: capacity`: the controller's settings.
    pub capacity: Option<SteerSpec>,
    /// Whether the EDNS Client Subnet stands for the client.
    #[serde(default)]
    pub ecs: Choice<Ecs>,
    /// What is answered when every node of the chain is down.
    #[serde(default)]
    pub all_down: Choice<AllDownSpec>,
    /// Nodes for `all_down: last_resort`.
    #[serde(default)]
    pub last_resort: Vec<MemberSpec>,
    /// Client → region chain rules; decoded one by one.
    pub rules: Value,
}

/// How a `spread: capacity` service steers by load (docs/capacity.md).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SteerSpec {
    /// The utilisation (load / capacity) each node is steered toward; default 0.8.
    pub target_utilisation: Option<f64>,
    /// Milliseconds between controller steps; default 5000.
    pub interval_ms: Option<u64>,
    /// The largest change per step: of a node's weight (relative) and of a region's overflow
    /// fraction; default 0.5.
    pub max_step: Option<f64>,
    /// Utilisation differences smaller than this are left alone (hysteresis); default 0.05.
    pub deadband: Option<f64>,
    /// The largest fraction of a region's clients sent on to the next region; default 0.95.
    pub max_overflow: Option<f64>,
}

fn default_service_ttl() -> u32 {
    60
}
fn one() -> usize {
    1
}

/// How a service spreads answers over a region's nodes (`spread:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// The heaviest healthy nodes.
    #[default]
    None,
    /// Clients spread over the healthy nodes in proportion to weight, stable per client
    /// network.
    Weighted,
    /// Like `weighted`, with the weights and overflow steered by measured load (see
    /// `capacity`).
    Capacity,
}

impl Choices for Spread {}

/// Whether a service reads the EDNS Client Subnet (`ecs:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Ecs {
    /// The subnet stands for the client.
    #[default]
    Use,
    /// The resolver's address stands for the client.
    Ignore,
}

impl Choices for Ecs {}

/// What a service answers when every node of a client's chain is down (`all_down:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AllDownSpec {
    /// Every other region of the service, in declaration order.
    #[default]
    AnyRegion,
    /// The `last_resort` nodes, whatever their health.
    LastResort,
    /// SERVFAIL.
    Servfail,
    /// NOERROR with no address.
    Empty,
}

impl Choices for AllDownSpec {}

/// A rule: exactly one selector, and the region chain for clients it selects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Client prefixes (CIDR).
    pub prefixes: Option<Vec<String>>,
    /// A file of client prefixes, one per line, relative to the map file.
    pub prefix_file: Option<String>,
    /// Origin ASNs.
    pub asns: Option<Vec<u32>>,
    /// ISO 3166-2 subdivision codes (`US-CA`).
    pub subdivisions: Option<Vec<String>>,
    /// ISO 3166-1 country codes.
    pub countries: Option<Vec<String>>,
    /// Continent codes (AF AN AS EU NA OC SA).
    pub continents: Option<Vec<String>>,
    /// The fallback rule.
    #[serde(default)]
    pub default: bool,
    /// The region chain, most preferred first.
    pub regions: Vec<String>,
}

/// Why a text is not a CIDR prefix. Each variant holds the (trimmed) text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// The part before the `/` is not an IPv4 or IPv6 address.
    NotAPrefix(String),
    /// The length is not a number within the family's maximum (the second field).
    BadLength(String, u8),
    /// The address has bits set past the length; the prefix it falls in, for the message.
    HostBits {
        /// The text.
        text: String,
        /// The prefix length given.
        len: u8,
        /// The address truncated to `len` bits.
        truncated: Option<IpNetwork>,
    },
}

impl std::fmt::Display for CidrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CidrError::NotAPrefix(s) => write!(f, "{} is not a CIDR prefix", quote(s)),
            CidrError::BadLength(s, max) => {
                write!(f, "{}: prefix length must be 0..={max}", quote(s))
            }
            CidrError::HostBits {
                text,
                len,
                truncated,
            } => {
                write!(f, "{} has bits set past /{len}; did you mean ", quote(text))?;
                if let Some(n) = truncated {
                    write!(f, "{n}")?;
                }
                f.write_str("?")
            }
        }
    }
}

impl std::error::Error for CidrError {}

/// Parses a CIDR (`192.0.2.0/24`, `2001:db8::/32`) or a single address; host bits must be
/// zero.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, CidrError> {
    let s = s.trim();
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| CidrError::NotAPrefix(s.to_string()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = match len {
        Some(l) => l
            .parse()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| CidrError::BadLength(s.to_string(), max))?,
        None => max,
    };
    IpNetwork::new(ip, len).map_err(|_| CidrError::HostBits {
        text: s.to_string(),
        len,
        truncated: IpNetwork::new_truncate(ip, len).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("192.0.2.0/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(parse_cidr("2001:db8::1").unwrap().netmask(), 128);
        let e = parse_cidr("192.0.2.1/24").unwrap_err().to_string();
        assert!(e.contains("did you mean 192.0.2.0/24"), "{e}");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("banana").is_err());
    }
}
