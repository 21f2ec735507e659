//! Daemon settings: the `signpost.yaml` file format (`*Spec` types) and the runtime
//! [`Config`] built from it.
//!
//! The format is strict: unknown keys are errors, and every problem is reported with
//! `file:line:column`, its YAML path and what was expected, all at once. Relative paths in the
//! file are relative to the file's directory. The embedded default configuration (see
//! [`crate::embedded`]) goes through the same code.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::Name;
use serde::Deserialize;
use serde_yaml::Value;

use crate::dns::wire::rtype;
use crate::source::{Document, Errors};
use crate::zone::{self, Glue, RecordSet, Zone};

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
    pub geoip: Vec<DataFileSpec>,
    /// BGP prefix tables.
    #[serde(default)]
    pub bgp: Vec<DataFileSpec>,
    /// Milliseconds of quiet after a file change before reloading.
    #[serde(default = "default_debounce")]
    pub reload_debounce_ms: u64,
    /// `low` (nice 19: a reload never takes CPU from the UDP workers, but takes longer on a
    /// busy machine) or `normal`.
    #[serde(default = "low")]
    pub reload_priority: String,
    /// The control socket.
    #[serde(default)]
    pub control: ControlSpec,
    /// Where admin overrides are kept across restarts.
    pub state_file: Option<String>,
    /// Health-check settings.
    #[serde(default)]
    pub health: HealthSpec,
}

/// Health-check settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSpec {
    /// State of a checked node before its first result: `up` or `down`.
    pub initial: String,
    /// How long the first round of checks may delay answering, in milliseconds.
    pub startup_wait_ms: u64,
    /// Checks running at once.
    pub max_concurrent_checks: usize,
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthSpec {
            initial: "up".into(),
            startup_wait_ms: 3000,
            max_concurrent_checks: 64,
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
}

impl Default for ControlSpec {
    fn default() -> Self {
        ControlSpec {
            socket: None,
            mode: "0660".into(),
        }
    }
}

fn default_udp_payload() -> u16 {
    1232
}

fn low() -> String {
    "low".into()
}

fn default_debounce() -> u64 {
    500
}

/// A listen address: `"127.0.0.1:5353"` (UDP and TCP) or a map.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ListenSpec {
    /// UDP and TCP on this address.
    Plain(String),
    /// Protocols chosen.
    Detailed(ListenDetailSpec),
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
}

impl Default for TcpSpec {
    fn default() -> Self {
        TcpSpec {
            idle_timeout_ms: 10_000,
            max_connections: 512,
            max_connections_per_client: 16,
            max_queries_per_connection: 10_000,
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

/// Response rate limiting, ready to use.
#[derive(Clone, Debug)]
pub struct Rrl {
    /// Responses per second per client network (0: no limit).
    pub responses_per_second: u32,
    /// Slip ratio.
    pub slip: u32,
    /// IPv4 network length.
    pub ipv4_prefix: u8,
    /// IPv6 network length.
    pub ipv6_prefix: u8,
    /// Exempt source networks.
    pub exempt: Vec<ip_network::IpNetwork>,
}

/// A data file and how to read it.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DataFileSpec {
    /// The file.
    pub path: String,
    /// The format; `auto` detects it.
    #[serde(default = "auto")]
    pub format: String,
}

fn auto() -> String {
    "auto".into()
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
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum NsSpec {
    /// Just the name.
    Name(String),
    /// The name and its addresses (glue, when in the zone).
    WithGlue {
        /// Server name.
        name: String,
        /// Its IPv4 and IPv6 addresses.
        addresses: Vec<std::net::IpAddr>,
    },
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

/// One listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The address.
    pub addr: SocketAddr,
    /// Serve UDP.
    pub udp: bool,
    /// Serve TCP.
    pub tcp: bool,
}

/// TCP limits, ready to use.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Global connection cap.
    pub max_connections: usize,
    /// Per-client-address connection cap.
    pub max_connections_per_client: usize,
    /// Queries per connection.
    pub max_queries_per_connection: u32,
}

/// Where a data file comes from: disk, or bytes compiled into the binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// A file on disk.
    File(PathBuf),
    /// Part of the embedded default.
    Embedded(String),
}

impl DataSource {
    /// The name used in messages.
    pub fn display(&self) -> String {
        match self {
            DataSource::File(p) => p.display().to_string(),
            DataSource::Embedded(name) => format!("embedded:{name}"),
        }
    }

