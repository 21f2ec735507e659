//! Specs + client data → [`Snapshot`]: all cross-file validation, and the compilation of each
//! service's rules over the GeoIP and BGP data into one flat route table per family.
//!
//! For every address, a service's decision is: the longest operator prefix rule that covers
//! it; else the rule for the origin ASN of its longest BGP prefix; else its subdivision,
//! country or continent rule (from the GeoIP data); else the default rule. Local-only nodes add
//! a bit to the decision for the clients they may serve. The address space is cut into
//! maximal ranges of equal decision, then into CIDR blocks, whose lengths are the ECS scopes.
//! Runs on the reload thread, never on the query path.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ip_network::IpNetwork;

use crate::client::ClientData;
use crate::config::{Config, DataSource};
use crate::dns::wire::rtype;
use crate::geo::{self, GeoLayer, Layout};
use crate::health::{HealthTable, State};
use crate::ranges::{self, Range};
use crate::snapshot::{
    AllDown, Decision, MAX_ANSWERS, Node, Region, RouteTable, RuleInfo, Service, Settings, Snapshot,
};
use crate::source::{Document, Errors};
use crate::spec::{
    MapFileSpec, MemberSpec, NodeSpec, RegionSpec, RuleSpec, ServiceSpec, parse_cidr,
};
use crate::zone;

/// A map file's text and where it came from.
pub struct MapText {
    /// Where it is.
    pub source: DataSource,
    /// Its contents.
    pub text: String,
}

/// Reads the map files named by the configuration (directories expanded to their `*.yaml`
/// and `*.yml` files, sorted).
pub fn read_maps(config: &Config) -> Result<Vec<MapText>, Errors> {
    let mut errors = Errors::default();
    let mut out = Vec::new();
    for m in &config.maps {
        match m {
            DataSource::File(p) if p.is_dir() => {
                let mut files: Vec<_> = match std::fs::read_dir(p) {
                    Ok(rd) => rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                        .collect(),
                    Err(e) => {
                        errors.file(
                            &p.display().to_string(),
                            format!("cannot read directory: {e}"),
                        );
                        continue;
                    }
                };
                files.sort();
                for f in files {
                    match std::fs::read_to_string(&f) {
                        Ok(text) => out.push(MapText {
                            source: DataSource::File(f),
                            text,
                        }),
                        Err(e) => {
                            errors.file(&f.display().to_string(), format!("cannot read: {e}"))
                        }
                    }
                }
            }
            DataSource::Embedded(dir) if dir.ends_with('/') => {
                for name in crate::embedded::list(dir) {
                    if name.ends_with(".yaml") || name.ends_with(".yml") {
                        let text = String::from_utf8_lossy(
                            crate::embedded::file(name).unwrap_or_default(),
                        )
                        .into_owned();
                        out.push(MapText {
                            source: DataSource::Embedded(name.to_string()),
                            text,
                        });
                    }
                }
            }
            other => match other
                .read()
                .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".into()))
            {
                Ok(text) => out.push(MapText {
                    source: other.clone(),
                    text,
                }),
                Err(e) => errors.file(&other.display(), e),
            },
        }
    }
    errors.into_result(out)
}

/// Rule kinds, most specific first.
const KINDS: [&str; 6] = [
    "prefix",
    "asn",
    "subdivision",
    "country",
    "continent",
    "default",
];

struct RuleDraft {
    kind: usize,
    chain: Vec<usize>,
    location: String,
}

/// The GeoIP layer shared by all services: networks with an interned (continent, country,
/// subdivision) key.
/// Resolves region or last-resort members, reporting problems.
type MembersFn<'a> = dyn Fn(&Document, &str, &[MemberSpec], &mut Errors) -> Vec<(usize, u32)> + 'a;

/// Everything a build needs besides the configuration.
pub struct Inputs<'a> {
    /// Loaded client data.
    pub client: Arc<ClientData>,
    /// Map files.
    pub maps: &'a [MapText],
    /// The health table of the snapshot being replaced, to carry node states over.
    pub previous_health: Option<&'a HealthTable>,
}

