//! The `signpost.yaml` file format: the `*Spec` types serde decodes, with their defaults.
//! Strict: unknown keys are errors (`deny_unknown_fields` on every table). [`super::Config`]
//! is the runtime form built from them.

use serde::Deserialize;
use serde_yaml::Value;

use crate::source::{Choice, Choices, quote};

/// The top of `signpost.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Where to listen.
    #[serde(default)]
    pub listen: Vec<ListenSpec>,
    /// UDP worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// The largest UDP response Signpost sends, whatever the requester offers.
    #[serde(default = "default_udp_payload")]
    pub udp_payload_max: u16,
    /// TCP limits.
    #[serde(default)]
    pub tcp: TcpSpec,
    /// CHAOS identity answers.
    #[serde(default)]
    pub identity: IdentitySpec,
    /// The `_why` explanation names.
    #[serde(default)]
    pub why: WhySpec,
    /// Response rate limiting on UDP.
    #[serde(default)]
    pub rrl: RrlSpec,
    /// Zones; decoded one by one for error reporting.
    #[serde(default)]
    pub zones: Value,
    /// Map files or directories of map files.
    #[serde(default)]
    pub maps: Vec<String>,
    /// GeoIP databases.
    #[serde(default)]
    pub geoip: Vec<DataFileSpec<GeoipFormat>>,
    /// BGP prefix tables.
    #[serde(default)]
    pub bgp: Vec<DataFileSpec<BgpFormat>>,
    /// Live BGP feeds: sessions with the sites' routers. A [`FeedsSpec`](super::feeds_spec::FeedsSpec), decoded on its own
    /// so that a problem there hides nothing else.
    pub feeds: Option<Value>,
    /// Announcing the service prefixes over the feeds: an
    /// [`AnycastSpec`](super::anycast_spec::AnycastSpec), decoded on its own.
    pub anycast: Option<Value>,
    /// Milliseconds of quiet after a file change before reloading.
    #[serde(default = "default_debounce")]
    pub reload_debounce_ms: u64,
    /// The CPU priority reloads run at.
    #[serde(default)]
    pub reload_priority: Choice<ReloadPriority>,
    /// Reloads that remove served names or shrink the data are held until confirmed.
    #[serde(default)]
    pub reload_guard: ReloadGuardSpec,
    /// The control socket.
    #[serde(default)]
    pub control: ControlSpec,
    /// Where admin overrides are kept across restarts.
    pub state_file: Option<String>,
    /// Health-check settings.
    #[serde(default)]
    pub health: HealthSpec,
    /// The Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// The query log.
    pub query_log: Option<QueryLogSpec>,
    /// DNS Cookies (RFC 7873, RFC 9018).
    #[serde(default)]
    pub cookies: CookiesSpec,
}

/// DNS Cookies: where the server secret comes from, and the limit on UDP answers to clients
/// without a valid server cookie.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CookiesSpec {
    /// The 128-bit server secret as 32 hexadecimal digits.
    pub secret: Option<String>,
    /// A file holding the secret as 32 hexadecimal digits.
    pub secret_file: Option<String>,
    /// UDP answers larger than this many bytes to a query without a valid server cookie are
    /// sent truncated; 0 (the default): no limit.
    pub max_nocookie_response: u16,
}

/// The CPU priority of reloads (`reload_priority:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReloadPriority {
    /// Nice 19: a reload never takes CPU from the UDP workers, but takes longer on a busy
    /// machine.
    #[default]
    Low,
    /// The server's own priority.
    Normal,
}

impl Choices for ReloadPriority {}

/// The Prometheus metrics endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSpec {
    /// `ADDRESS:PORT` of the HTTP listener serving `/metrics`; no endpoint when absent.
    pub listen: Option<String>,
    /// When the address cannot be bound, serve without the endpoint (a warning) instead of
    /// refusing to start.
    pub optional: bool,
}

/// The query log: one JSON line per sampled query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLogSpec {
    /// The file records are appended to.
    pub path: String,
    /// The fraction of queries logged, from 0 to 1.
    #[serde(default = "all")]
    pub sample_rate: f64,
    /// Records waiting for the writer before new ones are dropped.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn all() -> f64 {
    1.0
}

fn default_queue() -> usize {
    8192
}

/// Health-check settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSpec {
    /// State of a checked node before its first result.
    pub initial: Choice<InitialState>,
    /// How long the first round of checks may delay answering, in milliseconds.
    pub startup_wait_ms: u64,
    /// Checks running at once.
    pub max_concurrent_checks: usize,
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthSpec {
            initial: Choice::default(),
            startup_wait_ms: 3000,
            max_concurrent_checks: 64,
        }
    }
}

