//! The compiler: map specs, the daemon configuration and the client data in, one
//! [`Snapshot`] out, with every cross-file problem reported at once. Pure: it reads no file
//! (the files a map refers to come through the caller's [`ReadFile`]), holds no lock and
//! publishes nothing; it runs on the reload thread and in the offline commands, never on the
//! query path.
//!
//! Reading order (files of `src/compile/`): `nodes.rs` (nodes and regions), `service.rs` (one
//! service's policies), `rules.rs` (its rules, by [`RuleKind`](crate::snapshot::RuleKind)),
//! `rank.rs` (ranking inside a region: each `rank:` mode's checks and per-node ranks),
//! `live.rs` (the live feeds as input), `table.rs` (the route tables and ECS scopes),
//! `zones.rs` (service names in the zones), `sign.rs` (signing the zones, DNSSEC) and
//! `sign_cache.rs` (the signatures kept from one build to the next).

mod live;
mod nodes;
mod rank;
mod rules;
mod service;
mod sign;
mod sign_cache;
mod table;
mod zones;

use std::collections::HashSet;
use std::sync::Arc;

use crate::client::ClientData;
use crate::config::{Config, DataSource, ReadError};
use crate::geo::{GeoLayer, Layout};
use crate::health::{HealthTable, State};
use crate::live::FeedTable;
use crate::snapshot::{Ranking, Settings, Snapshot};
use crate::source::{Document, Errors, quote};
use crate::spec::{MapFileSpec, NodeSpec, Rank, RegionSpec, ServiceSpec};

pub use sign_cache::SignatureCache;

/// A map file's text and where it came from.
pub struct MapText {
    /// Where it is.
    pub source: DataSource,
    /// Its contents.
    pub text: String,
}

/// Reads a file a map refers to (a prefix file, relative to the map): the compiler's only
/// window on storage, provided by the caller.
pub type ReadFile<'a> = dyn Fn(&DataSource) -> Result<Vec<u8>, ReadError> + 'a;

/// Everything a build needs besides the configuration.
pub struct Inputs<'a> {
    /// Loaded client data.
    pub client: Arc<ClientData>,
    /// Map files.
    pub maps: &'a [MapText],
    /// Reads the files the maps refer to.
    pub files: &'a ReadFile<'a>,
    /// The live BGP feeds' tables (none offline).
    pub live: &'a [FeedTable],
    /// The signatures of earlier builds of the same sources, to reuse while fresh (none: every
    /// set is signed).
    pub signatures: Option<&'a SignatureCache>,
}

/// Whether a region of `maps` ranks by distance: the client data must then keep the GeoIP
/// databases' coordinates, which are otherwise dropped after the walk. The regions are
/// decoded as the build decodes them, leniently (a file or a region that does not decode wants
/// nothing); the build reports what is wrong with them.
pub fn wants_locations(maps: &[MapText]) -> bool {
    maps.iter().any(|m| {
        let Ok(file) = serde_yaml::from_str::<MapFileSpec>(&m.text) else {
            return false;
        };
        let serde_yaml::Value::Sequence(regions) = file.regions else {
            return false;
        };
        regions.into_iter().any(|r| {
            serde_yaml::from_value::<RegionSpec>(r)
                .is_ok_and(|r| r.rank.given() == Some(&Rank::Distance))
        })
    })
}