/// Builds a snapshot, or reports every problem found.
pub fn build(config: &Config, inputs: Inputs<'_>) -> Result<Snapshot, Errors> {
    let mut errors = Errors::default();
    let mut docs = Vec::new();
    for m in inputs.maps {
        match Document::parse(&m.source.display(), &m.text) {
            Ok(d) => docs.push((m, d)),
            Err(e) => errors.extend(e),
        }
    }
    // Decode every file's sections.
    let mut node_specs: Vec<(&Document, String, NodeSpec)> = Vec::new();
    let mut region_specs: Vec<(&Document, String, RegionSpec)> = Vec::new();
    let mut service_specs: Vec<(&Document, &MapText, String, ServiceSpec)> = Vec::new();
    for (m, d) in &docs {
        let Some(file) = d.decode::<MapFileSpec>("", &d.root, &mut errors) else {
            continue;
        };
        for (p, n) in d.decode_each::<NodeSpec>("nodes", &file.nodes, &mut errors) {
            node_specs.push((d, p, n));
        }
        for (p, r) in d.decode_each::<RegionSpec>("regions", &file.regions, &mut errors) {
            region_specs.push((d, p, r));
        }
        for (p, s) in d.decode_each::<ServiceSpec>("services", &file.services, &mut errors) {
            service_specs.push((d, m, p, s));
        }
    }

    // Nodes.
    let mut nodes: Vec<Node> = Vec::new();
    let mut node_index: HashMap<String, usize> = HashMap::new();
    let mut local_nodes: Vec<(usize, Vec<IpNetwork>, Vec<u32>)> = Vec::new();
    for (d, p, n) in &node_specs {
        if node_index.contains_key(&n.name) {
            errors.0.push(d.error(
                &format!("{p}.name"),
                format!("node {:?} is defined twice", n.name),
            ));
            continue;
        }
        if !(1..=65535).contains(&n.weight) {
            errors
                .0
                .push(d.error(&format!("{p}.weight"), "must be 1..=65535"));
        }
        if n.ipv4.is_empty() && n.ipv6.is_empty() {
            errors
                .0
                .push(d.error(p, "a node needs at least one address in `ipv4` or `ipv6`"));
        }
        let mut prefixes = Vec::new();
        for (i, c) in n.prefixes.iter().enumerate() {
            match parse_cidr(c) {
                Ok(net) => prefixes.push(net),
                Err(e) => errors.0.push(d.error(&format!("{p}.prefixes[{i}]"), e)),
            }
        }
        if let Some(l) = n.location
            && (!(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon))
        {
            errors.0.push(d.error(
                &format!("{p}.location"),
                "lat must be -90..=90 and lon -180..=180",
            ));
        }
        let local_bit = if n.local_only {
            if prefixes.is_empty() && n.asns.is_empty() {
                errors.0.push(d.error(
                    &format!("{p}.local_only"),
                    "a local-only node needs `asns` or `prefixes`",
                ));
            }
            if local_nodes.len() >= 64 {
                errors.0.push(d.error(
                    &format!("{p}.local_only"),
                    "at most 64 local-only nodes are supported",
                ));
            }
            local_nodes.push((nodes.len(), prefixes, n.asns.clone()));
            Some((local_nodes.len() - 1) as u32)
        } else {
            None
        };
        node_index.insert(n.name.clone(), nodes.len());
        nodes.push(Node {
            name: n.name.clone(),
            v4: n.ipv4.clone(),
            v6: n.ipv6.clone(),
            weight: n.weight,
            local_bit,
            a: n.ipv4
                .iter()
                .map(|a| zone::body(rtype::A, 0, &a.octets()))
                .collect(),
            aaaa: n
                .ipv6
                .iter()
                .map(|a| zone::body(rtype::AAAA, 0, &a.octets()))
                .collect(),
            check: None,
        });
        if let Some(c) = &n.check {
            match crate::probe::Check::from_spec(c, n) {
                Ok(c) => nodes.last_mut().expect("just pushed").check = Some(c),
                Err(e) => errors.0.push(d.error(&format!("{p}.check"), e)),
            }
        }
    }

    let members =
        |d: &Document, p: &str, list: &[MemberSpec], errors: &mut Errors| -> Vec<(usize, u32)> {
            let mut out: Vec<(usize, u32)> = Vec::new();
            for (i, m) in list.iter().enumerate() {
                match node_index.get(m.node()) {
                    Some(&n) => {
                        let w = m.weight().unwrap_or(nodes[n].weight);
                        if m.weight().is_some() && !(1..=65535).contains(&w) {
                            errors
                                .0
                                .push(d.error(&format!("{p}[{i}].weight"), "must be 1..=65535"));
                        }
                        if out.iter().any(|&(o, _)| o == n) {
                            errors.0.push(d.error(
                                &format!("{p}[{i}]"),
                                format!("node {:?} is listed twice", m.node()),
                            ));
                        }
                        out.push((n, w));
                    }
                    None => errors.0.push(d.error(
                        &format!("{p}[{i}]"),
                        format!(
                            "unknown node {:?}{}",
                            m.node(),
                            hint(m.node(), node_index.keys())
                        ),
                    )),
                }
            }
            out.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then_with(|| nodes[a.0].name.cmp(&nodes[b.0].name))
            });
            out
        };

    // Regions.
    let mut regions: Vec<Region> = Vec::new();
    let mut region_index: HashMap<String, usize> = HashMap::new();
    // Region default checks, applied once `members` no longer borrows `nodes`.
    let mut region_checks: Vec<(usize, crate::probe::Check)> = Vec::new();
    for (d, p, r) in &region_specs {
        if region_index.contains_key(&r.name) {
            errors.0.push(d.error(
                &format!("{p}.name"),
                format!("region {:?} is defined twice", r.name),
            ));
            continue;
        }
        let m = members(d, &format!("{p}.nodes"), &r.nodes, &mut errors);
        if r.nodes.is_empty() {
            errors
                .0
                .push(d.error(&format!("{p}.nodes"), "a region needs at least one node"));
        }
        if let Some(c) = &r.check {
            for &(n, _) in &m {
                let Some((_, _, spec)) =
                    node_specs.iter().find(|(_, _, s)| s.name == nodes[n].name)
                else {
                    continue;
                };
                if spec.check.is_some() || region_checks.iter().any(|(k, _)| *k == n) {
                    continue;
                }
                match crate::probe::Check::from_spec(c, spec) {
                    Ok(chk) => region_checks.push((n, chk)),
                    Err(e) => errors.0.push(d.error(
                        &format!("{p}.check"),
                        format!("for node {}: {e}", spec.name),
                    )),
                }
            }
        }
        region_index.insert(r.name.clone(), regions.len());
        regions.push(Region {
            name: r.name.clone(),
            members: m,
        });
    }

    // Zones, with services attached.
    let mut zones = config.zones.clone();
    zones.sort_by_key(|z| std::cmp::Reverse(z.apex.len()));
    let t = std::time::Instant::now();
    let empty = Arc::new(GeoLayer::default());
    // The first database with locations decides; later ones are for lookups only.
    let geo_layer = inputs
        .client
        .geo()
        .find(|d| d.layout != Layout::Asn)
        .map(|d| d.layer.clone())
        .unwrap_or(empty);
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        v4 = geo_layer.v4.len(),
        v6 = geo_layer.v6.len(),
        keys = geo_layer.keys.len(),
        "geo layer"
    );
    let t = std::time::Instant::now();
    let mut services = Vec::new();
    let mut seen_names: HashMap<Box<[u8]>, ()> = HashMap::new();
    for (d, m, p, s) in &service_specs {
        let idx = services.len();
        let before = errors.0.len();
        let svc = compile_service(
            d,
            m,
            p,
            s,
            &regions,
            &region_index,
            &members,
            &local_nodes,
            &inputs.client,
            &geo_layer,
            &mut errors,
        );
        for (i, name) in s.names.iter().enumerate() {
            let np = format!("{p}.names[{i}]");
            let n = match zone::parse_name(name, &hickory_proto::rr::Name::root()) {
                Ok(n) => zone::wire(&n),
                Err(e) => {
                    errors.0.push(d.error(&np, e));
                    continue;
                }
            };
            if seen_names.insert(n.clone(), ()).is_some() {
                errors
                    .0
                    .push(d.error(&np, format!("{name} is served by two services")));
                continue;
            }
            let Some(z) = zones.iter_mut().find(|z| zone::is_within(&n, &z.apex)) else {
                errors.0.push(d.error(
                    &np,
                    format!("{name} is not inside any zone of the configuration"),
                ));
                continue;
            };
            let node = z.nodes.entry(n.clone()).or_default();
            if node.cname_target.is_some()
                || node.set(rtype::A).is_some()
                || node.set(rtype::AAAA).is_some()
            {
                errors.0.push(d.error(
                    &np,
                    format!("{name} also has static A, AAAA or CNAME records"),
                ));
                continue;
            }
            node.service = Some(idx);
            zone::add_ancestors(&mut z.nodes, &n, &z.apex);
            if config.why_enabled {
                let mut why = b"\x04_why".to_vec();
                why.extend_from_slice(&n);
                z.nodes.entry(why.into()).or_default().why = Some(idx);
            }
        }
        if let Some(svc) = svc
            && errors.0.len() == before
        {
            services.push(svc);
        } else {
            // Keep indices stable for the names attached above; the build fails anyway.
            services.push(placeholder());
        }
    }
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "services compiled");
    if !errors.is_empty() {
        return Err(errors);
    }
    for (n, c) in region_checks {
        nodes[n].check = Some(c);
    }

    // Health: carry the state of nodes that stay.
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let health = HealthTable::new(names, State::Up);
    if let Some(prev) = inputs.previous_health {
        for (i, n) in health.names().iter().enumerate() {
            if let Some(j) = prev.index(n) {
                health.set(i, prev.get(j));
            }
        }
    }
    let maps_hash = inputs.maps.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, m| {
        m.text
            .bytes()
            .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    });
    let mut versions = format!("maps {:016x} ({} files)", maps_hash, inputs.maps.len());
    let cv = inputs.client.versions();
    if !cv.is_empty() {
        versions.push_str("; ");
        versions.push_str(&cv);
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
            why_enabled: config.why_enabled,
            why_allow: config.why_allow.clone(),
        },
        client: inputs.client,
        versions,
    })
}