    /// Reads the whole input.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            DataSource::File(p) => std::fs::read(p).map_err(|e| e.to_string()),
            DataSource::Embedded(name) => crate::embedded::file(name)
                .map(|b| b.to_vec())
                .ok_or_else(|| "not part of the embedded default".to_string()),
        }
    }
}

/// A data file to load.
#[derive(Clone, Debug)]
pub struct DataFile {
    /// Where it is.
    pub source: DataSource,
    /// The declared format (`auto` when not given).
    pub format: String,
}

/// The daemon's runtime configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the configuration came from.
    pub origin: DataSource,
    /// Sockets.
    pub listen: Vec<Listen>,
    /// UDP workers (resolved: at least 1).
    pub workers: usize,
    /// UDP payload cap.
    pub udp_payload_max: u16,
    /// TCP limits.
    pub tcp: TcpLimits,
    /// `id.server` / `hostname.bind` answer, if enabled.
    pub server_id: Option<String>,
    /// `version.bind` answer, if enabled.
    pub version: Option<String>,
    /// `_why` names answered.
    pub why_enabled: bool,
    /// Networks allowed to ask `_why` (empty: all).
    pub why_allow: Vec<ip_network::IpNetwork>,
    /// UDP response rate limiting, when enabled.
    pub rrl: Option<Rrl>,
    /// Zones, in configuration order.
    pub zones: Vec<Zone>,
    /// Map files (directories expanded at load time).
    pub maps: Vec<DataSource>,
    /// GeoIP databases.
    pub geoip: Vec<DataFile>,
    /// BGP tables.
    pub bgp: Vec<DataFile>,
    /// Reload debounce.
    pub reload_debounce: Duration,
    /// Run reloads at the lowest CPU priority.
    pub reload_low_priority: bool,
    /// Control socket path.
    pub control_socket: Option<PathBuf>,
    /// Control socket file mode.
    pub control_mode: u32,
    /// Admin override state file.
    pub state_file: Option<PathBuf>,
    /// State of a checked node before its first result.
    pub health_initial: crate::health::State,
    /// Bound on the first round of checks.
    pub health_startup_wait: Duration,
    /// Checks running at once.
    pub max_concurrent_checks: usize,
}