/// Builds a snapshot, or reports every problem found. Every node of the new snapshot starts
/// up; the caller applies node states before publishing it.
pub fn build(config: &Config, inputs: Inputs<'_>) -> Result<Snapshot, Errors> {
    let mut errors = Errors::default();
    let mut docs = Vec::new();
    for m in inputs.maps {
        match Document::parse(&m.source.display(), &m.text) {
            Ok(d) => docs.push((m, d)),
            Err(e) => errors.extend(e),
        }
    }
    let decoded = decode(&docs, docs.len() < inputs.maps.len(), &mut errors);
    let (node_set, region_set) = sets(&decoded, &mut errors);
    let live = live::Live::prepare(
        config,
        inputs.live,
        &node_set,
        &proximity_nodes(&region_set),
        &mut errors,
    );

    // Zones, with services attached.
    let mut zones = config.zones.clone();
    zones.sort_by_key(|z| std::cmp::Reverse(z.apex.len()));
    // Every location database, the first that knows an address deciding for it.
    let location_layers: Vec<Arc<GeoLayer>> = inputs
        .client
        .geo()
        .filter(|d| d.layout != Layout::Asn)
        .map(|d| d.layer.clone())
        .collect();
    let geo_layer = GeoLayer::merged(&location_layers);
    let t = std::time::Instant::now();
    let ctx = service::Context {
        nodes: &node_set,
        regions: &region_set,
        client: &inputs.client,
        geo: &geo_layer,
        files: inputs.files,
        live: &live,
        locations: Default::default(),
    };
    let mut services = services(&ctx, &decoded.services, &mut zones, config, &mut errors);
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        v4_blocks = services.iter().map(|s| s.v4.len()).sum::<usize>(),
        v6_blocks = services.iter().map(|s| s.v6.len()).sum::<usize>(),
        table_bytes = services
            .iter()
            .map(|s| s.v4.bytes() + s.v6.bytes())
            .sum::<usize>(),
        "services compiled"
    );
    if !errors.is_empty() {
        return Err(errors);
    }

    let nodes = node_set.nodes;
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let health = HealthTable::new(names, State::Up);
    for s in &mut services {
        s.settle_usual(&nodes, &health);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    sign::sign_zones(
        &mut zones,
        &services,
        &nodes,
        now,
        inputs.signatures,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Snapshot {
        zones,
        services,
        nodes,
        health: Arc::new(health),
        settings: Settings {
            server_id: config.server_id.clone(),
            version: config.version.clone(),
            udp_payload_max: config.udp_payload_max,
            udp_nocookie_max: match config.cookies.max_nocookie_response {
                0 => config.udp_payload_max,
                n => n.min(config.udp_payload_max),
            },
            why_enabled: config.why_enabled,
            why_allow: config.why_allow.clone(),
            cookies: crate::snapshot::cookie::Cookies {
                // The keys are the serving state's to set, at publication.
                keys: Default::default(),
                configured: config.cookies.secret,
                max_nocookie_response: config.cookies.max_nocookie_response,
            },
            // RFC 7828: in units of 100 milliseconds.
            tcp_idle_timeout: (config.tcp.idle_timeout.as_millis() / 100).min(u16::MAX as u128)
                as u16,
        },
        versions: versions(inputs.maps, &inputs.client, &live.data),
        client: inputs.client,
        live: Arc::new(live.data),
        tally: Arc::default(),
        cell_base: Vec::new(),
        capacity_unit: decoded.capacity_unit,
    })
}

/// The nodes and regions of the decoded maps, each set knowing the names that were declared
/// but did not decode (so that a reference to one is not reported as unknown).
fn sets(decoded: &Decoded, errors: &mut Errors) -> (nodes::NodeSet, nodes::RegionSet) {
    let mut node_set = nodes::nodes(&decoded.nodes, errors);
    node_set.broken = nodes::Broken {
        names: decoded
            .declared_nodes
            .iter()
            .filter(|n| !decoded.nodes.iter().any(|(_, _, s)| &s.name == *n))
            .cloned()
            .collect(),
        all: decoded.incomplete,
    };
    let mut region_set = nodes::regions(&decoded.regions, &decoded.nodes, &mut node_set, errors);
    region_set.broken = nodes::Broken {
        names: decoded
            .declared_regions
            .iter()
            .filter(|n| !decoded.regions.iter().any(|(_, _, s)| &s.name == *n))
            .cloned()
            .collect(),
        all: decoded.incomplete,
    };
    (node_set, region_set)
}