fn placeholder() -> Service {
    Service {
        names: Vec::new(),
        ttl: 0,
        degraded_ttl: 0,
        answers: 1,
        spread: false,
        use_ecs: false,
        all_down: AllDown::Empty,
        last_resort: Vec::new(),
        regions: Vec::new(),
        rules: Vec::new(),
        decisions: Vec::new(),
        v4: RouteTable::default(),
        v6: RouteTable::default(),
        rr: AtomicU64::new(0),
    }
}

/// A "did you mean" hint.
fn hint<'a>(wanted: &str, known: impl Iterator<Item = &'a String>) -> String {
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
        Some(c) => format!("; did you mean {c:?}?"),
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

#[allow(clippy::too_many_arguments)]
fn compile_service(
    d: &Document,
    map: &MapText,
    p: &str,
    s: &ServiceSpec,
    regions: &[Region],
    region_index: &HashMap<String, usize>,
    members: &MembersFn<'_>,
    local_nodes: &[(usize, Vec<IpNetwork>, Vec<u32>)],
    client: &ClientData,
    geo: &GeoLayer,
    errors: &mut Errors,
) -> Option<Service> {
    let before = errors.0.len();
    if s.names.is_empty() {
        errors
            .0
            .push(d.error(&format!("{p}.names"), "a service needs at least one name"));
    }
    if !(1..=MAX_ANSWERS).contains(&s.answers) {
        errors.0.push(d.error(
            &format!("{p}.answers"),
            format!("must be 1..={MAX_ANSWERS}"),
        ));
    }
    let spread = match s.spread.as_str() {
        "none" => false,
        "weighted" => true,
        _ => {
            errors
                .0
                .push(d.error(&format!("{p}.spread"), "expected `none` or `weighted`"));
            false
        }
    };
    let use_ecs = match s.ecs.as_str() {
        "use" => true,
        "ignore" => false,
        _ => {
            errors
                .0
                .push(d.error(&format!("{p}.ecs"), "expected `use` or `ignore`"));
            true
        }
    };
    let all_down = match s.all_down.as_str() {
        "any_region" => AllDown::AnyRegion,
        "last_resort" => AllDown::LastResort,
        "servfail" => AllDown::ServFail,
        "empty" => AllDown::Empty,
        _ => {
            errors.0.push(d.error(
                &format!("{p}.all_down"),
                "expected `any_region`, `last_resort`, `servfail` or `empty`",
            ));
            AllDown::AnyRegion
        }
    };
    let last_resort = members(d, &format!("{p}.last_resort"), &s.last_resort, errors);
    if all_down == AllDown::LastResort && last_resort.is_empty() {
        errors.0.push(d.error(
            &format!("{p}.last_resort"),
            "`all_down: last_resort` needs a non-empty `last_resort` list",
        ));
    }
    let degraded_ttl = s.degraded_ttl.unwrap_or(s.ttl);
    if degraded_ttl > s.ttl {
        errors
            .0
            .push(d.error(&format!("{p}.degraded_ttl"), "must not exceed `ttl`"));
    }

    // Rules.
    let mut rules: Vec<RuleDraft> = Vec::new();
    let mut prefix_rules: [Vec<(u128, u8, u32)>; 2] = [Vec::new(), Vec::new()];
    let mut seen_prefix: HashMap<IpNetwork, String> = HashMap::new();
    let mut by_asn: HashMap<u32, u32> = HashMap::new();
    let mut by_sub: HashMap<String, u32> = HashMap::new();
    let mut by_country: HashMap<String, u32> = HashMap::new();
    let mut by_cont: HashMap<String, u32> = HashMap::new();
    let mut default_rule: Option<u32> = None;
    for (rp, r) in d.decode_each::<RuleSpec>(&format!("{p}.rules"), &s.rules, errors) {
        let idx = rules.len() as u32;
        let selectors = [
            r.prefixes.is_some() || r.prefix_file.is_some(),
            r.asns.is_some(),
            r.subdivisions.is_some(),
            r.countries.is_some(),
            r.continents.is_some(),
            r.default,
        ];
        let kinds: Vec<usize> = selectors
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .map(|(i, _)| i)
            .collect();
        if kinds.len() != 1 {
            errors.0.push(d.error(&rp, "a rule needs exactly one of `prefixes`/`prefix_file`, `asns`, `subdivisions`, `countries`, `continents` or `default: true`"));
            continue;
        }
        let kind = kinds[0];
        let mut chain = Vec::new();
        for (i, name) in r.regions.iter().enumerate() {
            match region_index.get(name) {
                Some(&ri) if chain.contains(&ri) => errors.0.push(d.error(
                    &format!("{rp}.regions[{i}]"),
                    format!("region {name:?} is listed twice"),
                )),
                Some(&ri) => chain.push(ri),
                None => errors.0.push(d.error(
                    &format!("{rp}.regions[{i}]"),
                    format!("unknown region {name:?}{}", hint(name, region_index.keys())),
                )),
            }
        }
        if r.regions.is_empty() {
            errors
                .0
                .push(d.error(&format!("{rp}.regions"), "a rule needs at least one region"));
        }
        let (line, col) = d.position(&rp);
        let location = format!("{}:{}:{}", d.file, line, col);
        let claim =
            |map: &mut HashMap<String, u32>, key: String, path: String, errors: &mut Errors| {
                if let Some(&other) = map.get(&key) {
                    errors.0.push(d.error(
                        &path,
                        format!(
                            "{key} is already matched by the rule at {}; this entry can never fire",
                            rules_loc(&rules, other)
                        ),
                    ));
                } else {
                    map.insert(key, idx);
                }
            };
        match kind {
            0 => {
                let mut list: Vec<(String, String)> = r
                    .prefixes
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), format!("{rp}.prefixes[{i}]")))
                    .collect();
                if let Some(f) = &r.prefix_file {
                    match read_prefix_file(&map.source, f) {
                        Ok(lines) => list.extend(
                            lines
                                .into_iter()
                                .map(|(n, c)| (c, format!("{rp}.prefix_file (line {n})"))),
                        ),
                        Err(e) => errors.0.push(d.error(&format!("{rp}.prefix_file"), e)),
                    }
                }
                for (c, path) in list {
                    match parse_cidr(&c) {
                        Ok(net) => {
                            if let Some(prev) = seen_prefix.get(&net) {
                                errors.0.push(d.error(&path, format!("{net} is already matched by the rule at {prev}; this entry can never fire")));
                                continue;
                            }
                            seen_prefix.insert(net, location.clone());
                            let (fam, start) = match net {
                                IpNetwork::V4(n) => (0, u32::from(n.network_address()) as u128),
                                IpNetwork::V6(n) => (1, u128::from(n.network_address())),
                            };
                            prefix_rules[fam].push((start, net.netmask(), idx));
                        }
                        Err(e) => errors.0.push(d.error(&path, e)),
                    }
                }
            }
            1 => {
                for (i, a) in r.asns.iter().flatten().enumerate() {
                    if let Some(&other) = by_asn.get(a) {
                        errors.0.push(d.error(&format!("{rp}.asns[{i}]"), format!("AS{a} is already matched by the rule at {}; this entry can never fire", rules_loc(&rules, other))));
                    } else {
                        by_asn.insert(*a, idx);
                    }
                }
            }
            2 => {
                for (i, c) in r.subdivisions.iter().flatten().enumerate() {
                    let c = c.to_ascii_uppercase();
                    let ok = c.split_once('-').is_some_and(|(cc, sub)| {
                        geo::is_country(cc)
                            && (1..=3).contains(&sub.len())
                            && sub.bytes().all(|b| b.is_ascii_alphanumeric())
                    });
                    if !ok {
                        errors.0.push(d.error(
                            &format!("{rp}.subdivisions[{i}]"),
                            format!("{c:?} is not an ISO 3166-2 code like \"US-CA\""),
                        ));
                        continue;
                    }
                    claim(&mut by_sub, c, format!("{rp}.subdivisions[{i}]"), errors);
                }
            }
            3 => {
                for (i, c) in r.countries.iter().flatten().enumerate() {
                    let c = c.to_ascii_uppercase();
                    if !geo::is_country(&c) {
                        errors.0.push(d.error(
                            &format!("{rp}.countries[{i}]"),
                            format!("{c:?} is not an ISO 3166-1 alpha-2 country code"),
                        ));
                        continue;
                    }
                    claim(&mut by_country, c, format!("{rp}.countries[{i}]"), errors);
                }
            }
            4 => {
                for (i, c) in r.continents.iter().flatten().enumerate() {
                    let c = c.to_ascii_uppercase();
                    if !geo::CONTINENTS.contains(&c.as_str()) {
                        errors.0.push(d.error(
                            &format!("{rp}.continents[{i}]"),
                            format!(
                                "{c:?} is not a continent code; expected one of {}",
                                geo::CONTINENTS.join(" ")
                            ),
                        ));
                        continue;
                    }
                    claim(&mut by_cont, c, format!("{rp}.continents[{i}]"), errors);
                }
            }
            _ => {
                if let Some(other) = default_rule {
                    errors.0.push(d.error(
                        &rp,
                        format!(
                            "a default rule already exists at {}",
                            rules_loc(&rules, other)
                        ),
                    ));
                }
                default_rule = Some(idx);
            }
        }
        rules.push(RuleDraft {
            kind,
            chain,
            location,
        });
    }
    if default_rule.is_none() && errors.0.len() == before {
        errors.0.push(d.error(
            &format!("{p}.rules"),
            "a service needs a rule with `default: true` for clients no other rule selects",
        ));
    }
    if errors.0.len() > before {
        return None;
    }
    let default_rule = default_rule.unwrap_or(0);

    // The rule each GeoIP key selects.
    let geo_rule: Vec<u32> = geo
        .keys
        .iter()
        .map(|(cont, country, sub)| {
            sub.as_ref()
                .and_then(|s| by_sub.get(s))
                .or_else(|| country.as_ref().and_then(|c| by_country.get(c)))
                .or_else(|| cont.as_ref().and_then(|c| by_cont.get(c)))
                .copied()
                .unwrap_or(default_rule)
        })
        .collect();

    // ASN classes: (rule for the ASN, local-only nodes whose ASN it is).
    let mut classes: Vec<(Option<u32>, u64)> = vec![(None, 0)];
    let mut class_of: HashMap<(Option<u32>, u64), u32> = HashMap::from([((None, 0), 0)]);
    let mut asn_class_of: HashMap<u32, u32> = HashMap::new();
    let asn_dbs: Vec<&GeoLayer> = client
        .geo()
        .filter(|d| d.layout == Layout::Asn)
        .map(|d| &*d.layer)
        .collect();
    let all_asns = client
        .bgp()
        .flat_map(|t| t.v4.iter().chain(&t.v6).map(|p| p.2))
        .chain(
            asn_dbs
                .iter()
                .flat_map(|l| l.v4.iter().chain(&l.v6).map(|r| r.2)),
        );
    {
        for asn in all_asns {
            if asn_class_of.contains_key(&asn) {
                continue;
            }
            let mut mask = 0u64;
            for (bit, (_, _, asns)) in local_nodes.iter().enumerate() {
                if asns.contains(&asn) {
                    mask |= 1 << bit;
                }
            }
            let key = (by_asn.get(&asn).copied(), mask);
            let id = *class_of.entry(key).or_insert_with(|| {
                classes.push(key);
                (classes.len() - 1) as u32
            });
            asn_class_of.insert(asn, id);
        }
    }

    let mut decisions: Vec<Decision> = Vec::new();
    let mut decision_of: HashMap<(u32, u64), u32> = HashMap::new();
    let mut tables: (RouteTable<u32>, RouteTable<u128>) =
        (RouteTable::default(), RouteTable::default());
    for (fam, bits) in [(0usize, 32u8), (1, 128)] {
        let geo_net = if fam == 0 { &geo.v4 } else { &geo.v6 };
        // Merge neighbours that select the same rule.
        let mut geo_ranges: Vec<Range> = Vec::with_capacity(geo_net.len());
        for &(start, end, k) in geo_net {
            let rule = geo_rule[k as usize];
            match geo_ranges.last_mut() {
                Some(last) if last.2 == rule && last.1.checked_add(1) == Some(start) => {
                    last.1 = end
                }
                _ => geo_ranges.push((start, end, rule)),
            }
        }
        // BGP: earlier tables win, so they go last into `flatten`.
        let mut bgp_prefixes = Vec::new();
        for t in client.bgp().collect::<Vec<_>>().into_iter().rev() {
            let list = if fam == 0 { &t.v4 } else { &t.v6 };
            bgp_prefixes.extend(list.iter().map(|&(s, l, asn)| (s, l, asn_class_of[&asn])));
        }
        let mut asn_ranges = ranges::flatten(bgp_prefixes, bits);
        // ASN databases fill what the BGP tables do not cover.
        if !asn_dbs.is_empty() {
            let mut layers = vec![asn_ranges];
            for l in &asn_dbs {
                let list = if fam == 0 { &l.v4 } else { &l.v6 };
                layers.push(
                    list.iter()
                        .map(|&(s, e, asn)| (s, e, asn_class_of[&asn]))
                        .collect(),
                );
            }
            asn_ranges = ranges::overlay(&layers, bits, |v| {
                v.iter().flatten().next().copied().unwrap_or(0)
            });
        }
        asn_ranges.retain(|r| r.2 != 0);
        let op_ranges = ranges::flatten(std::mem::take(&mut prefix_rules[fam]), bits);
        let mut layers = vec![geo_ranges, asn_ranges, op_ranges];
        for (_, prefixes, _) in local_nodes {
            let list: Vec<(u128, u8, u32)> = prefixes
                .iter()
                .filter_map(|n| match (fam, n) {
                    (0, IpNetwork::V4(v)) => {
                        Some((u32::from(v.network_address()) as u128, v.netmask(), 1))
                    }
                    (1, IpNetwork::V6(v)) => {
                        Some((u128::from(v.network_address()), v.netmask(), 1))
                    }
                    _ => None,
                })
                .collect();
            layers.push(ranges::flatten(list, bits));
        }
        let merged = ranges::overlay(&layers, bits, |v| {
            let class = classes[v[1].unwrap_or(0) as usize];
            let rule = v[2].or(class.0).or(v[0]).unwrap_or(default_rule);
            let mut mask = class.1;
            for (bit, val) in v[3..].iter().enumerate() {
                if val.is_some() {
                    mask |= 1 << bit;
                }
            }
            *decision_of.entry((rule, mask)).or_insert_with(|| {
                decisions.push(Decision {
                    rule: rule as usize,
                    chain: rules[rule as usize].chain.clone().into(),
                    local_mask: mask,
                });
                (decisions.len() - 1) as u32
            })
        });
        for (start, len, dec) in ranges::blocks(&merged, bits) {
            if fam == 0 {
                tables.0.push(start as u32, dec, len);
            } else {
                tables.1.push(start, dec, len);
            }
        }
    }
    // The route tables pack a decision into 23 bits.
    if decisions.len() >= 1 << 23 {
        errors.0.push(d.error(
            &format!("{p}.rules"),
            "too many distinct decisions (rules × local-only combinations); simplify the map",
        ));
        return None;
    }
    tables.0.finish();
    tables.1.finish();
    Some(Service {
        names: s.names.clone(),
        ttl: s.ttl,
        degraded_ttl,
        answers: s.answers,
        spread,
        use_ecs,
        all_down,
        last_resort,
        regions: regions.to_vec(),
        rules: rules
            .iter()
            .map(|r| RuleInfo {
                kind: KINDS[r.kind],
                location: r.location.clone(),
            })
            .collect(),
        decisions,
        v4: tables.0,
        v6: tables.1,
        rr: AtomicU64::new(0),
    })
}