impl Config {
    /// Loads and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Config, Errors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut errs = Errors::default();
            errs.file(&path.display().to_string(), format!("cannot read: {e}"));
            errs
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_text(
            &path.display().to_string(),
            &text,
            DataSource::File(path.into()),
            &|rel| {
                let p = Path::new(rel);
                DataSource::File(if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                })
            },
        )
    }

    /// The embedded default configuration.
    pub fn embedded() -> Result<Config, Errors> {
        Config::from_text(
            "embedded:signpost.yaml",
            crate::embedded::CONFIG,
            DataSource::Embedded("testdata/demo/signpost.yaml".into()),
            &|rel| DataSource::Embedded(crate::embedded::resolve("testdata/demo/", rel)),
        )
    }

    /// Parses configuration text; `resolve` turns a path in the file into a data source.
    pub fn from_text(
        file: &str,
        text: &str,
        origin: DataSource,
        resolve: &dyn Fn(&str) -> DataSource,
    ) -> Result<Config, Errors> {
        let doc = Document::parse(file, text)?;
        let mut errors = Errors::default();
        let Some(spec) = doc.decode::<ConfigSpec>("", &doc.root, &mut errors) else {
            return Err(errors);
        };
        let mut listen = Vec::new();
        let specs = if spec.listen.is_empty() {
            vec![ListenSpec::Plain("127.0.0.1:5353".into())]
        } else {
            spec.listen
        };
        for (i, l) in specs.iter().enumerate() {
            let (addr, udp, tcp) = match l {
                ListenSpec::Plain(a) => (a.as_str(), true, true),
                ListenSpec::Detailed(d) => (d.address.as_str(), d.udp, d.tcp),
            };
            match addr.parse::<SocketAddr>() {
                Ok(addr) => listen.push(Listen { addr, udp, tcp }),
                Err(_) => errors.0.push(doc.error(
                    &format!("listen[{i}]"),
                    format!("{addr:?} is not ADDRESS:PORT (IPv6 in brackets, e.g. \"[::1]:53\")"),
                )),
            }
        }
        if spec.udp_payload_max < 512 {
            errors
                .0
                .push(doc.error("udp_payload_max", "must be at least 512"));
        }
        let mut why_allow = Vec::new();
        for (i, a) in spec.why.allow.iter().enumerate() {
            match crate::spec::parse_cidr(a) {
                Ok(n) => why_allow.push(n),
                Err(e) => errors.0.push(doc.error(&format!("why.allow[{i}]"), e)),
            }
        }
        let zones = load_zones(&doc, &spec.zones, &mut errors);
        let mut exempt = Vec::new();
        for (i, a) in spec.rrl.exempt.iter().enumerate() {
            match crate::spec::parse_cidr(a) {
                Ok(n) => exempt.push(n),
                Err(e) => errors.0.push(doc.error(&format!("rrl.exempt[{i}]"), e)),
            }
        }
        if spec.rrl.ipv4_prefix > 32 || spec.rrl.ipv6_prefix > 128 {
            errors.0.push(doc.error(
                "rrl",
                "`ipv4_prefix` must be 0..=32 and `ipv6_prefix` 0..=128",
            ));
        }
        let rrl = (spec.rrl.enabled && spec.rrl.responses_per_second > 0).then(|| Rrl {
            responses_per_second: spec.rrl.responses_per_second,
            slip: spec.rrl.slip,
            ipv4_prefix: spec.rrl.ipv4_prefix.min(32),
            ipv6_prefix: spec.rrl.ipv6_prefix.min(128),
            exempt,
        });
        let control_mode = match u32::from_str_radix(spec.control.mode.trim_start_matches("0o"), 8)
        {
            Ok(m) if m <= 0o777 => m,
            _ => {
                errors.0.push(doc.error(
                    "control.mode",
                    "expected an octal file mode such as \"0660\"",
                ));
                0o660
            }
        };
        let reload_low_priority = match spec.reload_priority.as_str() {
            "low" => true,
            "normal" => false,
            _ => {
                errors
                    .0
                    .push(doc.error("reload_priority", "expected `low` or `normal`"));
                true
            }
        };
        let health_initial = match spec.health.initial.as_str() {
            "up" => crate::health::State::Up,
            "down" => crate::health::State::Down,
            _ => {
                errors
                    .0
                    .push(doc.error("health.initial", "expected `up` or `down`"));
                crate::health::State::Up
            }
        };
        let as_path = |s: &String| match resolve(s) {
            DataSource::File(p) => Some(p),
            DataSource::Embedded(_) => Some(PathBuf::from(s)),
        };
        let workers = if spec.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            spec.workers
        };
        let mut seen = HashMap::new();
        for z in &zones {
            if seen.insert(z.apex.clone(), ()).is_some() {
                errors
                    .0
                    .push(doc.error("zones", format!("zone {} is declared twice", z.apex_text)));
            }
        }
        let config = Config {
            origin,
            listen,
            workers,
            udp_payload_max: spec.udp_payload_max,
            tcp: TcpLimits {
                idle_timeout: Duration::from_millis(spec.tcp.idle_timeout_ms),
                max_connections: spec.tcp.max_connections.max(1),
                max_connections_per_client: spec.tcp.max_connections_per_client.max(1),
                max_queries_per_connection: spec.tcp.max_queries_per_connection.max(1),
            },
            server_id: Some(spec.identity.server_id).filter(|s| !s.is_empty()),
            version: spec.identity.version,
            why_enabled: spec.why.enabled,
            why_allow,
            rrl,
            zones,
            maps: spec.maps.iter().map(|m| resolve(m)).collect(),
            geoip: spec
                .geoip
                .iter()
                .map(|d| DataFile {
                    source: resolve(&d.path),
                    format: d.format.clone(),
                })
                .collect(),
            bgp: spec
                .bgp
                .iter()
                .map(|d| DataFile {
                    source: resolve(&d.path),
                    format: d.format.clone(),
                })
                .collect(),
            reload_debounce: Duration::from_millis(spec.reload_debounce_ms),
            reload_low_priority,
            control_socket: spec.control.socket.as_ref().and_then(as_path),
            control_mode,
            state_file: spec.state_file.as_ref().and_then(as_path),
            health_initial,
            health_startup_wait: Duration::from_millis(spec.health.startup_wait_ms),
            max_concurrent_checks: spec.health.max_concurrent_checks,
        };
        errors.into_result(config)
    }

    /// Files whose change should trigger a reload.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut push = |s: &DataSource| {
            if let DataSource::File(p) = s {
                out.push(p.clone());
            }
        };
        push(&self.origin);
        self.maps.iter().for_each(&mut push);
        self.geoip.iter().for_each(|d| push(&d.source));
        self.bgp.iter().for_each(|d| push(&d.source));
        out
    }
}

