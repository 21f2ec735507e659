//! Daemon settings: the runtime [`Config`] built from `signpost.yaml` (its format is in
//! [`spec`], its zones are built by `zones.rs`, its BGP feeds by `feeds.rs`).
//!
//! The format is strict: unknown keys are errors, and every problem is reported with
//! `file:line:column`, its YAML path and what was expected, all at once. Relative paths in the
//! file are relative to the file's directory. The embedded default configuration (see
//! [`crate::embedded`]) goes through the same code.

mod anycast;
pub mod anycast_spec;
pub mod cookies;
mod dnssec;
pub mod dnssec_spec;
mod feeds;
pub mod feeds_spec;
mod reload;
mod sections;
pub mod spec;
mod zones;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::source::{Document, Errors};
use crate::zone::Zone;
pub use anycast::{Anycast, AnycastPrefix, LoadFailurePolicy};
use sections::{control, data_files, listen, networks, query_log, rrl, tcp_limits};
pub use spec::{BgpFormat, GeoipFormat};
use spec::{ConfigSpec, InitialState, ReloadPriority};
use zones::load_zones;

/// Response rate limiting, ready to use.
#[derive(Clone, Debug, PartialEq)]
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

/// One listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The address.
    pub addr: SocketAddr,
    /// Serve UDP.
    pub udp: bool,
    /// Serve TCP.
    pub tcp: bool,
    /// Skipped with a warning when it cannot be bound.
    pub optional: bool,
}

/// TCP limits, ready to use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TcpLimits {
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Global connection cap.
    pub max_connections: usize,
    /// Per-client-address connection cap.
    pub max_connections_per_client: usize,
    /// Queries per connection.
    pub max_queries_per_connection: u32,
    /// Per-client-network connection cap.
    pub max_connections_per_network: usize,
    /// IPv4 client network length.
    pub ipv4_prefix: u8,
    /// IPv6 client network length.
    pub ipv6_prefix: u8,
    /// The least time without a query after which a connection may be closed to make room.
    pub reclaim_idle: Duration,
    /// The largest share (per cent) of the file descriptor limit DNS TCP may hold.
    pub max_fd_percent: u8,
}

/// The reload guard, ready to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadGuard {
    /// Hold reloads that remove served names or shrink the data.
    pub enabled: bool,
    /// The largest shrink (per cent) accepted without confirmation.
    pub max_shrink_percent: u8,
}

/// Where a data file comes from: disk, or bytes compiled into the binary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    pub fn read(&self) -> Result<Vec<u8>, ReadError> {
        match self {
            DataSource::File(p) => std::fs::read(p).map_err(ReadError::Io),
            DataSource::Embedded(name) => crate::embedded::file(name)
                .map(|b| b.to_vec())
                .ok_or(ReadError::NotEmbedded),
        }
    }

    /// The input at `rel`, relative to this one's directory.
    pub fn sibling(&self, rel: &str) -> DataSource {
        match self {
            DataSource::File(p) => DataSource::File(p.parent().unwrap_or(Path::new(".")).join(rel)),
            DataSource::Embedded(name) => {
                let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                DataSource::Embedded(crate::embedded::resolve(&format!("{dir}/"), rel))
            }
        }
    }
}