/// The state of a checked node before its first result (`health.initial:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitialState {
    /// Up: answered with until a check says otherwise.
    #[default]
    Up,
    /// Down: answered with only once a check has passed.
    Down,
}

impl Choices for InitialState {}

/// The reload guard: a reload whose new snapshot serves fewer names, or whose GeoIP or BGP
/// file data shrink by more than `max_shrink_percent`, is held until confirmed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadGuardSpec {
    /// Hold such reloads at all.
    pub enabled: bool,
    /// The largest shrink, in per cent of the serving count, accepted without confirmation.
    pub max_shrink_percent: u8,
}

impl Default for ReloadGuardSpec {
    fn default() -> Self {
        ReloadGuardSpec {
            enabled: true,
            max_shrink_percent: 10,
        }
    }
}

/// The local control socket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSpec {
    /// Socket path; no socket when absent.
    pub socket: Option<String>,
    /// File mode of the socket, in octal.
    pub mode: String,
    /// Connections open at once.
    pub max_connections: usize,
    /// Time a connection has to send each request line and take its response.
    pub idle_timeout_ms: u64,
}

impl Default for ControlSpec {
    fn default() -> Self {
        ControlSpec {
            socket: None,
            mode: "0660".into(),
            max_connections: 64,
            idle_timeout_ms: 30_000,
        }
    }
}

fn default_udp_payload() -> u16 {
    1232
}

fn default_debounce() -> u64 {
    500
}

/// A listen address: `"127.0.0.1:5353"` (UDP and TCP) or a map.
#[derive(Debug)]
pub enum ListenSpec {
    /// UDP and TCP on this address.
    Plain(String),
    /// Protocols chosen.
    Detailed(ListenDetailSpec),
}

impl<'de> Deserialize<'de> for ListenSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::source::string_or_map(
            d,
            "\"ADDRESS:PORT\" or {address, udp, tcp, optional}",
            ListenSpec::Plain,
            ListenSpec::Detailed,
        )
    }
}

/// A listen address with its protocols.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenDetailSpec {
    /// `ADDRESS:PORT` (IPv6 in brackets).
    pub address: String,
    /// Serve UDP here.
    #[serde(default = "yes")]
    pub udp: bool,
    /// Serve TCP here.
    #[serde(default = "yes")]
    pub tcp: bool,
    /// When this host cannot bind the address (no IPv6, the port taken), skip this listener
    /// with a warning instead of refusing to start.
    #[serde(default)]
    pub optional: bool,
}

fn yes() -> bool {
    true
}

/// TCP limits (RFC 7766 §6.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpSpec {
    /// Close a connection idle this long.
    pub idle_timeout_ms: u64,
    /// Concurrent connections, all clients together.
    pub max_connections: usize,
    /// Concurrent connections from one client address.
    pub max_connections_per_client: usize,
    /// Queries answered on one connection before it is closed.
    pub max_queries_per_connection: u32,
    /// Concurrent connections from one client network (`ipv4_prefix`, `ipv6_prefix`).
    pub max_connections_per_network: usize,
    /// IPv4 client network length for `max_connections_per_network`.
    pub ipv4_prefix: u8,
    /// IPv6 client network length for `max_connections_per_network`.
    pub ipv6_prefix: u8,
    /// When every slot is taken, a new connection closes the one that has gone longest
    /// without a query, if that is at least this long (milliseconds).
    pub reclaim_idle_ms: u64,
    /// The largest share of the process's file descriptor limit that DNS TCP connections may
    /// hold, in per cent.
    pub max_fd_percent: u8,
}

impl Default for TcpSpec {
    fn default() -> Self {
        TcpSpec {
            idle_timeout_ms: 10_000,
            max_connections: 512,
            max_connections_per_client: 16,
            max_queries_per_connection: 10_000,
            max_connections_per_network: 64,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            reclaim_idle_ms: 1000,
            max_fd_percent: 50,
        }
    }
}

/// CHAOS-class identity answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySpec {
    /// The answer to `id.server` and `hostname.bind`; empty disables them.
    pub server_id: String,
    /// The answer to `version.bind`; off unless set.
    pub version: Option<String>,
}

impl Default for IdentitySpec {
    fn default() -> Self {
        IdentitySpec {
            server_id: "signpost".into(),
            version: None,
        }
    }
}

/// Who may ask `_why.<name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhySpec {
    /// Answer `_why` names at all.
    pub enabled: bool,
    /// Source networks allowed to ask; empty means everyone.
    pub allow: Vec<String>,
}

impl Default for WhySpec {
    fn default() -> Self {
        WhySpec {
            enabled: true,
            allow: Vec::new(),
        }
    }
}