/// Decodes and builds every zone, collecting all problems.
fn load_zones(doc: &Document, value: &Value, errors: &mut Errors) -> Vec<Zone> {
    let mut zones = Vec::new();
    for (path, spec) in doc.decode_each::<ZoneSpec>("zones", value, errors) {
        if let Some(z) = build_zone(doc, &path, spec, errors) {
            zones.push(z);
        }
    }
    zones
}

/// Record bodies by (owner, type), with the order of first appearance.
type RecordSets = BTreeMap<(Box<[u8]>, u16), (usize, Vec<Box<[u8]>>)>;

fn build_zone(doc: &Document, path: &str, spec: ZoneSpec, errors: &mut Errors) -> Option<Zone> {
    let before = errors.0.len();
    let root = Name::root();
    let apex = match zone::parse_name(&spec.apex, &root) {
        Ok(n) => n,
        Err(e) => {
            errors.0.push(doc.error(&format!("{path}.apex"), e));
            return None;
        }
    };
    let apex_wire = zone::wire(&apex);
    let name_of = |field: &str, text: &str, errors: &mut Errors| match zone::parse_name(text, &apex)
    {
        Ok(n) => Some(n),
        Err(e) => {
            errors.0.push(doc.error(&format!("{path}.{field}"), e));
            None
        }
    };
    let mname = name_of("soa.mname", &spec.soa.mname, errors);
    let rname = name_of("soa.rname", &spec.soa.rname, errors);
    let soa_ttl = spec.soa.ttl.unwrap_or(spec.ttl);
    let mut sets: RecordSets = BTreeMap::new();
    let mut order = 0usize;
    let mut add = |owner: Box<[u8]>, rt: u16, body: Box<[u8]>| {
        order += 1;
        sets.entry((owner, rt))
            .or_insert_with(|| (order, Vec::new()))
            .1
            .push(body);
    };
    let mut glue = Vec::new();
    if spec.ns.is_empty() {
        errors.0.push(doc.error(
            &format!("{path}.ns"),
            "a zone needs at least one name server",
        ));
    }
    for (i, ns) in spec.ns.iter().enumerate() {
        let (name, addrs) = match ns {
            NsSpec::Name(n) => (n, &[][..]),
            NsSpec::WithGlue { name, addresses } => (name, &addresses[..]),
        };
        let Some(n) = name_of(&format!("ns[{i}]"), name, errors) else {
            continue;
        };
        let w = zone::wire(&n);
        add(
            apex_wire.clone(),
            rtype::NS,
            zone::body(rtype::NS, spec.ttl, &w),
        );
        if !addrs.is_empty() && !zone::is_within(&w, &apex_wire) {
            errors.0.push(doc.error(
                &format!("{path}.ns[{i}].addresses"),
                "glue is only for name servers inside the zone",
            ));
        }
        for a in addrs {
            let (rt, rd) = match a {
                std::net::IpAddr::V4(v4) => (rtype::A, v4.octets().to_vec()),
                std::net::IpAddr::V6(v6) => (rtype::AAAA, v6.octets().to_vec()),
            };
            let b = zone::body(rt, spec.ttl, &rd);
            add(w.clone(), rt, b.clone());
            glue.push(Glue {
                owner: w.clone(),
                body: b,
            });
        }
    }
    for (rpath, r) in
        doc.decode_each::<RecordSpec>(&format!("{path}.records"), &spec.records, errors)
    {
        let Some(rt) = zone::type_from_str(&r.rtype) else {
            errors.0.push(doc.error(
                &format!("{rpath}.type"),
                format!(
                    "unsupported type {:?}; expected A, AAAA, CNAME, TXT, MX, CAA, SRV, NS or PTR",
                    r.rtype
                ),
            ));
            continue;
        };
        let owner = match zone::parse_name(&r.name, &apex) {
            Ok(n) => zone::wire(&n),
            Err(e) => {
                errors.0.push(doc.error(&format!("{rpath}.name"), e));
                continue;
            }
        };
        if !zone::is_within(&owner, &apex_wire) {
            errors.0.push(doc.error(
                &format!("{rpath}.name"),
                format!("{} is outside the zone {}", r.name, apex),
            ));
            continue;
        }
        let values: Vec<&String> = match (&r.value, &r.values) {
            (Some(v), None) => vec![v],
            (None, Some(vs)) if !vs.is_empty() => vs.iter().collect(),
            _ => {
                errors.0.push(doc.error(
                    &rpath,
                    "give exactly one of `value` or `values` (non-empty)",
                ));
                continue;
            }
        };
        let ttl = r.ttl.unwrap_or(spec.ttl);
        for (vi, v) in values.iter().enumerate() {
            match zone::rdata(rt, v, &apex) {
                Ok(rd) => add(owner.clone(), rt, zone::body(rt, ttl, &rd)),
                Err(e) => {
                    let vp = if r.values.is_some() {
                        format!("{rpath}.values[{vi}]")
                    } else {
                        format!("{rpath}.value")
                    };
                    errors.0.push(doc.error(&vp, e));
                }
            }
        }
    }
    let (Some(mname), Some(rname)) = (mname, rname) else {
        return None;
    };
    let s = &spec.soa;
    let soa = zone::body(
        rtype::SOA,
        soa_ttl,
        &zone::soa_rdata(
            &mname,
            &rname,
            [s.serial, s.refresh, s.retry, s.expire, s.minimum],
        ),
    );
    let mut nodes = zone::NodeMap::default();
    nodes
        .entry(apex_wire.clone())
        .or_default()
        .sets
        .push(RecordSet {
            rtype: rtype::SOA,
            records: vec![soa.clone()],
        });
    let mut ordered: Vec<_> = sets.into_iter().collect();
    ordered.sort_by_key(|(_, (o, _))| *o);
    for ((owner, rt), (_, records)) in ordered {
        zone::add_ancestors(&mut nodes, &owner, &apex_wire);
        let node = nodes.entry(owner.clone()).or_default();
        if rt == rtype::CNAME {
            if records.len() > 1 {
                errors.0.push(doc.error(
                    &format!("{path}.records"),
                    format!("{} has more than one CNAME", show(&owner)),
                ));
            }
            node.cname_target = Some(records[0][10..].into());
        }
        node.sets.push(RecordSet { rtype: rt, records });
    }
    for (owner, node) in &nodes {
        if node.cname_target.is_some() && node.sets.len() > 1 {
            errors.0.push(doc.error(
                &format!("{path}.records"),
                format!(
                    "{} has a CNAME and other records (RFC 1034 §3.6.2)",
                    show(owner)
                ),
            ));
        }
    }
    if errors.0.len() > before {
        return None;
    }
    Some(Zone {
        apex: apex_wire,
        apex_text: apex.to_ascii(),
        soa,
        negative_ttl: soa_ttl.min(s.minimum),
        nodes,
        glue,
    })
}