/// Why an input could not be read (the message does not repeat the input's name).
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The name is not part of the embedded default.
    NotEmbedded,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotEmbedded => f.write_str("not part of the embedded default"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Live BGP feeds, ready to use.
#[derive(Clone, Debug)]
pub struct Feeds {
    /// Signpost's AS number.
    pub asn: u32,
    /// Signpost's BGP identifier.
    pub router_id: std::net::Ipv4Addr,
    /// Where passive peers connect.
    pub listen: Option<SocketAddr>,
    /// Between connection attempts to active peers.
    pub connect_retry: Duration,
    /// How long a dropped session's routes are kept, stale.
    pub stale: Duration,
    /// Longest wait between a feed change and the build that follows.
    pub update_delay: Duration,
    /// The routers.
    pub peers: Vec<FeedPeer>,
}

/// One router of the feeds, as configured: the one declaration of a peer's options, which the
/// BGP sessions read as they are (`feed::Peer` holds it).
#[derive(Clone, Debug)]
pub struct FeedPeer {
    /// Name used in logs, status and exported tables; unique.
    pub name: String,
    /// The router's address: the source address of its connections for a passive session, the
    /// address connected to for an active one.
    pub address: std::net::IpAddr,
    /// The router's AS number, checked against its OPEN.
    pub asn: u32,
    /// The nodes whose view it is, each with where it is named (for the compiler's errors).
    pub nodes: Vec<(String, crate::source::SourceError)>,
    /// Wait for the router to connect (`true`: its connections are accepted on `feeds.listen`)
    /// or connect to it (`false`: its incoming connections are refused).
    pub passive: bool,
    /// Remote TCP port for an active session (179 normally); unused when passive.
    pub port: u16,
    /// Local address to connect from (active sessions only).
    pub local_address: Option<std::net::IpAddr>,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3. The session uses the
    /// smaller of this and the router's.
    pub hold_time: u16,
    /// The shortest hold time, in seconds, accepted from the router: an OPEN proposing less
    /// (0 included) is answered with OPEN Message Error / Unacceptable Hold Time. 0 accepts
    /// every hold time RFC 4271 allows. `hold_time` must not be below it.
    pub min_hold_time: u16,
    /// Negotiate IPv4 unicast.
    pub ipv4: bool,
    /// Negotiate IPv6 unicast.
    pub ipv6: bool,
    /// Most routes kept per address family, fresh and stale together; one fresh route more
    /// closes the session with Cease / Maximum Number of Prefixes Reached, a new route that
    /// only the stale ones push over it removes a stale one. `None`: the feed's default cap.
    pub max_prefixes: Option<u32>,
}

/// A data file to load; `F` is its kind's formats ([`GeoipFormat`], [`BgpFormat`]).
#[derive(Clone, Debug)]
pub struct DataFile<F> {
    /// Where it is.
    pub source: DataSource,
    /// The declared format (`auto` when not given).
    pub format: F,
}

/// The daemon's runtime configuration. Whether a reload applies a field, or only a restart
/// does, is decided in `reload.rs` ([`Config::restart_needed`]), which names every field: a new
/// one does not compile until it is placed there.
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
    /// The key files of the signed zones (both files of each key; watched).
    pub key_files: Vec<DataSource>,
    /// Map files (directories expanded at load time).
    pub maps: Vec<DataSource>,
    /// GeoIP databases.
    pub geoip: Vec<DataFile<GeoipFormat>>,
    /// BGP tables.
    pub bgp: Vec<DataFile<BgpFormat>>,
    /// Live BGP feeds.
    pub feeds: Option<Feeds>,
    /// Announcing the service prefixes over the feeds (`anycast.rs`).
    pub anycast: Option<Anycast>,
    /// Reload debounce.
    pub reload_debounce: Duration,
    /// Run reloads at the lowest CPU priority.
    pub reload_low_priority: bool,
    /// Which reloads wait for confirmation.
    pub reload_guard: ReloadGuard,
    /// Control socket path.
    pub control_socket: Option<PathBuf>,
    /// Control socket file mode.
    pub control_mode: u32,
    /// Control connections open at once.
    pub control_max_connections: usize,
    /// Control connections: time to send a request line and take its response.
    pub control_idle_timeout: Duration,
    /// Admin override state file.
    pub state_file: Option<PathBuf>,
    /// State of a checked node before its first result.
    pub health_initial: crate::health::State,
    /// Bound on the first round of checks.
    pub health_startup_wait: Duration,
    /// Checks running at once.
    pub max_concurrent_checks: usize,
    /// The metrics endpoint's address.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve without the metrics endpoint when its address cannot be bound.
    pub metrics_optional: bool,
    /// The query log.
    pub query_log: Option<QueryLog>,
    /// DNS Cookies.
    pub cookies: cookies::Cookies,
}