fn rules_loc(rules: &[RuleDraft], idx: u32) -> String {
    rules
        .get(idx as usize)
        .map(|r| r.location.clone())
        .unwrap_or_else(|| "this same rule".into())
}

/// Reads a file of prefixes (one per line, `#` comments) relative to the map file.
fn read_prefix_file(map: &DataSource, rel: &str) -> Result<Vec<(usize, String)>, String> {
    let source = match map {
        DataSource::File(p) => {
            DataSource::File(p.parent().unwrap_or(std::path::Path::new(".")).join(rel))
        }
        DataSource::Embedded(name) => {
            let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            DataSource::Embedded(crate::embedded::resolve(&format!("{dir}/"), rel))
        }
    };
    let bytes = source
        .read()
        .map_err(|e| format!("{}: {e}", source.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", source.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect())
}

/// The explanation of a decision, as lines (used by `_why` and `signpost explain`).
pub fn explain(
    snap: &Snapshot,
    service: usize,
    client: IpAddr,
    how: &str,
    v6: bool,
) -> Vec<String> {
    let svc = &snap.services[service];
    let mut out = vec![format!("client {client} ({how})")];
    out.extend(snap.client.lookup(client).lines());
    let Some((decision, scope)) = svc.route(client) else {
        out.push("no route (empty table)".into());
        return out;
    };
    let rule = &svc.rules[decision.rule];
    out.push(format!("rule: {} at {}", rule.kind, rule.location));
    for (i, &r) in decision.chain.iter().enumerate() {
        let region = &svc.regions[r];
        let members: Vec<String> = region
            .members
            .iter()
            .map(|&(n, w)| {
                let node = &snap.nodes[n];
                let mut s = format!("{} w{} {}", node.name, w, snap.health.get(n).as_str());
                if node
                    .local_bit
                    .is_some_and(|b| decision.local_mask & (1 << b) == 0)
                {
                    s.push_str(" (local-only, not for this client)");
                }
                if node.records(v6).is_empty() {
                    s.push_str(if v6 { " (no IPv6)" } else { " (no IPv4)" });
                }
                s
            })
            .collect();
        out.push(format!(
            "region {}: {}: {}",
            i + 1,
            region.name,
            members.join(", ")
        ));
    }
    let pick = svc.pick(
        decision,
        v6,
        crate::snapshot::client_key(client),
        &snap.nodes,
        &snap.health,
    );
    let answer: Vec<String> = pick
        .nodes()
        .iter()
        .flat_map(|&n| {
            let node = &snap.nodes[n];
            let addrs: Vec<String> = if v6 {
                node.v6.iter().map(|a| a.to_string()).collect()
            } else {
                node.v4.iter().map(|a| a.to_string()).collect()
            };
            std::iter::once(format!("{} [{}]", node.name, addrs.join(" ")))
        })
        .collect();
    let region = pick
        .region
        .map(|r| svc.regions[r].name.as_str())
        .unwrap_or("-");
    let outcome = if pick.servfail {
        "SERVFAIL (all down)".to_string()
    } else if answer.is_empty() {
        "no address".to_string()
    } else {
        answer.join(", ")
    };
    let scope = if svc.spread {
        scope.max(if client.is_ipv4() { 24 } else { 48 })
    } else {
        scope
    };
    out.push(format!(
        "answer: {outcome} from region {region}{}{}",
        if pick.degraded { " (degraded)" } else { "" },
        if pick.all_down {
            " (all-down policy)"
        } else {
            ""
        }
    ));
    out.push(format!(
        "scope: /{scope}; ttl {}",
        if pick.degraded {
            svc.degraded_ttl
        } else {
            svc.ttl
        }
    ));
    out.push(format!("data: {}", snap.versions));
    out
}

/// How much of the address space a map change moves: IPv4 /24s and IPv6 /48s whose first
/// region or first node changes, by old → new region.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (si, svc) in new.services.iter().enumerate() {
        let name = svc.names.first().cloned().unwrap_or_default();
        let Some(old_svc) = old
            .services
            .iter()
            .find(|o| o.names == svc.names)
            .or_else(|| old.services.get(si))
        else {
            out.push(format!("{name}: new service"));
            continue;
        };
        let first = |snap: &Snapshot, s: &Service, addr: IpAddr| -> (String, String) {
            match s.route(addr) {
                Some((d, _)) => {
                    let region = d
                        .chain
                        .first()
                        .map(|&r| s.regions[r].name.clone())
                        .unwrap_or_default();
                    let p = s.pick(
                        d,
                        addr.is_ipv6(),
                        crate::snapshot::client_key(addr),
                        &snap.nodes,
                        &snap.health,
                    );
                    let node = p
                        .nodes()
                        .first()
                        .map(|&n| snap.nodes[n].name.clone())
                        .unwrap_or_else(|| "-".into());
                    (region, node)
                }
                None => ("-".into(), "-".into()),
            }
        };
        for (fam, bits, unit) in [(0, 32u8, 24u8), (1, 128, 48)] {
            // Every boundary of either table, then one sample per /unit between boundaries.
            let mut starts: Vec<u128> = if fam == 0 {
                svc.v4
                    .starts()
                    .chain(old_svc.v4.starts())
                    .map(|s| s as u128)
                    .collect()
            } else {
                svc.v6.starts().chain(old_svc.v6.starts()).collect()
            };
            starts.sort_unstable();
            starts.dedup();
            let mut moved: BTreeMap<(String, String), u128> = BTreeMap::new();
            let mut nodes_moved: u128 = 0;
            let shift = bits - unit;
            for (i, &s) in starts.iter().enumerate() {
                let e = starts
                    .get(i + 1)
                    .map(|n| n - 1)
                    .unwrap_or(ranges::max_addr(bits));
                let units = (e >> shift) - (s >> shift) + 1;
                let addr = if fam == 0 {
                    IpAddr::from(std::net::Ipv4Addr::from(s as u32))
                } else {
                    IpAddr::from(std::net::Ipv6Addr::from(s))
                };
                let (or, on) = first(old, old_svc, addr);
                let (nr, nn) = first(new, svc, addr);
                if or != nr {
                    *moved.entry((or, nr)).or_default() += units;
                }
                if on != nn {
                    nodes_moved += units;
                }
            }
            let total: u128 = 1u128 << unit;
            let family = if fam == 0 { "IPv4 /24s" } else { "IPv6 /48s" };
            let sum: u128 = moved.values().sum();
            out.push(format!("{name}: {family} changing region: {sum} ({:.4} %); changing node: {nodes_moved} ({:.4} %)", pct(sum, total), pct(nodes_moved, total)));
            for ((o, n), c) in moved {
                out.push(format!("  {o} -> {n}: {c} ({:.4} %)", pct(c, total)));
            }
        }
    }
    out
}

fn pct(part: u128, total: u128) -> f64 {
    part as f64 * 100.0 / total as f64
}