/// Response rate limiting (UDP only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrlSpec {
    /// Limit at all.
    pub enabled: bool,
    /// Responses per second to one client network.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated (TC, no records) so that real
    /// clients retry over TCP; 0 drops them all.
    pub slip: u32,
    /// IPv4 client network length.
    pub ipv4_prefix: u8,
    /// IPv6 client network length.
    pub ipv6_prefix: u8,
    /// Source networks never limited.
    pub exempt: Vec<String>,
}

impl Default for RrlSpec {
    fn default() -> Self {
        RrlSpec {
            enabled: true,
            responses_per_second: 1000,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

/// A data file and how to read it; `F` is the list's formats.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, bound = "F: Choices + Default")]
pub struct DataFileSpec<F> {
    /// The file.
    pub path: String,
    /// The format; `auto` detects it.
    #[serde(default)]
    pub format: Choice<F>,
}

/// How a GeoIP database stores its fields (`geoip[].format`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum GeoipFormat {
    /// Told by the database's type in its metadata.
    #[default]
    Auto,
    /// GeoIP2 / GeoLite2 City or Country.
    Geoip2,
    /// GeoLite2-ASN.
    Asn,
    /// `country_code` at the top level.
    Flat,
}

/// How a BGP table is written (`bgp[].format`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BgpFormat {
    /// MRT when the bytes look like MRT, else text.
    #[default]
    Auto,
    /// An MRT RIB dump (TABLE_DUMP, TABLE_DUMP_V2) or update stream.
    Mrt,
    /// pyasn's `PREFIX<TAB>ASN` text.
    Pyasn,
    /// CAIDA pfx2as: `ADDRESS<TAB>LENGTH<TAB>ASN`.
    Pfx2as,
}

/// The refusal of a data format, with every name in order.
fn format_refusal(found: &str, names: &[&str]) -> String {
    format!(
        "unknown format {}; expected {}",
        quote(found),
        names.join(", ")
    )
}

impl Choices for GeoipFormat {
    fn refusal(found: &str, names: &[&str]) -> String {
        format_refusal(found, names)
    }
}

impl Choices for BgpFormat {
    fn refusal(found: &str, names: &[&str]) -> String {
        format_refusal(found, names)
    }
}

/// A zone in `signpost.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// The zone's apex, e.g. `example.test`.
    pub apex: String,
    /// Default TTL of the zone's records.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The SOA fields.
    pub soa: SoaSpec,
    /// Name servers of the zone.
    pub ns: Vec<NsSpec>,
    /// Static records; decoded one by one.
    #[serde(default)]
    pub records: Value,
    /// Signing the zone (DNSSEC).
    #[serde(default)]
    pub dnssec: Option<super::dnssec_spec::DnssecSpec>,
}

fn default_ttl() -> u32 {
    3600
}

/// SOA fields (RFC 1035 §3.3.13).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaSpec {
    /// Primary name server.
    pub mname: String,
    /// Responsible mailbox, in name form (`hostmaster.example.test`).
    pub rname: String,
    /// Serial number.
    #[serde(default = "one")]
    pub serial: u32,
    /// Refresh interval.
    #[serde(default = "refresh")]
    pub refresh: u32,
    /// Retry interval.
    #[serde(default = "retry")]
    pub retry: u32,
    /// Expire time.
    #[serde(default = "expire")]
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    #[serde(default = "minimum")]
    pub minimum: u32,
    /// The SOA record's own TTL; the zone TTL when absent.
    pub ttl: Option<u32>,
}

fn one() -> u32 {
    1
}
fn refresh() -> u32 {
    7200
}
fn retry() -> u32 {
    900
}
fn expire() -> u32 {
    1_209_600
}
fn minimum() -> u32 {
    300
}

/// A name server: a name, or a name with glue addresses.
#[derive(Debug)]
pub enum NsSpec {
    /// Just the name.
    Name(String),
    /// The name and its addresses (glue, when in the zone).
    WithGlue(NsGlueSpec),
}

/// A name server with its addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsGlueSpec {
    /// Server name.
    pub name: String,
    /// Its IPv4 and IPv6 addresses.
    pub addresses: Vec<std::net::IpAddr>,
}

impl<'de> Deserialize<'de> for NsSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::source::string_or_map(
            d,
            "a name server, or {name, addresses}",
            NsSpec::Name,
            NsSpec::WithGlue,
        )
    }
}

/// A static record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// Owner, relative to the apex unless it ends in a dot; `@` is the apex.
    pub name: String,
    /// Record type: A, AAAA, CNAME, TXT, MX, CAA, SRV, NS or PTR.
    #[serde(rename = "type")]
    pub rtype: String,
    /// One value in zone-file presentation form.
    pub value: Option<String>,
    /// Several values (one record each).
    pub values: Option<Vec<String>>,
    /// TTL; the zone TTL when absent.
    pub ttl: Option<u32>,
}