/// The query log's settings.
#[derive(Debug, Clone)]
pub struct QueryLog {
    /// The file.
    pub path: PathBuf,
    /// Fraction of queries logged.
    pub sample_rate: f64,
    /// Queue length.
    pub queue: usize,
    /// Where `path` is written (an error without a message), for `signpost check` to report
    /// a file the server could not open at its position.
    pub path_at: crate::source::SourceError,
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
        let listen = listen(&doc, &spec.listen, &mut errors);
        if spec.udp_payload_max < 512 {
            errors
                .0
                .push(doc.error("udp_payload_max", "must be at least 512"));
        }
        let why_allow = networks(&doc, "why.allow", &spec.why.allow, &mut errors);
        let geoip = data_files(&doc, "geoip", &spec.geoip, resolve, &mut errors);
        let bgp = data_files(&doc, "bgp", &spec.bgp, resolve, &mut errors);
        let mut key_files = Vec::new();
        let zones = load_zones(&doc, &spec.zones, resolve, &mut errors, &mut key_files);
        let feeds = spec
            .feeds
            .as_ref()
            .map(|f| feeds::load(&doc, f, &mut errors));
        let anycast = spec
            .anycast
            .as_ref()
            .and_then(|a| anycast::load(&doc, a, feeds.as_ref(), &mut errors));
        let rrl = rrl(&doc, &spec.rrl, &mut errors);
        let control_mode = control(&doc, &spec.control, &mut errors);
        let reload_low_priority = doc
            .choice("reload_priority", &spec.reload_priority, &mut errors)
            .unwrap_or_default()
            == ReloadPriority::Low;
        if spec.reload_guard.max_shrink_percent > 100 {
            errors
                .0
                .push(doc.error("reload_guard.max_shrink_percent", "must be 0..=100"));
        }
        let tcp = tcp_limits(&doc, &spec.tcp, &mut errors);
        let health_initial = match doc
            .choice("health.initial", &spec.health.initial, &mut errors)
            .unwrap_or_default()
        {
            InitialState::Up => crate::health::State::Up,
            InitialState::Down => crate::health::State::Down,
        };
        let as_path = |s: &String| match resolve(s) {
            DataSource::File(p) => Some(p),
            DataSource::Embedded(_) => Some(PathBuf::from(s)),
        };
        let metrics_listen = spec.metrics.listen.as_ref().and_then(|a| match a.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errors.0.push(doc.error(
                    "metrics.listen",
                    format!("{a:?} is not ADDRESS:PORT (IPv6 in brackets, e.g. \"[::1]:9153\")"),
                ));
                None
            }
        });
        let query_log = spec
            .query_log
            .as_ref()
            .and_then(|q| query_log(&doc, q, &as_path, &mut errors));
        let cookies = cookies::decode(&spec.cookies, &doc, &mut errors, resolve);
        let workers = if spec.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            spec.workers
        };
        let config = Config {
            origin,
            listen,
            workers,
            udp_payload_max: spec.udp_payload_max,
            tcp,
            server_id: Some(spec.identity.server_id).filter(|s| !s.is_empty()),
            version: spec.identity.version,
            why_enabled: spec.why.enabled,
            why_allow,
            rrl,
            zones,
            key_files,
            maps: spec.maps.iter().map(|m| resolve(m)).collect(),
            geoip,
            bgp,
            feeds,
            anycast,
            reload_debounce: Duration::from_millis(spec.reload_debounce_ms),
            reload_low_priority,
            reload_guard: ReloadGuard {
                enabled: spec.reload_guard.enabled,
                max_shrink_percent: spec.reload_guard.max_shrink_percent.min(100),
            },
            control_socket: spec.control.socket.as_ref().and_then(as_path),
            control_mode,
            control_max_connections: spec.control.max_connections.max(1),
            control_idle_timeout: Duration::from_millis(spec.control.idle_timeout_ms),
            state_file: spec.state_file.as_ref().and_then(as_path),
            health_initial,
            health_startup_wait: Duration::from_millis(spec.health.startup_wait_ms),
            max_concurrent_checks: spec.health.max_concurrent_checks,
            metrics_listen,
            metrics_optional: spec.metrics.optional,
            query_log,
            cookies,
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
        self.cookies.secret_file.iter().for_each(&mut push);
        self.key_files.iter().for_each(&mut push);
        out
    }
}

#[cfg(test)]
mod tests;