/// The nodes of proximity regions (their AS paths are the live feeds' input), sorted.
fn proximity_nodes(regions: &nodes::RegionSet) -> Vec<usize> {
    let mut out: Vec<usize> = regions
        .regions
        .iter()
        .filter(|r| r.rank == Ranking::Proximity)
        .flat_map(|r| r.members.iter().map(|&(n, _)| n))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Compiles every service and attaches its names to `zones`; a service that fails keeps its
/// index with a placeholder (the build fails anyway).
fn services(
    ctx: &service::Context<'_>,
    specs: &[(&Document, &MapText, String, ServiceSpec)],
    zones: &mut [crate::zone::Zone],
    config: &Config,
    errors: &mut Errors,
) -> Vec<crate::snapshot::Service> {
    let mut services = Vec::new();
    let mut names = zones::Names {
        zones,
        seen: HashSet::new(),
        why_enabled: config.why_enabled,
    };
    for (d, m, p, s) in specs {
        let idx = services.len();
        let before = errors.0.len();
        let svc = service::service(ctx, d, m, p, s, errors);
        names.attach(d, p, s, idx, errors);
        match svc {
            Some(svc) if errors.0.len() == before => services.push(svc),
            // Keep indices stable for the names attached above; the build fails anyway.
            _ => services.push(service::placeholder()),
        }
    }
    steered_once(&services, specs, ctx.nodes, errors);
    services
}

/// Every map file's sections, decoded, with where each item is; the names the files define,
/// decoded or not; whether some file could not be read at all (`incomplete`); and the
/// capacity unit they agree on.
struct Decoded<'a> {
    nodes: Vec<(&'a Document, String, NodeSpec)>,
    regions: Vec<(&'a Document, String, RegionSpec)>,
    services: Vec<(&'a Document, &'a MapText, String, ServiceSpec)>,
    declared_nodes: HashSet<String>,
    declared_regions: HashSet<String>,
    incomplete: bool,
    capacity_unit: Option<String>,
}

/// Decodes the parsed map files (`incomplete`: some file did not even parse).
fn decode<'a>(
    docs: &'a [(&'a MapText, Document)],
    mut incomplete: bool,
    errors: &mut Errors,
) -> Decoded<'a> {
    let mut node_specs: Vec<(&Document, String, NodeSpec)> = Vec::new();
    let mut region_specs: Vec<(&Document, String, RegionSpec)> = Vec::new();
    let mut service_specs: Vec<(&Document, &MapText, String, ServiceSpec)> = Vec::new();
    // Names defined in the files, decoded or not, and whether a whole file is unreadable.
    let mut declared_nodes: HashSet<String> = HashSet::new();
    let mut declared_regions: HashSet<String> = HashSet::new();
    let mut capacity_unit: Option<String> = None;
    for (m, d) in docs {
        let Some(file) = d.decode::<MapFileSpec>("", &d.root, errors) else {
            incomplete = true;
            continue;
        };
        if let Some(u) = &file.capacity_unit {
            match &capacity_unit {
                Some(prev) if prev != u => errors.0.push(d.error(
                    "capacity_unit",
                    format!(
                        "{} differs from {} given in another map file: one unit for all maps",
                        quote(u),
                        quote(prev)
                    ),
                )),
                _ => capacity_unit = Some(u.clone()),
            }
        }
        declared_nodes.extend(names(&file.nodes));
        declared_regions.extend(names(&file.regions));
        for (p, n) in d.decode_each::<NodeSpec>("nodes", &file.nodes, errors) {
            node_specs.push((d, p, n));
        }
        for (p, r) in d.decode_each::<RegionSpec>("regions", &file.regions, errors) {
            region_specs.push((d, p, r));
        }
        for (p, s) in d.decode_each::<ServiceSpec>("services", &file.services, errors) {
            service_specs.push((d, m, p, s));
        }
    }
    Decoded {
        nodes: node_specs,
        regions: region_specs,
        services: service_specs,
        declared_nodes,
        declared_regions,
        incomplete,
        capacity_unit,
    }
}

/// Refuses a node steered by capacity in two services: each service's controller would
/// answer the same load, each undoing the other's steps.
fn steered_once(
    services: &[crate::snapshot::Service],
    specs: &[(&Document, &MapText, String, ServiceSpec)],
    nodes: &nodes::NodeSet,
    errors: &mut Errors,
) {
    let mut steered_by: std::collections::HashMap<usize, usize> = Default::default();
    for (i, svc) in services.iter().enumerate() {
        if svc.steering.is_none() {
            continue;
        }
        let mut mine = HashSet::new();
        for d in &svc.decisions {
            for &r in d.chain.iter() {
                mine.extend(svc.regions[r].members.iter().map(|&(n, _)| n));
            }
        }
        let mut mine: Vec<usize> = mine.into_iter().collect();
        mine.sort_unstable();
        for n in mine {
            match steered_by.get(&n) {
                Some(&j) if j != i => {
                    let (d, _, p, _) = &specs[i];
                    errors.0.push(d.error(
                        &format!("{p}.spread"),
                        format!(
                            "node {} is steered by capacity in two services ({} and {}); \
                             give one service both names",
                            quote(&nodes.nodes[n].name),
                            quote(services[j].names.first().map_or("", String::as_str)),
                            quote(svc.names.first().map_or("", String::as_str)),
                        ),
                    ));
                    return;
                }
                _ => {
                    steered_by.insert(n, i);
                }
            }
        }
    }
}

/// The `name` of every mapping in a section's list, whether or not the item decodes.
fn names(section: &serde_yaml::Value) -> impl Iterator<Item = String> + '_ {
    section
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("name")?.as_str().map(str::to_string))
}

/// The data versions line: a hash of the map texts and the client data's versions.
fn versions(maps: &[MapText], client: &ClientData, live: &crate::live::LiveData) -> String {
    let maps_hash = maps.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, m| {
        m.text
            .bytes()
            .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    });
    let mut versions = format!("maps {:016x} ({} files)", maps_hash, maps.len());
    let cv = client.versions();
    if !cv.is_empty() {
        versions.push_str("; ");
        versions.push_str(&cv);
    }
    if !live.is_empty() {
        versions.push_str(&format!(
            "; feeds: {} ({} routes)",
            live.feeds.len(),
            live.routes()
        ));
    }
    versions
}

/// A "did you mean" hint.
pub(super) fn hint<'a>(wanted: &str, known: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&String> = known.collect();
    names.sort();
    let close: Vec<&&String> = names
        .iter()
        .filter(|k| {
            k.to_lowercase() == wanted.to_lowercase()
                || k.starts_with(wanted)
                || wanted.starts_with(k.as_str())
        })
        .collect();
    match close.first() {
        Some(c) => format!("; did you mean {}?", quote(c)),
        None if names.len() <= 8 => format!(
            "; known: {}",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    }
}