/// A wire-form name as text, for messages.
pub fn show(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < wire.len() && wire[i] != 0 {
        let l = wire[i] as usize;
        let end = (i + 1 + l).min(wire.len());
        out.push_str(&String::from_utf8_lossy(&wire[i + 1..end]));
        out.push('.');
        i = end;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Errors> {
        Config::from_text("t.yaml", text, DataSource::Embedded("t".into()), &|p| {
            DataSource::File(p.into())
        })
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded().unwrap();
        assert_eq!(c.zones.len(), 1);
        assert_eq!(c.listen[0].addr, "127.0.0.1:5353".parse().unwrap());
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let text = "zones:\n  - apex: example.test\n    soa: {mname: ns1, rname: hostmaster}\n    ns: [ns1]\n    records:\n      - {name: www, type: A, value: 1.2.3}\n      - {name: x, type: BOGUS, value: y}\n      - {name: mx, type: MX, value: '10 mail', colour: red}\n";
        let err = parse(text).err().unwrap();
        let s = err.to_string();
        assert_eq!(err.0.len(), 3, "{s}");
        assert!(s.contains("t.yaml:6:"), "{s}");
        assert!(
            s.contains("zones[0].records[0].value: \"1.2.3\" is not an IPv4 address"),
            "{s}"
        );
        assert!(
            s.contains("zones[0].records[1].type: unsupported type"),
            "{s}"
        );
        assert!(
            s.contains("zones[0].records[2].colour: unknown field"),
            "{s}"
        );
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let err = parse("listen: ['127.0.0.1:53']\nlisten_extra: 1\n")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("t.yaml:2:1: listen_extra: unknown field"),
            "{err}"
        );
    }
}
